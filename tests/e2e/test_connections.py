"""Sockets per cluster: every context reaching one API server shares one HTTP/2 connection,
whatever the number of contexts and concurrent requests (real kube-apiservers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.kube.pool import Clients
from reconciler.sync.isolated import run_isolated
from tests.e2e.conftest import CLUSTERS
from tests.kubeconfigs import with_context
from tests.sockets import connections_to

ALIASES = 10  # contexts per API server


def test_contexts_reaching_one_apiserver_share_one_connection(
    tmp_path: Path, kubeconfig: Path, devenv: Any
) -> None:
    config = kubeconfig
    contexts = {}
    for cluster in CLUSTERS:
        for i in range(ALIASES):
            name = f"{cluster}-alias-{i}"
            config = with_context(config, tmp_path / f"kc-{name}", name, like=cluster)
            contexts[name] = cluster
    clients = Clients(str(config))
    try:

        def work(name: str) -> int:
            client = clients.get(name, name)
            client.ping()
            namespaces = client.resource("v1", "Namespace")
            for _ in range(5):
                client.list_objects(namespaces)
            return len(client.list_objects(client.resource("v1", "ConfigMap"), "default"))

        outcomes = run_isolated(sorted(contexts), work, max_workers=32)
        assert all(o.error is None for o in outcomes), [o.error for o in outcomes if o.error]
        ports = {c.name: c.port for c in devenv.clusters}
        per_server = {cluster: connections_to(ports[cluster]) for cluster in CLUSTERS}
        print(f"connections per API server with {ALIASES} contexts each: {per_server}")
        assert per_server == dict.fromkeys(CLUSTERS, 1)
    finally:
        clients.close()
