"""The daemon: follow a branch of a config repo and keep every cluster reconciled to it.

One main thread decides; worker threads do the slow I/O:

- the *source job* (fetch, load + validate, render) runs when the poll interval (plus jitter)
  expires or, for a local repo, as soon as its refs change (watchfiles);
- one *reconcile pass* per cluster runs when a new revision is published, when the cluster's
  drift interval expires, or when its backoff after a failure expires. Each cluster keeps its
  own schedule, so a slow or dead cluster never holds back the others;
- results are recorded by the main thread only (status, drift, last good revision and how the
  last fetch went in the SQLite store, metrics, logs). Every store call is one transaction, and
  stopping happens between two ticks, so nothing is ever half written.

Each target (app x cluster) runs its own revision (``desired``). A revision whose files are
broken in places moves every target it can: a broken app's targets, a broken cluster's targets,
the apps of a broken group stay on the revision they run, with the located problem in their
status (``blast``); only problems no unit owns (the repo, ``reconciler.yaml``) hold everything,
as an invalid revision. A target whose render fails keeps its previous good render the same way.

A revision that would prune more than the prune limits allow (``guard``) is held: nothing of it
is applied, every target shows ``Held`` and why, until ``reconciler release REV`` records a
release in the store (checked every tick) or a later commit changes things.

The methods live in files by job: ``revisions`` (what the source job loaded becomes the
desired state), ``passes`` (per-cluster passes and health checks) and this file (the tick that
drives them); ``state`` declares what they share.

Time, randomness and thread dispatch are injected (``Clock``, ``rand``, ``Dispatcher``): unit
tests drive :meth:`Daemon.tick` with a fake clock and run passes inline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import structlog

from reconciler.charts.resolver import ChartResolver
from reconciler.daemon.desired import Desired, RenderBook
from reconciler.daemon.follow import Follower, Source
from reconciler.daemon.lag import HeadLag
from reconciler.daemon.live import LiveChanges
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.passes import ClusterPasses
from reconciler.daemon.publish import StatusPublisher
from reconciler.daemon.record import ERROR_STATES, Recorder
from reconciler.daemon.revisions import RevisionJob
from reconciler.daemon.rollouts import Rollouts
from reconciler.daemon.schedule import (
    Clock,
    Dispatcher,
    PoolDispatcher,
    Settings,
    SystemClock,
    ThreadDispatcher,
    Waker,
)
from reconciler.daemon.shards import owner_of
from reconciler.daemon.sharedrollouts import Membership, SharedRollouts
from reconciler.daemon.state import CheckFn, ClusterGate, ReconcileFn
from reconciler.daemon.watch import RepoWatcher
from reconciler.discovery import cluster_capabilities
from reconciler.engine import check_health, reconcile
from reconciler.kube.management import SharedObjects
from reconciler.kube.pool import Clients
from reconciler.rollout.model import Observation
from reconciler.store.db import Store
from reconciler.workers import pool

_SWEEP_KEY = "reconciler.io/status-sweep"  # hashed like a cluster: the sweeping replica
_MAX_SLEEP = 10.0  # the main loop wakes at least this often (health, timeouts)
_HEALTHY_WITHIN = 60.0  # /healthz fails when the main loop has not ticked for this long
_PRUNE_EVERY = 3600.0  # drift history retention is enforced at most this often
_ROLLOUT_TICK = 1.0  # while a rollout runs, the loop reads operators' commands this often


MIN_TICK = 0.05  # seconds: at most about 20 ticks a second, however often the loop is woken


class Daemon(RevisionJob, ClusterPasses):
    """Follows a config repo and reconciles every cluster to it; see the module docstring."""

    def __init__(
        self,
        source: Source,
        store: Store,
        clients: Clients,
        *,
        settings: Settings | None = None,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
        dispatcher: Dispatcher | None = None,
        charts: Callable[[], ChartResolver] | None = None,
        reconcile_fn: ReconcileFn = reconcile,
        check_fn: CheckFn = check_health,
        rand: Callable[[], float] = random.random,
        gate: ClusterGate | None = None,
        shared: SharedObjects | None = None,
        replica: str | None = None,
        live: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.clients = clients
        self.settings = settings or Settings()
        self.metrics = metrics or Metrics()
        self.clock = clock or SystemClock()
        self.waker = Waker()
        self._dispatcher = dispatcher or PoolDispatcher(pool(), self.waker.wake)
        self._source_dispatcher = dispatcher or ThreadDispatcher(self.waker.wake)
        self._follower = Follower(
            source, self.clock, charts, lambda repo: cluster_capabilities(repo, clients)
        )
        self._reconcile = reconcile_fn
        self._check = check_fn
        self._checks = {}
        self._check_started = {}  # wall time each check was dispatched
        self._rand = rand
        self._gate = gate
        self._ours = None
        self.log = structlog.get_logger("reconciler.daemon").bind(repo=source.display)

        self._desired = None
        self._head_desired = None  # head's renders, before rollouts and pins
        self._generation = 0
        self.book = RenderBook()  # renders of every revision some target may run
        self._live = live  # several replicas: the live ones (from the replica Leases)
        # Whether this replica's head is behind an app's rollout (from its fetches and its Git).
        self.lag = HeadLag(source.ancestry, self.log)
        # Several replicas: rollouts are shared on the management cluster, driven by one.
        self.rollouts = Rollouts(
            store,
            self.metrics,
            self.log,
            SharedRollouts(
                shared,
                Membership(replica or "replica", live, self._works),
                self.log,
                lag=self.lag,
            )
            if shared is not None and live is not None
            else None,
        )
        self._wanted = set()  # older revisions to load (rollout bases, pins)
        self._running_before = {}
        self._repass = set()  # clusters whose revision changed: pass them again
        self._head = None
        self._source_job = None
        self._source_error = None
        self._repo_error = None  # head invalid and nothing to fall back on
        self._sources_done = 0
        self._next_poll = 0.0
        self._poked = False
        self._stopping = False
        self._once = False
        self._ready = False
        self._last_tick = self.clock.monotonic()
        self._schedules = {}
        self._running = {}
        self._dispatched = {}
        self.recorder = Recorder(store, self.metrics, self.clock, self.log)
        self._watcher = RepoWatcher(source.watch_paths, self.poke, self.log)
        self._known_clusters = set()  # the clusters of the installed repo
        self._retained: tuple[int, frozenset[str] | None] | None = None  # clients kept for
        self._pending = None  # held by the prune guard until released
        self._pending_loaded = None  # what it was built from (for rollouts)
        self._chart_retry = None  # the head's charts whose source could not be asked
        self._next_prune = self.clock.monotonic()
        # Watched objects that changed: their clusters are passed again within seconds.
        self.live = LiveChanges(self.waker.wake, self.log)
        clients.subscribe(self.live.hear)
        # Sharding on: the status of the clusters this replica owns is published there.
        self.publisher = (
            StatusPublisher(
                store,
                shared,
                replica or "replica",
                self._source_dispatcher,  # a thread of its own: never delays a pass
                self.metrics,
                self.log,
                observed=self._observed_on,
            )
            if shared is not None
            else None
        )

    # -- what others may ask or tell ------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once a valid config has been loaded (and so something can be applied)."""
        return self._ready

    @property
    def healthy(self) -> bool:
        return self.clock.monotonic() - self._last_tick < _HEALTHY_WITHIN

    @property
    def desired(self) -> Desired | None:
        return self._desired

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def busy(self) -> list[str]:
        """Clusters whose pass is still in flight."""
        return sorted(self._running)

    def poke(self) -> None:
        """Fetch now (a commit may have landed). Safe from any thread."""
        self._poked = True
        self.waker.wake()

    def stop(self) -> None:
        """Ask the loop to stop. Safe from signal handlers: sets a flag and writes one byte."""
        self._stopping = True
        self.waker.wake()

    def close(self) -> None:
        """Release the wake-up pipe; the store and the clients belong to the caller."""
        self.waker.close()

    # -- the loop -------------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        """Run until :meth:`stop` (or, with ``once``, until every cluster had one pass).

        Returns the exit code: 0, or with ``once`` 2 when anything failed.
        """
        self.log.info(
            "daemon started",
            interval=self.settings.interval,
            drift_interval=self.settings.drift_interval,
            once=once,
        )
        self._once = once
        if self.settings.watch and not once:
            self._watcher.start()
        try:
            while not self._stopping:
                started = time.monotonic()
                delay = self.tick()
                if once and self.once_done():
                    break
                if self.waker.wait(delay):
                    # Woken (a pass ended, a watch saw a change): what else wakes the loop
                    # within MIN_TICK is served by the same tick. A tick looks at every
                    # cluster, so with many clusters a tick per wake-up would be most of the
                    # process's work.
                    time.sleep(max(0.0, started + MIN_TICK - time.monotonic()))
        finally:
            self._shutdown()
        return self.exit_code() if once else 0

    def tick(self) -> float:
        """Record what finished, start what is due; return how long to sleep at most."""
        now = self.clock.monotonic()
        self._last_tick = now
        self._collect_source()
        if not self._stopping:
            self._maybe_fetch(now)
            self._collect_source()  # an inline dispatcher (tests) has finished it already
        self._collect_passes()
        self._maybe_release()
        self._collect_checks()
        if not self._stopping:
            self._step_rollouts()
        now = self.clock.monotonic()
        self._maybe_prune(now)
        self._check_timeouts(now)
        if not self._stopping:
            self._claim()
            self._retain_clients()
            self._repass |= self.live.take(now).keys()
            self._dispatch(now)
            self._collect_passes()  # an inline dispatcher (tests) has finished them already
            self._dispatch_checks(now)
            self._collect_checks()
            self._publish_status()
        return self._sleep_for(now)

    def owned_clusters(self) -> set[str]:
        """The clusters of the installed revision this daemon owns (all of them unsharded; with
        several replicas, those whose cluster Lease it holds)."""
        clusters = self._installed_clusters()
        return clusters if self._gate is None else clusters & (self._ours or frozenset())

    def _installed_clusters(self) -> set[str]:
        """The clusters of the installed revision: its inventory and every target's cluster."""
        desired = self._desired
        if desired is None:
            return set()
        return set(desired.repo.clusters) | set(desired.targets)

    def _retain_clients(self) -> None:
        """Drop the clients (and so the watches) of clusters gone from the installed revision;
        with several replicas, stop watching the clusters another replica works now. A pass
        still running on one reads for itself."""
        desired = self._desired
        if desired is None:
            return
        key = (desired.generation, self._ours)
        if key == self._retained:
            return
        self._retained = key
        self.clients.retain(self._installed_clusters(), watched=self.owned_clusters())

    def _works(self, cluster: str) -> bool:
        """Whether this daemon works ``cluster`` now (always, unsharded)."""
        return self._gate is None or cluster in (self._ours or frozenset())

    def _publish_status(self) -> None:
        if self.publisher is None:
            return
        touched, self.recorder.touched = self.recorder.touched, set()
        desired = self._desired
        known = set(desired.repo.clusters) if desired is not None else set()
        # One replica deletes the status of clusters that left the repo.
        live = self._live() if self._live is not None else []
        sweeper = owner_of(_SWEEP_KEY, live) == self.publisher.replica
        self.publisher.tick(self.owned_clusters(), touched, known, sweeper)

    def _observed_on(self, cluster: str) -> dict[str, Observation]:
        """What the rollouts observed of each app on ``cluster`` (published for drivers)."""
        return {app: o for (app, name), o in self.rollouts.observed.items() if name == cluster}

    def once_done(self) -> bool:
        """After one load, every cluster of the desired revision finished (or timed out) once."""
        if self._sources_done == 0 or self._source_job is not None:
            return False
        desired = self._desired
        if desired is None:
            return True
        for name in self._targeted(desired):
            schedule = self._schedules.get(name)
            if schedule is None or self._dispatched.get(name) != desired.generation:
                return False
            if schedule.running and not schedule.timed_out:
                return False
        return True

    def exit_code(self) -> int:
        """2 when the repo could not be read or loaded or any target is in an error state."""
        if self._source_error or self._repo_error or self._desired is None:
            return 2
        if self._desired.repo_error:
            return 2
        return 2 if any(s in ERROR_STATES for s in self.recorder.states.values()) else 0

    def _maybe_prune(self, now: float) -> None:
        """Enforce the drift history's retention, at most once per ``_PRUNE_EVERY``."""
        if now < self._next_prune or self._stopping:
            return
        self._next_prune = now + _PRUNE_EVERY
        retention = timedelta(seconds=self.settings.drift_retention)
        pruned = self.store.prune_drift(retention, self.clock.now())
        if pruned:
            self.log.info("old drift records deleted", records=pruned, older_than=str(retention))

    def _sleep_for(self, now: float) -> float:
        wake = [now + _MAX_SLEEP]
        held = self.live.waiting(now)  # a watched change held back a moment
        if held is not None:
            wake.append(held)
        if self._source_job is None:
            wake.append(now if self._poked or self._wanted else self._next_poll)
        if self.rollouts.active():
            # Operators' commands arrive through the store: look often while a rollout runs.
            wake.append(now + _ROLLOUT_TICK)
            at = self.rollouts.wake_at()
            if at is not None:
                wake.append(now + max(0.0, at - self.clock.now().timestamp()))
        desired = self._desired
        if desired is not None:
            for name in self._targeted(desired):
                schedule = self._schedules.get(name)
                if schedule is None:
                    return 0.0
                wake.append(schedule.wake_at(desired.generation, self.settings.cluster_timeout))
        return max(0.0, min(wake) - now)

    def _shutdown(self) -> None:
        self._stopping = True
        self._watcher.stop()
        deadline = self.clock.monotonic() + self.settings.shutdown_grace
        while self._running and self.clock.monotonic() < deadline:
            self._collect_passes()
            if self._running:
                self.waker.wait(min(0.1, max(0.0, deadline - self.clock.monotonic())))
        self._collect_passes()
        self._watcher.join()
        if self.busy:
            self.log.warning("daemon stopped; passes abandoned in flight", clusters=self.busy)
        else:
            self.log.info("daemon stopped")
