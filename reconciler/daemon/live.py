"""What the clusters' watches tell the loop: which clusters to pass again, and watch trouble.

The kube clients keep each cluster's live state current through watches and report every
change of a watched object's content (``reconciler.kube.watches``). The loop passes that
cluster again soon, so drift is seen (and healed) within seconds instead of at the next drift
interval. Events arrive on the I/O thread: :meth:`LiveChanges.hear` only records and wakes the
loop; :meth:`take` hands the clusters over on the loop's thread, each at most once per
``min_gap`` seconds (an object two managers fight over must not become a busy loop). A scope
that cannot be watched (RBAC forbids it, say) is logged once per cluster: its reads fall back
to requests on every pass (polling). A kind RBAC lets us watch only namespace by namespace is
watched so, and a kind no longer served (its CRD removed) is not watched: both logged as
information (a later RBAC refusal on that cluster is still warned).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from structlog.typing import FilteringBoundLogger

from reconciler.kube.scopes import LiveEvent


class LiveChanges:
    """Clusters whose watched objects changed, handed from the I/O thread to the loop."""

    def __init__(
        self, wake: Callable[[], None], log: FilteringBoundLogger, min_gap: float = 1.0
    ) -> None:
        self._wake = wake
        self._log = log
        self._min_gap = min_gap
        self._lock = threading.Lock()
        self._changed: dict[str, str] = {}  # cluster -> one object that changed (for the log)
        self._last: dict[str, float] = {}  # cluster -> when it was last handed over
        self._unwatchable: set[str] = set()

    def hear(self, event: LiveEvent) -> None:
        """Called by the kube clients (on their I/O thread) for every watch event."""
        if event.what == "changed":
            with self._lock:
                self._changed.setdefault(event.cluster, event.obj)
            self._wake()
            return
        log = self._log.bind(cluster=event.cluster, scope=event.scope)
        if event.what == "unwatchable":
            with self._lock:
                first = event.cluster not in self._unwatchable
                self._unwatchable.add(event.cluster)
            if first:
                log.warning(
                    "cannot watch; polling instead (drift is seen at the drift interval)",
                    reason=event.reason,
                )
        elif event.what == "missing":  # not RBAC: a later real refusal is still warned
            log.info("kind no longer served; not watched", reason=event.reason)
        elif event.what == "narrowed":
            log.info("cannot watch across namespaces; watching each namespace", reason=event.reason)
        elif event.what == "broken":
            log.info("watch broken; listing again", reason=event.reason)
        elif event.what == "recovered":
            log.info("watch recovered")

    def take(self, now: float) -> dict[str, str]:
        """Clusters to pass again now (with one changed object each); later ones wait."""
        with self._lock:
            ready = {
                cluster: obj
                for cluster, obj in self._changed.items()
                if now - self._last.get(cluster, float("-inf")) >= self._min_gap
            }
            for cluster in ready:
                del self._changed[cluster]
                self._last[cluster] = now
        return ready

    def waiting(self, now: float) -> float | None:
        """When the next held-back cluster may be handed over, if any waits."""
        with self._lock:
            times = [self._last.get(c, now) + self._min_gap for c in self._changed]
        return min(times) if times else None
