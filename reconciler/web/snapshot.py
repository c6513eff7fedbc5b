"""One read of the daemon's state for the page and the API, shared by every client.

The status and drift documents are exactly what ``reconciler status -o json`` and
``reconciler drift -o json`` print (made by the same report functions), so the API and the
CLI cannot disagree. A snapshot is reused for ``max_age`` seconds: a hundred open pages cost one
read of the store per second, not a hundred. Drift values of Secrets are masked before they
reach the store, so nothing here can show one.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from reconciler.report import drift_document, status_document
from reconciler.store.db import Store
from reconciler.web.model import Fleet, joined_targets, rollouts_by_app

__all__ = ["Snapshot", "SnapshotCache"]

OPEN_DRIFT_LIMIT = 5000  # open drift records read per snapshot (newest first); counts are exact


@dataclass(frozen=True)
class Snapshot:
    status: dict[str, Any]  # `status -o json`
    open_drift: list[dict[str, Any]]  # `drift --open -o json`, newest first, the newest few
    open_drift_counts: dict[tuple[str, str], int]  # (app, cluster) -> open drift records, all
    fleet: Fleet | None
    version: str  # changes when anything above changes
    targets: list[dict[str, Any]]  # the status targets with their rollout phase and pin
    rollouts: dict[str, dict[str, Any]]  # app -> its ongoing rollout

    def target(self, app: str, cluster: str) -> dict[str, Any] | None:
        return next((t for t in self.targets if (t["app"], t["cluster"]) == (app, cluster)), None)


@dataclass(eq=False)
class SnapshotCache:
    """Reads the store (and the daemon's fleet) again only when something changed, and at most
    once per ``max_age`` seconds — or per three times the last read's duration, whichever is
    longer, so a large fleet's page never keeps the daemon's CPU busy."""

    store: Store
    fleet: Callable[[], Fleet | None] = lambda: None
    _: KW_ONLY
    daemon_running: bool | None = True
    max_age: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _current: Snapshot | None = field(default=None, init=False)
    _seen: tuple[int, str] | None = field(default=None, init=False)  # store's, fleet's version
    _next_read: float = field(default=0.0, init=False)

    def get(self) -> Snapshot:
        """The current snapshot. Thread-safe; one reader at a time, the others wait for its
        result."""
        with self._lock:
            now = self.clock()
            if self._current is not None and now < self._next_read:
                return self._current
            fleet = self.fleet()
            seen = (self.store.data_version(), fleet.version if fleet else "")
            if self._current is None or seen != self._seen:
                self._current = self._read(fleet)
                self._seen = seen
            took = self.clock() - now
            self._next_read = now + max(self.max_age, 3 * took)
            return self._current

    def _read(self, fleet: Fleet | None) -> Snapshot:
        store = self.store
        status = status_document(
            store.list_status(),
            store.source_status(),
            store.last_revision(),
            self.daemon_running,
            {(h.app, h.cluster): h for h in store.list_health()},
            store.latest_rollouts(),
            store.list_pins(),
        )
        drift = drift_document(store.list_drift(open_only=True, limit=OPEN_DRIFT_LIMIT))
        counts = store.open_drift_counts()
        digest = hashlib.sha256(
            json.dumps([status, drift, sorted(counts.items())], separators=(",", ":")).encode()
        )
        digest.update(b"-" if fleet is None else f"{fleet.version}/{fleet.clusters!r}".encode())
        return Snapshot(
            status=status,
            open_drift=drift,
            open_drift_counts=counts,
            fleet=fleet,
            version=digest.hexdigest()[:16],
            targets=joined_targets(status),
            rollouts=rollouts_by_app(status),
        )
