"""Publishes the status of the clusters this replica owns, and its own state, to the management
cluster.

Main thread decides, a worker writes: each tick the clusters whose rows changed (the recorder's
``touched``) and those newly owned are encoded from the store (``published.status``); only a
cluster whose content hash differs from what this replica last wrote is sent, by one write job
at a time. An idle fleet therefore sends no writes; a failed write is retried on a later tick
(the management cluster being down never holds back reconciling). A restarted replica first
lists what is published (one request) so unchanged status is not written again. The replica's
own state (how fetching the repo goes, the newest revision: ``published.replica``) is written
the same way, when it says something new.

While ownership moves, the replica that lost a cluster may still have a write of it in
flight, landing after the new owner's: so the new owner reads each cluster it gained back once,
a few seconds after publishing it, and writes again when the object names another replica.

The status of a cluster that left the repo is deleted by one replica (the ``sweeper``, chosen
by the caller), once per set of clusters: one list request and a delete per departed cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

from structlog.typing import FilteringBoundLogger

from reconciler.daemon.metrics import Metrics
from reconciler.daemon.schedule import Dispatcher
from reconciler.errors import ReconcilerError
from reconciler.kube.management import (
    CLUSTER_LABEL,
    HASH_ANNOTATION,
    REPLICA_LABEL,
    SharedObjects,
)
from reconciler.published import replica as replica_doc
from reconciler.published.status import build, content_hash, encode
from reconciler.rollout.model import Observation
from reconciler.store.db import Store

_SELF = ""  # the key of the replica's own document among the writes
_CHECK_AFTER = 5.0  # seconds after gaining a cluster its published status is read back


@dataclass(frozen=True)
class _Write:
    cluster: str  # _SELF: the replica's own state
    data: dict[str, str]
    digest: str


@dataclass
class _Job:
    writes: list[_Write]
    keep: frozenset[str] | None  # sweep: delete the status of clusters not in it
    check: list[str] = field(default_factory=list)  # gained clusters to read back
    errors: dict[str, str] = field(default_factory=dict)  # cluster (or _SELF) -> error
    sweep_error: str | None = None
    overwritten: list[str] = field(default_factory=list)  # read back naming another replica


@dataclass(eq=False)
class StatusPublisher:
    """See the module docstring. Main thread only, except the write job it dispatches."""

    store: Store
    shared: SharedObjects
    replica: str
    dispatcher: Dispatcher
    metrics: Metrics
    log: FilteringBoundLogger
    observed: Callable[[str], Mapping[str, Observation]] = lambda cluster: {}
    monotonic: Callable[[], float] = time.monotonic
    check_after: float = _CHECK_AFTER  # seconds after gaining a cluster it is read back
    writes: int = field(default=0, init=False)  # objects written since start
    # cluster (or _SELF) -> content hash last written
    _written: dict[str, str] = field(default_factory=dict, init=False)
    _due: set[str] = field(default_factory=set, init=False)  # owned clusters to look at again
    _owned: set[str] = field(default_factory=set, init=False)
    _job: Future[_Job] | None = field(default=None, init=False)
    _seeded: bool = field(default=False, init=False)
    # the clusters the last sweep kept; clusters to keep, for the next job
    _swept: frozenset[str] | None = field(default=None, init=False)
    _sweep: frozenset[str] | None = field(default=None, init=False)
    # gained cluster -> when to read it back
    _checks: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.log = self.log.bind(replica=self.replica)

    def tick(
        self,
        owned: Collection[str],
        touched: Collection[str],
        known: Collection[str] = (),
        sweeper: bool = False,
    ) -> None:
        """Collect the write in flight; look at ``touched`` and newly owned clusters and at the
        replica's own state; send what changed. The ``sweeper`` also deletes the status of
        clusters not ``known`` (in the repo) any more."""
        self._collect()
        if sweeper and known and frozenset(known) != self._swept:
            self._sweep = frozenset(known)
        owned_now = set(owned)
        now = self.monotonic()
        for lost in self._owned - owned_now:
            self._written.pop(lost, None)
            self._due.discard(lost)
            self._checks.pop(lost, None)
        gained = owned_now - self._owned
        for cluster in gained:
            self._checks[cluster] = now + self.check_after
        self._due |= gained | (set(touched) & owned_now)
        self._owned = owned_now
        if self._job is not None:
            return
        check = sorted(c for c, at in self._checks.items() if at <= now and c in self._written)
        for cluster in check:
            del self._checks[cluster]
        if not self._seeded:
            self._seed()
        writes = [w for w in (self._own_state(),) if w is not None]
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
        keep, self._sweep = self._sweep, None
        if writes or keep is not None or check:
            job = _Job(writes, keep, check)
            self._job = self.dispatcher.submit(lambda: self._send(job), name="publish-status")

    def busy(self) -> bool:
        return self._job is not None

    def _own_state(self) -> _Write | None:
        source, revision = self.store.source_status(), self.store.last_revision()
        if source is None and revision is None:
            return None
        mine = replica_doc.ReplicaStatus(self.replica, source, revision)
        digest = replica_doc.content_hash(mine)
        if self._written.get(_SELF) == digest:
            return None
        return _Write(_SELF, replica_doc.encode(mine), digest)

    def _seed(self) -> None:
        """What this replica wrote before a restart, as published (one list request each)."""
        try:
            found = self.shared.statuses()
            own = self.shared.replicas()
        except ReconcilerError as err:
            self.log.warning("cannot read the published status", error=str(err))
            return
        self._seeded = True
        for item in found:
            cluster = item.data.get("cluster")
            digest = item.annotations.get(HASH_ANNOTATION)
            if cluster and digest and item.labels.get(REPLICA_LABEL) == self.replica:
                self._written[cluster] = digest
        for item in own:
            digest = item.annotations.get(HASH_ANNOTATION)
            if digest and item.labels.get(REPLICA_LABEL) == self.replica:
                self._written[_SELF] = digest

    def _send(self, job: _Job) -> _Job:
        """Runs on a worker: every write (its error kept), then the sweep."""
        for write in job.writes:
            try:
                if write.cluster == _SELF:
                    self.shared.publish_replica(self.replica, write.data, write.digest)
                else:
                    self.shared.publish_status(
                        write.cluster, self.replica, write.data, write.digest
                    )
            except ReconcilerError as err:
                job.errors[write.cluster] = str(err)
        for cluster in job.check:
            try:
                found = self.shared.status(cluster)
            except ReconcilerError:
                continue  # read again on a later gain; the next change rewrites it anyway
            if found is None or found.labels.get(REPLICA_LABEL) != self.replica:
                job.overwritten.append(cluster)
        if job.keep is not None:
            try:
                for item in self.shared.statuses():
                    cluster = item.data.get("cluster") or item.labels.get(CLUSTER_LABEL, "")
                    if cluster and cluster not in job.keep:
                        self.shared.delete_status(cluster)
                        self.log.info("status of a departed cluster deleted", cluster=cluster)
            except ReconcilerError as err:
                job.sweep_error = str(err)
        return job

    def _collect(self) -> None:
        future = self._job
        if future is None or not future.done():
            return
        self._job = None
        try:
            job = future.result()
        except Exception:
            self.log.exception("bug: publishing status crashed")
            self._due |= self._owned
            return
        for write in job.writes:
            error = job.errors.get(write.cluster)
            if error is not None:
                what = "own state" if write.cluster == _SELF else write.cluster
                self.log.warning("status not published", of=what, error=error)
                if write.cluster != _SELF:
                    self._due.add(write.cluster)
                continue
            if write.cluster == _SELF or write.cluster in self._owned:
                self._written[write.cluster] = write.digest
            self.writes += 1
            self.metrics.status_writes.inc()
        for cluster in job.overwritten:
            if cluster in self._owned:
                self.log.info(
                    "status overwritten by the previous owner; writing it again", cluster=cluster
                )
                self._written.pop(cluster, None)
                self._due.add(cluster)
        if job.keep is not None:
            if job.sweep_error is None:
                self._swept = job.keep
            else:
                self.log.warning("departed clusters' status not deleted", error=job.sweep_error)
