"""Several replicas sharing the fleet: this replica's Leases on the management cluster.

Each replica holds a Lease naming itself (its session), renewed every ``renew`` seconds. The
replicas whose sessions are live decide, by rendezvous hashing (``shards``), which replica owns
each cluster. Before working a cluster a replica takes its per-cluster Lease (holder = the
replica), by a create or a resourceVersion-conditional update, and only when the Lease is new,
released, already its own, or its holder's session expired (``leasing``). It gives a cluster's
Lease back as soon as it no longer owns the cluster and no pass is in flight there, and keeps
trying until the Lease no longer names it (also those it held when its session lapsed). The main
loop asks :meth:`ReplicaLeases.claim` every tick which clusters it may work: those whose Lease
it holds, that it still owns, while its own session is surely valid.

A thread of its own does the Lease I/O, so a slow management cluster never stalls the loop;
when it cannot renew the session, the replica stops starting passes when the session may have
expired. One renewal per replica and period, plus a read and a write per cluster that changes
hands: the cost does not grow with the fleet.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog
from structlog.typing import FilteringBoundLogger

from reconciler.daemon.leasing import (
    Action,
    Observer,
    Session,
    alive,
    decide,
    live_replicas,
    next_round_in,
    valid_until,
)
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.shards import owner_of
from reconciler.errors import KubeError
from reconciler.kube.leases import Lease, LeaseApi, LeaseConflict, lease_name, micro_time

KIND_LABEL = "reconciler.io/lease"  # "replica" or "cluster"
INSTANCE_LABEL = "reconciler.io/instance"
CLUSTER_LABEL = "reconciler.io/cluster"
GONE_AFTER = 10  # lease durations after which a dead replica's Lease is deleted


def default_replica_id(environ: dict[str, str] | None = None) -> str:
    """The pod's name in a pod (``$POD_NAME``, else the hostname a pod gets), else
    hostname-pid: unique per process, stable for a pod across container restarts."""
    env = os.environ if environ is None else environ
    if env.get("POD_NAME"):
        return env["POD_NAME"]
    host = socket.gethostname().split(".")[0] or "reconciler"
    if env.get("KUBERNETES_SERVICE_HOST"):
        return host
    return f"{host}-{os.getpid()}"


@dataclass(frozen=True)
class ShardSettings:
    """How this replica shares the fleet."""

    namespace: str
    replica: str
    instance: str
    duration: float = 15.0  # a session not renewed for this long has expired
    renew: float = 5.0  # renew the session (and look at the others) this often

    @property
    def seconds(self) -> int:
        """The lease duration in whole seconds (rounded down, at least 1): what the Leases say
        (``leaseDurationSeconds``), so what the others judge our session by, and therefore
        what this replica judges its own session by too."""
        return max(1, math.floor(self.duration))

    @property
    def margin(self) -> float:
        """Stop work this long before the session may have expired (a late clock tick, a
        renewal whose answer is still on the way)."""
        return min(self.renew, self.seconds / 3)


def pass_outlives_lease(cluster_timeout: float, settings: ShardSettings) -> str | None:
    """Why a pass may go on after this replica lost its Lease (None when it cannot): a pass in
    flight is not interrupted when the session lapses, and may run up to ``cluster_timeout``."""
    if cluster_timeout <= settings.seconds:
        return None
    return (
        f"--cluster-timeout {cluster_timeout:g}s is longer than --shard-lease-duration "
        f"{settings.seconds}s: a pass in flight when this replica loses its Lease (the management "
        "cluster unreachable) is not interrupted, so another replica may work that cluster "
        "before it ends; keep passes shorter than the lease duration"
    )


class ReplicaLeases:
    """This replica's session and cluster Leases; see the module docstring. The loop calls
    :meth:`claim` (main thread); :meth:`run` (its own thread) does the I/O."""

    def __init__(
        self,
        api: LeaseApi,
        settings: ShardSettings,
        *,
        metrics: Metrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_change: Callable[[], None] = lambda: None,
        start_on_claim: bool = False,
    ) -> None:
        self.api = api
        self.settings = settings
        self.me = settings.replica
        self.metrics = metrics
        self._monotonic = monotonic
        self._wall = wall
        self.on_change = on_change
        self.start_on_claim = start_on_claim
        self.log: FilteringBoundLogger = structlog.get_logger("reconciler.replicas").bind(
            replica=self.me
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer = Observer()
        # Shared with the main thread (under the lock):
        self._clusters: frozenset[str] = frozenset()
        self._busy: frozenset[str] = frozenset()
        self._valid_until = float("-inf")
        self._owned: frozenset[str] = frozenset()
        self._held: dict[str, Lease] = {}
        # The lease thread's own:
        # Leases that may still name us and must be given back (or adopted again, when we own
        # the cluster): not owned any more, or held when our session lapsed. Kept until the
        # management cluster confirms they no longer name us.
        self._releasing: dict[str, Lease] = {}
        self._renewed = False  # the last renewal succeeded
        self._session: Lease | None = None
        self._live: list[str] = []
        self._unreachable = False
        self._exported: set[str] = set()
        self._last_attempt = float("-inf")
        self._session_leases: dict[str, Lease] = {}

    # -- the main loop's side --------------------------------------------------------------------

    def claim(self, clusters: Collection[str], busy: Collection[str]) -> frozenset[str]:
        """Tell which clusters the desired revision targets and which have a pass in flight;
        get back those this replica may start work on now.

        With ``start_on_claim``, the first call starts the lease thread: the loop claims only
        once it has loaded a revision, and a replica that cannot load any (a broken head and
        no earlier revision, git unreachable) must not announce a session, or the others would
        give it a share of the fleet that nobody then works."""
        if self.start_on_claim and self._thread is None and not self._stop.is_set():
            self.start()
        with self._lock:
            self._clusters = frozenset(clusters)
            self._busy = frozenset(busy)
            if self._monotonic() >= self._valid_until:
                return frozenset()
            return frozenset(c for c in self._held if c in self._owned and c in self._clusters)

    def begin(self, cluster: str) -> bool:
        """A pass is about to start on ``cluster``: True, and the cluster is busy until the next
        :meth:`claim` (which hears of the passes in flight) when its Lease is still held. The
        lease thread gives back no busy cluster, so no pass ever runs on a released Lease."""
        with self._lock:
            if self._monotonic() >= self._valid_until:
                return False
            if cluster not in self._held or cluster not in self._owned:
                return False
            self._busy = self._busy | {cluster}
            return True

    def live(self) -> list[str]:
        """The live replicas as last seen, this one included; none while this replica's own
        session may have expired (it then drives nothing)."""
        with self._lock:
            if self._monotonic() >= self._valid_until:
                return []
            return list(self._live)

    # -- the lease thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="reconciler-leases", daemon=True)
        self._thread.start()

    def run(self) -> None:
        while not self._stop.is_set():
            started = self._monotonic()
            self._renewed = False
            try:
                self.step()
            except Exception:
                self.log.exception("bug: lease round crashed")
            elapsed = self._monotonic() - started
            self._stop.wait(next_round_in(self.settings.renew, elapsed, self._renewed))

    def stop(self, *, release: bool = True, keep: Collection[str] = ()) -> None:
        """Stop the thread; with ``release``, give back every cluster Lease (except those of
        ``keep``: passes still in flight) and the session, so the others take over at once
        instead of after the lease duration."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.renew + self.api.timeout * 2)
        if not release:
            return
        with self._lock:
            held = {**self._releasing, **self._held}
            self._held.clear()
            self._valid_until = float("-inf")
        self._releasing.clear()
        for cluster, lease in sorted(held.items()):
            if cluster not in keep:
                self._release(cluster, lease)
        if self._session is not None and not keep:
            try:
                self.api.delete(self._session)  # gone: not live, and nothing left behind
            except KubeError as err:
                self.log.warning("cannot delete the replica lease", error=str(err))
        self.log.info("replica leases released", clusters=len(held))

    def step(self) -> None:
        """One round: renew the session, see who is live, give back and take cluster Leases."""
        valid = self._renew()
        try:
            sessions = self._sessions()
        except KubeError as err:
            self._say_unreachable(err)
            return
        now = self._monotonic()  # what was listed is judged as seen now, not earlier
        live = live_replicas(sessions, self._observer, now, me=self.me, my_session_valid=valid)
        self._delete_gone(sessions, now)
        self._observer.forget(2 * GONE_AFTER * self.settings.duration, now)
        if live != self._live:
            self.log.info(
                "replicas changed",
                live=live,
                joined=sorted(set(live) - set(self._live)),
                left=sorted(set(self._live) - set(live)),
            )
            with self._lock:
                self._live = live
        with self._lock:
            clusters = self._clusters
            if not valid:
                # Our session may have expired: others may take our clusters. Stop working
                # them; once the session is back, a Lease that still names us is adopted again
                # (we own the cluster) or given back (we do not).
                self._lapsed()
            held = dict(self._held)
        owned = (
            frozenset(c for c in clusters if owner_of(c, live) == self.me) if valid else frozenset()
        )
        for cluster, lease in sorted(held.items()):
            if cluster in owned:
                continue
            with self._lock:
                if cluster in self._busy:  # a pass runs (or just began) there: keep it for now
                    continue
                self._held.pop(cluster, None)  # from here on no pass can begin on it
            self._releasing[cluster] = lease
        for cluster, lease in sorted(self._releasing.items()) if valid else ():
            if cluster in owned:
                continue  # ours again: adopted below when it still names us
            with self._lock:
                if cluster in self._busy:  # a pass from before a lapse is still running
                    continue
            if self._release(cluster, lease):
                del self._releasing[cluster]
            self._heartbeat()
        for cluster in sorted(owned - set(held)):
            if not self._heartbeat():
                break  # our session lapsed meanwhile: take nothing more this round
            self._acquire(cluster, sessions, now)  # judged as of the list, never later
        with self._lock:
            gained, lost = sorted(owned - self._owned), sorted(self._owned - owned)
            self._owned = owned
            held_now = sorted(c for c in self._held if c in owned)
        if gained or lost:
            self.log.info(
                "shard ownership changed",
                owned=len(owned),
                gained=gained,
                lost=lost,
                replicas=len(live),
            )
        if gained or lost or set(held_now) != self._exported:
            self.on_change()  # the loop may start (or must stop starting) passes
        self._export(live, held_now)

    def _heartbeat(self) -> bool:
        """Renew the session when a renew period passed since the last attempt (a round that
        takes or gives back many cluster Leases must not starve it); True while it is valid."""
        if self._monotonic() - self._last_attempt >= self.settings.renew:
            return self._renew()
        return self._still_valid()

    def _renew(self) -> bool:
        """Renew (or create) our session Lease; True while it is surely valid. A 409 (someone
        wrote it, or we did and the answer was lost) is read again and retried at once."""
        name = lease_name(self.settings.instance, "replica", self.me)
        self._renewed = False
        for attempt in (1, 2):
            sent = self._last_attempt = self._monotonic()
            stamp = micro_time(self._wall())
            try:
                current = self._session or self.api.get(name)
                if current is None:
                    lease = self.api.create(self._new_lease(name, stamp, self._labels("replica")))
                    self.log.info("replica lease created", lease=name)
                else:
                    acquired = current.acquire_time if current.holder == self.me else stamp
                    lease = self.api.update(
                        self._as_holder(current, stamp, acquired, current.transitions)
                    )
            except LeaseConflict:
                self._session = None  # read it again
                if attempt == 1:
                    continue
                return self._still_valid()
            except KubeError as err:
                self._session = None if err.status == 404 else self._session
                self._say_unreachable(err)
                return self._still_valid()
            break
        self._session = lease
        self._renewed = True
        with self._lock:
            if sent >= self._valid_until:
                # The session had lapsed: others may have taken our clusters meanwhile.
                self._lapsed()
        if self._unreachable:
            self.log.info("management cluster reachable again")
            self._unreachable = False
        with self._lock:
            self._valid_until = valid_until(sent, self.settings.seconds, self.settings.margin)
        return True

    def _lapsed(self) -> None:
        """Our session may have expired (called under the lock): work no cluster; every Lease
        held is to be adopted again after a read (still ours) or given back (not ours)."""
        self._releasing.update(self._held)
        self._held.clear()

    def _still_valid(self) -> bool:
        with self._lock:
            return self._monotonic() < self._valid_until

    def _delete_gone(self, sessions: dict[str, Session], now: float) -> None:
        """Delete the Leases of replicas gone for long (a pod's name is new at every rollout,
        so they would pile up): unchanged for ``GONE_AFTER`` lease durations as observed here,
        by then their clusters have moved. Conditional: a replica back meanwhile keeps its."""
        for key, session in sessions.items():
            if key == self.me:
                continue
            self._observer.observe(key, session.fingerprint, now)
            if self._observer.unchanged_for(key, now) < GONE_AFTER * session.duration:
                continue
            lease = self._session_leases.get(key)
            if lease is None:
                continue
            try:
                self.api.delete(lease)
            except KubeError:
                continue  # renewed (409) or deleted meanwhile, or unreachable: next round
            self.log.info("lease of a long-gone replica deleted", gone=key, lease=lease.name)

    def _sessions(self) -> dict[str, Session]:
        leases = self.api.list(f"{KIND_LABEL}=replica,{INSTANCE_LABEL}={self.settings.instance}")
        self._session_leases = {lease.holder or lease.name: lease for lease in leases}
        return {
            lease.holder or lease.name: Session(
                name=lease.holder or lease.name,
                holder=lease.holder,
                duration=float(lease.duration or self.settings.seconds),
                fingerprint=lease.fingerprint,
            )
            for lease in leases
        }

    def _acquire(self, cluster: str, sessions: dict[str, Session], now: float) -> None:
        name = lease_name(self.settings.instance, "cluster", cluster)
        log = self.log.bind(cluster=cluster, lease=name)
        stamp = micro_time(self._wall())
        try:
            lease = self.api.get(name)
            holder = lease.holder if lease is not None else None
            holder_alive = holder is not None and alive(
                holder, sessions, self._observer, now, self.settings.seconds
            )
            decision = decide(lease is not None, holder, self.me, holder_alive)
            if decision.action is Action.WAIT:
                self._releasing.pop(cluster, None)  # another replica's: nothing to give back
                log.debug("cluster lease busy", reason=decision.reason)
                return
            if decision.action is Action.CREATE or lease is None:
                labels = {**self._labels("cluster"), CLUSTER_LABEL: lease_name(cluster)}
                taken = self.api.create(self._new_lease(name, stamp, labels))
            elif decision.action is Action.ADOPT:
                taken = lease
            else:
                taken = self.api.update(self._as_holder(lease, stamp, stamp, lease.transitions + 1))
        except LeaseConflict:
            self._releasing.pop(cluster, None)
            log.info("cluster lease taken by another replica first")
            return
        except KubeError as err:
            self._say_unreachable(err)
            return
        self._releasing.pop(cluster, None)
        with self._lock:
            self._held[cluster] = taken
        log.info("cluster lease taken", reason=decision.reason, previous=holder)

    def _release(self, cluster: str, lease: Lease) -> bool:
        """Give a cluster's Lease back: True once it no longer names us (released, taken
        over, deleted); False when it may still name us (the management cluster did not
        answer), to be tried again next round: nobody else takes a Lease naming a live
        replica, so a release that is not retried leaves the cluster to nobody."""
        log = self.log.bind(cluster=cluster, lease=lease.name)
        for attempt in (1, 2):
            try:
                self.api.update(replace(lease, holder=None, renew_time=micro_time(self._wall())))
            except LeaseConflict:
                # Written since we read it: taken over, or our own release whose answer was
                # lost, or anyone's write that left it naming us. Read it again.
                try:
                    current = self.api.get(lease.name)
                except KubeError as err:
                    log.warning("cannot release the cluster lease, will retry", error=str(err))
                    return False
                if current is None or current.holder != self.me:
                    log.info("cluster lease no longer ours", holder=current and current.holder)
                    return True
                lease = current
                if attempt == 1:
                    continue
                return False
            except KubeError as err:
                if err.status == 404:
                    return True
                log.warning("cannot release the cluster lease, will retry", error=str(err))
                return False
            log.info("cluster lease released")
            return True
        return False

    def _new_lease(self, name: str, stamp: str, labels: dict[str, str]) -> Lease:
        """A Lease this replica creates, held by it from ``stamp``."""
        return self._as_holder(Lease(name=name, labels=labels), stamp, stamp, 0)

    def _as_holder(self, lease: Lease, stamp: str, acquired: str | None, transitions: int) -> Lease:
        """``lease`` as this replica writes it: held by it since ``acquired``, renewed at
        ``stamp``, for the session's duration."""
        return replace(
            lease,
            holder=self.me,
            duration=self.settings.seconds,
            acquire_time=acquired,
            renew_time=stamp,
            transitions=transitions,
        )

    def _labels(self, kind: str) -> dict[str, str]:
        return {KIND_LABEL: kind, INSTANCE_LABEL: lease_name(self.settings.instance)}

    def _say_unreachable(self, err: KubeError) -> None:
        if not self._unreachable:
            self.log.warning("management cluster: lease request failed", error=str(err))
        self._unreachable = True

    def _export(self, live: Iterable[str], held: list[str]) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        metrics.shard_replicas.set(len(list(live)))
        metrics.shard_owned.labels(self.me).set(len(held))
        previous = set(self._exported)
        for cluster in held:
            metrics.shard_cluster.labels(cluster, self.me).set(1)
        for cluster in previous - set(held):
            metrics.forget_shard_cluster(cluster, self.me)
        self._exported = set(held)
