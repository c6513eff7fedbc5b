"""Where cluster credentials come from, as the client pool sees it.

A :class:`CredentialSource` says cheaply whether its credentials changed (``stamp``) and reads
them (``load``) into :class:`Credentials`, which configure one client per context. Two kinds: a
kubeconfig file (:class:`KubeconfigFiles`, here) and, in a pod, the ServiceAccount plus member
Secrets (``reconciler.kube.members``).
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconciler.kube.connection import Connection
from reconciler.kube.kubeconfig import Kubeconfig

if TYPE_CHECKING:
    from kubernetes import client as k8s


class Credentials(Protocol):
    """One read of a source: what each context connects to, and how."""

    @property
    def origin(self) -> str:
        """Where they came from, to start an error message (never a credential)."""
        ...

    @property
    def contexts(self) -> list[str]: ...

    def connection(self, context: str) -> Connection:
        """Server, TLS and auth of ``context``; CredentialsError when it cannot be used."""
        ...

    def configure(self, context: str, configuration: k8s.Configuration) -> None:
        """Set host, TLS and auth of ``context`` on a ``kubernetes`` package configuration;
        ConfigException when it cannot."""
        ...


class CredentialSource(Protocol):
    def stamp(self) -> Hashable:
        """Changes when the credentials do. May do I/O; raises ReconcilerError on failure."""
        ...

    def load(self) -> Credentials:
        """The credentials as of the last ``stamp``; ReconcilerError when unusable."""
        ...

    def files(self) -> list[Path]:
        """Local files the credentials come from (none for Secrets)."""
        ...

    def close(self) -> None: ...


class KubeconfigFiles:
    """``kubeconfig``, else each file of ``$KUBECONFIG``, else ``~/.kube/config``."""

    def __init__(self, kubeconfig: str | None) -> None:
        self.kubeconfig = kubeconfig

    def files(self) -> list[Path]:
        location = self.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        return [Path(p).expanduser() for p in location.split(os.pathsep) if p]

    def stamp(self) -> tuple[tuple[str, int | None, int | None], ...]:
        stamp: list[tuple[str, int | None, int | None]] = []
        for path in self.files():
            try:
                st = path.stat()
            except OSError:
                stamp.append((str(path), None, None))
            else:
                stamp.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(stamp)

    def load(self) -> Kubeconfig:
        return Kubeconfig(self.kubeconfig)

    def close(self) -> None:
        pass
