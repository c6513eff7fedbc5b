"""Kubeconfig copies with extra contexts (another name for a cluster, a misbehaving server)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml


def with_context(
    base: Path,
    out: Path,
    name: str,
    *,
    server: str | None = None,
    like: str | None = None,
    ca_pem: bytes | None = None,
) -> Path:
    """A copy of ``base`` with one more context ``name``: the cluster entry of context ``like``
    (default: the first), at ``server`` if given, trusting ``ca_pem`` if given."""
    config: dict[str, Any] = yaml.safe_load(base.read_text())
    context = next(c for c in config["contexts"] if like is None or c["name"] == like)["context"]
    cluster = copy.deepcopy(next(c for c in config["clusters"] if c["name"] == context["cluster"]))
    cluster["name"] = name
    if server is not None:
        cluster["cluster"]["server"] = server
    if ca_pem is not None:
        cluster["cluster"]["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    config["clusters"].append(cluster)
    config["contexts"].append({"name": name, "context": {"cluster": name, "user": context["user"]}})
    out.write_text(yaml.safe_dump(config))
    return out


def with_contexts(base: Path, out: Path, contexts: dict[str, str]) -> Path:
    """A copy of ``base`` with one more context per ``name -> like`` (each a new cluster entry
    reaching the API server of context ``like``)."""
    config: dict[str, Any] = yaml.safe_load(base.read_text())
    by_name = {c["name"]: c["context"] for c in config["contexts"]}
    clusters = {c["name"]: c for c in config["clusters"]}
    for name, like in contexts.items():
        cluster = copy.deepcopy(clusters[by_name[like]["cluster"]])
        cluster["name"] = name
        config["clusters"].append(cluster)
        user = by_name[like]["user"]
        config["contexts"].append({"name": name, "context": {"cluster": name, "user": user}})
    out.write_text(yaml.safe_dump(config))
    return out
