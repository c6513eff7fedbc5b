"""Helpers for tests of watch-fed live state: a client pool that records what its watches
report, and a kubeconfig authenticating as a ServiceAccount of a fleet cluster."""

from __future__ import annotations

import threading
from pathlib import Path

from kubernetes import client

from reconciler.devenv import controlplane
from reconciler.kube.client import DEFAULT_TIMEOUT
from reconciler.kube.pool import Clients
from reconciler.kube.scopes import LiveEvent
from reconciler.kube.watches import RETRY_UNWATCHABLE
from tests.clusteraccess import request_token, token_kubeconfig


class Heard:
    """Watch events a client pool reported, in order, for tests to wait on."""

    def __init__(self) -> None:
        self.events: list[LiveEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: LiveEvent) -> None:
        with self._lock:
            self.events.append(event)

    def seen(self, what: str, obj: str = "") -> list[LiveEvent]:
        with self._lock:
            return [e for e in self.events if e.what == what and obj in e.obj]


def watching_clients(
    kubeconfig: str, timeout: float = DEFAULT_TIMEOUT, retry_unwatchable: float = RETRY_UNWATCHABLE
) -> tuple[Clients, Heard]:
    """A watching client pool and what its watches report."""
    heard = Heard()
    clients = Clients(kubeconfig, timeout=timeout, watch=True, retry_unwatchable=retry_unwatchable)
    clients.subscribe(heard)
    return clients, heard


def server_of(devenv: controlplane.DevEnvState, name: str) -> str:
    return next(c.server for c in devenv.clusters if c.name == name)


def account_kubeconfig(
    api: client.ApiClient, devenv: controlplane.DevEnvState, cluster: str, who: str, path: Path
) -> Path:
    """A new ServiceAccount ``who`` in namespace default of ``cluster`` and a kubeconfig with
    its token (what it may do is granted separately)."""
    client.CoreV1Api(api).create_namespaced_service_account("default", {"metadata": {"name": who}})
    token = request_token(api, "default", who)
    return token_kubeconfig(path, [(cluster, server_of(devenv, cluster))], devenv.ca, token)
