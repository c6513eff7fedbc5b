"""A real store for the tests of the web application, and the application served from it over
loopback HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from reconciler.fields import FieldChange
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow
from reconciler.web.app import create_app
from reconciler.web.model import Fleet
from reconciler.web.server import HttpServer
from reconciler.web.snapshot import SnapshotCache


def fetched_state(state: Path, sha: str, at: datetime) -> Path:
    """A store in ``state`` whose repo was fetched at ``at`` with ``sha`` loaded."""
    with Store.open(state) as store:
        store.record_revision(sha, at, True, None)
        store.record_fetch_success("/srv/repo", "main", sha, at)
    return state


def record_open_drift_behind_corrected(
    store: Store, sha: str, at: datetime, changes: list[FieldChange], newer: int = 25
) -> None:
    """web/c1 drifted: ConfigMap/demo/old open since ``at``, then ``newer`` newer drift records
    of the same target (a flapping object), each corrected 30 s after it was seen."""
    store.set_status(StatusRow("web", "c1", State.DRIFTED, "drift", sha, at, at))
    store.record_drift("web", "c1", "ConfigMap/demo/old", "modified", changes, sha, at)
    for i in range(newer):
        later = at + timedelta(minutes=i + 1)
        row = store.record_drift(
            "web", "c1", f"ConfigMap/demo/x{i}", "modified", changes, sha, later
        )
        store.mark_corrected(row.id, later + timedelta(seconds=30))


@contextmanager
def served(state: Path, fleet: Fleet, **options: Any) -> Iterator[str]:
    """The web application on the store in ``state`` over loopback; yields its base URL."""
    stopping = threading.Event()
    with Store.open_readonly(state) as store:
        app = create_app(
            SnapshotCache(store, lambda: fleet, max_age=0),
            CollectorRegistry(),
            ready=lambda: True,
            stopping=stopping,
            **options,
        )
        server = HttpServer("127.0.0.1:0", app, stopping=stopping).start()
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            server.stop()
