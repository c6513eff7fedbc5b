"""The rendering tools: pinned helm and kustomize versions, where the cache keeps them, and the
binaries a render runs. Rendering never builds or fetches them (the devenv does)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The Kubernetes version renders target: helm is stamped with it (Capabilities.KubeVersion,
# kubeVersion checks), and the devenv runs it.
KUBERNETES_VERSION = "v1.36.3"
HELM_VERSION = "v3.22.0"
KUSTOMIZE_VERSION = "v5.8.2"
HELM_FLAVOUR = "k8s" + ".".join(KUBERNETES_VERSION.lstrip("v").split(".")[:2])
# name -> (version, flavour): where the cache keeps the binary a render runs.
PINNED = {"helm": (HELM_VERSION, HELM_FLAVOUR), "kustomize": (KUSTOMIZE_VERSION, "")}


def cache_root() -> Path:
    """``$RECONCILER_CACHE``, else ``$XDG_CACHE_HOME/reconciler``, else ``~/.cache/reconciler``."""
    explicit = os.environ.get("RECONCILER_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "reconciler"


def cached_binary(name: str, version: str, flavour: str = "") -> Path:
    """Where the cache keeps binary ``name`` at ``version`` built as ``flavour`` (it may not be
    there: the devenv builds it)."""
    key = f"{name}-{version}" + (f"-{flavour}" if flavour else "")
    return cache_root() / "bin" / key / name


@dataclass(frozen=True)
class Toolchain:
    """Paths of the ``helm`` and ``kustomize`` binaries."""

    helm: str
    kustomize: str
    timeout: float = 300.0

    @classmethod
    def default(cls) -> Toolchain:
        """$RECONCILER_HELM / $RECONCILER_KUSTOMIZE, else the pinned version in the cache, else
        $PATH. Nothing is built here (rendering never touches the network)."""

        def pick(name: str) -> str:
            explicit = os.environ.get(f"RECONCILER_{name.upper()}")
            if explicit:
                return explicit
            cached = cached_binary(name, *PINNED[name])
            return str(cached) if cached.is_file() else name

        return cls(helm=pick("helm"), kustomize=pick("kustomize"))
