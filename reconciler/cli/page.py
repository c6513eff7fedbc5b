"""The fleet page the daemon serves: the web app over a read-only store and the daemon's
desired state (clusters, labels, rendered objects), on a background HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

from reconciler.daemon.desired import Desired
from reconciler.daemon.loop import Daemon
from reconciler.daemon.metrics import Metrics
from reconciler.objects import ObjectRef
from reconciler.store.db import Store
from reconciler.web.app import create_app
from reconciler.web.model import ClusterInfo, Fleet
from reconciler.web.server import HttpServer
from reconciler.web.snapshot import SnapshotCache


def _fleet(daemon: Daemon) -> Callable[[], Fleet | None]:
    """The clusters of the revision the daemon runs (for the page's labels and grouping) and
    the objects it renders per target; built once per generation."""
    built: dict[int, Fleet] = {}

    def fleet() -> Fleet | None:
        desired = daemon.desired
        if desired is None:
            return None
        if desired.generation not in built:
            built.clear()
            built[desired.generation] = Fleet(
                tuple(
                    ClusterInfo(c.name, dict(c.labels), c.paused)
                    for c in desired.repo.clusters.values()
                ),
                version=str(desired.generation),
                objects=partial(_rendered_objects, desired),
            )
        return built[desired.generation]

    return fleet


def _rendered_objects(desired: Desired, app: str, cluster: str) -> tuple[str, ...] | None:
    for target in desired.targets.get(cluster, ()):
        if target.app == app and target.rendered is not None:
            return tuple(str(ObjectRef.of(m)) for m in target.rendered.objects)
    return None


def serve(listen: str, daemon: Daemon, metrics: Metrics, store: Store) -> HttpServer:
    """Probes, metrics, the page and its API on ``listen``; the page reads the state through
    ``store``, a read-only connection of its own, so it never waits on the daemon's writes."""
    stopping = threading.Event()
    cache = SnapshotCache(store, _fleet(daemon))
    app = create_app(
        cache,
        metrics.registry,
        ready=lambda: daemon.ready,
        healthy=lambda: daemon.healthy,
        stopping=stopping,
    )
    return HttpServer(listen, app, stopping=stopping).start()
