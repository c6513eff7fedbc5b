"""Publishes the status of the clusters this replica owns to the management cluster.

Main thread decides, a worker writes: each tick the clusters whose rows changed (the recorder's
``touched``) and those newly owned are encoded from the store (``published.status``); only a
cluster whose content hash differs from what this replica last wrote is sent, by one write job
at a time. An idle fleet therefore sends no writes; a failed write is retried on a later tick
(the management cluster being down never holds back reconciling). A restarted replica first
lists what is published (one request) so unchanged status is not written again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future
from dataclasses import dataclass

from structlog.typing import FilteringBoundLogger

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.schedule import Dispatcher
from reconciler.errors import ReconcilerError
from reconciler.kube.management import HASH_ANNOTATION, REPLICA_LABEL, SharedObjects
from reconciler.published.status import build, content_hash, encode
from reconciler.rollout.model import Observation
from reconciler.store.db import Store


@dataclass(frozen=True)
class _Write:
    cluster: str
    data: dict[str, str]
    digest: str


class StatusPublisher:
    """See the module docstring. Main thread only, except the write job it dispatches."""

    def __init__(
        self,
        store: Store,
        shared: SharedObjects,
        replica: str,
        dispatcher: Dispatcher,
        metrics: Metrics,
        log: FilteringBoundLogger,
        observed: Callable[[str], Mapping[str, Observation]] = lambda cluster: {},
    ) -> None:
        self.store = store
        self.shared = shared
        self.replica = replica
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.log = log.bind(replica=replica)
        self.observed = observed
        self._written: dict[str, str] = {}  # cluster -> content hash this replica last wrote
        self._due: set[str] = set()  # owned clusters to look at again
        self._owned: set[str] = set()
        self._job: Future[list[tuple[_Write, str | None]]] | None = None
        self._seeded = False
        self.writes = 0  # status objects written since start

    def tick(self, owned: Collection[str], touched: Collection[str]) -> None:
        """Collect the write in flight; look at ``touched`` and newly owned clusters; send what
        changed."""
        self._collect()
        owned_now = set(owned)
        for lost in self._owned - owned_now:
            self._written.pop(lost, None)
            self._due.discard(lost)
        self._due |= (owned_now - self._owned) | (set(touched) & owned_now)
        self._owned = owned_now
        if self._job is not None or not self._due:
            return
        if not self._seeded:
            self._seed()
        writes = []
        for cluster in sorted(self._due):
            status = build(
                cluster,
                self.replica,
                self.store.list_status(cluster=cluster),
                self.store.list_health(cluster=cluster),
                self.store.list_drift(cluster=cluster, open_only=True),
                self.observed(cluster),
            )
            if not status.targets:
                continue  # nothing recorded yet: the first pass will say
            digest = content_hash(status)
            if self._written.get(cluster) != digest:
                writes.append(_Write(cluster, encode(status), digest))
        self._due.clear()
        if writes:
            self._job = self.dispatcher.submit(lambda: self._send(writes), name="publish-status")

    def _seed(self) -> None:
        """What this replica wrote before a restart, as published (one list request)."""
        try:
            found = self.shared.statuses()
        except ReconcilerError as err:
            self.log.warning("cannot read the published status", error=str(err))
            return
        self._seeded = True
        for item in found:
            cluster = item.data.get("cluster")
            digest = item.annotations.get(HASH_ANNOTATION)
            if cluster and digest and item.labels.get(REPLICA_LABEL) == self.replica:
                self._written[cluster] = digest

    def _send(self, writes: list[_Write]) -> list[tuple[_Write, str | None]]:
        """Runs on a worker: every write, each with its error (None: written)."""
        results: list[tuple[_Write, str | None]] = []
        for write in writes:
            try:
                self.shared.publish_status(write.cluster, self.replica, write.data, write.digest)
            except ReconcilerError as err:
                results.append((write, str(err)))
            else:
                results.append((write, None))
        return results

    def _collect(self) -> None:
        job = self._job
        if job is None or not job.done():
            return
        self._job = None
        try:
            results = job.result()
        except Exception:
            self.log.exception("bug: publishing status crashed")
            self._due |= self._owned
            return
        for write, error in results:
            if error is None:
                if write.cluster in self._owned:
                    self._written[write.cluster] = write.digest
                self.writes += 1
                self.metrics.status_writes.inc()
            else:
                self.log.warning("status not published", cluster=write.cluster, error=error)
                self._due.add(write.cluster)

    def busy(self) -> bool:
        return self._job is not None
