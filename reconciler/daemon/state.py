"""The main loop's state, declared once for the parts of :class:`~reconciler.daemon.loop.Daemon`.

The daemon is one object whose methods live in files by job: ``revisions`` (the source job's
results: publish, hold, release, which revision each target runs), ``passes`` (per-cluster
passes and health checks: dispatch, time out, collect) and ``loop`` (the tick that drives
them). Only the main thread reads or changes this state; worker threads get what they need as
arguments. ``Daemon.__init__`` sets every attribute declared here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from structlog.typing import FilteringBoundLogger

from reconciler.config.model import Repo
from reconciler.daemon.chartretry import ChartRetry
from reconciler.daemon.desired import Desired, RenderBook, TargetKey
from reconciler.daemon.follow import Follower, Loaded, Source
from reconciler.daemon.lag import HeadLag
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.record import HealthReport, PassReport, Recorder
from reconciler.daemon.rollouts import Rollouts
from reconciler.daemon.schedule import Clock, ClusterSchedule, Dispatcher, Settings, Waker
from reconciler.daemon.watch import RepoWatcher
from reconciler.engine import TargetOutcome
from reconciler.health import TargetHealth
from reconciler.kube.pool import Clients
from reconciler.render import TargetResult
from reconciler.store.db import Store


class ReconcileFn(Protocol):
    """How a pass calls ``engine.reconcile`` (injected so scheduling is testable without
    clusters): always on one named cluster, as this daemon's instance, with the revision each
    target runs. A stand-in needs to accept only this."""

    def __call__(
        self,
        repo: Repo,
        rendered: Iterable[TargetResult],
        clients: Clients,
        revision: str,
        *,
        apply: bool,
        clusters: Iterable[str],
        instance: str,
        revisions: Mapping[tuple[str, str], str | None],
    ) -> list[TargetOutcome]: ...


class CheckFn(Protocol):
    """``engine.check_health``'s signature (injected like ``ReconcileFn``)."""

    def __call__(
        self, repo: Repo, targets: Iterable[TargetResult], clients: Clients, cluster: str
    ) -> dict[str, TargetHealth]: ...


class ClusterGate(Protocol):
    """Which clusters this daemon may work now, when several replicas share the fleet
    (``replicas.ReplicaLeases``)."""

    def claim(self, clusters: Collection[str], busy: Collection[str]) -> frozenset[str]: ...

    def begin(self, cluster: str) -> bool:
        """A pass is about to start on ``cluster``: True (and it counts as busy, so its Lease is
        not given back under it) when the cluster is still ours at this moment."""
        ...


@dataclass
class Running:
    """A cluster's pass in flight and the desired state it was started with."""

    future: Future[PassReport]
    desired: Desired


class LoopState:
    """The attributes every part of the daemon shares (set by ``Daemon.__init__``)."""

    source: Source
    store: Store
    clients: Clients
    settings: Settings
    metrics: Metrics
    clock: Clock
    waker: Waker
    log: FilteringBoundLogger
    recorder: Recorder
    rollouts: Rollouts
    lag: HeadLag  # several replicas: whether this one's head is behind an app's rollout
    book: RenderBook  # renders of every revision some target may run

    _dispatcher: Dispatcher  # passes and health checks (the worker pool)
    _source_dispatcher: Dispatcher  # the source job (a thread of its own)
    _follower: Follower
    _reconcile: ReconcileFn
    _check: CheckFn
    _rand: Callable[[], float]
    _watcher: RepoWatcher

    # revisions
    _desired: Desired | None
    _head_desired: Desired | None  # head's renders, before rollouts and pins
    _generation: int
    _wanted: set[str]  # older revisions to load (rollout bases, pins)
    _running_before: dict[TargetKey, str | None]
    _head: str | None
    _source_job: Future[Loaded] | None
    _source_error: str | None
    _repo_error: str | None  # head invalid and nothing to fall back on
    _sources_done: int
    _next_poll: float
    _poked: bool
    _ready: bool
    _known_clusters: set[str]  # the clusters of the installed repo
    _pending: Desired | None  # held by the prune guard until released
    _pending_loaded: Loaded | None  # what it was built from (for rollouts)
    _chart_retry: ChartRetry | None  # the head's charts whose source could not be asked

    # passes and health checks
    _schedules: dict[str, ClusterSchedule]
    _running: dict[str, Running]
    _dispatched: dict[str, int]  # the generation each cluster's latest pass started for
    _repass: set[str]  # clusters whose revision changed: pass them again
    _checks: dict[str, Future[HealthReport]]
    _check_started: dict[str, datetime]  # wall time each check was dispatched
    _gate: ClusterGate | None  # several replicas: which clusters are ours (None: all)
    _ours: frozenset[str] | None  # what the gate said this tick

    # the loop
    _once: bool  # run --once: one pass per cluster, no polls after the first load
    _stopping: bool
    _last_tick: float
    _next_prune: float
