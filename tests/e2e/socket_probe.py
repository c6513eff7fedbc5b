"""Sockets a reconciler process holds, measured in a process of its own (a test process holds
connections of its own fixtures): ``python -m tests.e2e.socket_probe KUBECONFIG NAMESPACE
[--watch] CONTEXT...`` reads through every context concurrently (and with ``--watch`` watches
three kinds in NAMESPACE through each), then prints JSON: established connections per API
server, the number of contexts and of watches."""

from __future__ import annotations

import json
import sys
from urllib.parse import urlsplit

from reconciler import APP_LABEL
from reconciler.kube.pool import Clients
from reconciler.sync.isolated import run_isolated
from tests.sockets import connections_to

KINDS = (("v1", "ConfigMap"), ("v1", "Secret"), ("apps/v1", "Deployment"))


def main(argv: list[str]) -> None:
    kubeconfig, namespace, *rest = argv
    watch = "--watch" in rest
    contexts = [c for c in rest if c != "--watch"]
    clients = Clients(kubeconfig, watch=watch)

    def work(name: str) -> str:
        client = clients.get(name, name)
        client.ping()
        for _ in range(3):
            client.list_objects(client.resource("v1", "Namespace"))
        for version, kind in KINDS if watch else ():
            assert client.cached([(client.resource(version, kind), namespace, APP_LABEL)]) == [[]]
        if client.live is not None:
            assert set(client.live.watching().values()) == {"live"}, client.live.watching()
        return client.server

    outcomes = run_isolated(contexts, work, max_workers=32)
    errors = [str(o.error) for o in outcomes if o.error is not None]
    servers = sorted({str(o.value) for o in outcomes if o.value is not None})
    ports = {s: urlsplit(s).port or 443 for s in servers}
    print(
        json.dumps(
            {
                "errors": errors,
                "contexts": len(contexts),
                "watches": len(contexts) * len(KINDS) if watch else 0,
                "connections": {s: connections_to(p) for s, p in ports.items()},
            }
        )
    )
    clients.close()


if __name__ == "__main__":
    main(sys.argv[1:])
