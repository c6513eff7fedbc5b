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

An invalid revision is recorded with its located problems and skipped: the last good revision
stays applied (and drift-checked) until a later commit loads. A target whose render fails keeps
its previous good render the same way.

Time, randomness and thread dispatch are injected (``Clock``, ``rand``, ``Dispatcher``): unit
tests drive :meth:`Daemon.tick` with a fake clock and run passes inline.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import select
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Protocol, TypeVar

import structlog
from structlog.typing import FilteringBoundLogger

from reconciler.config import Repo, load_repo
from reconciler.drift import Finding, findings
from reconciler.engine import Clients, TargetOutcome, reconcile
from reconciler.errors import ConfigError, ReconcilerError, RenderError
from reconciler.metrics import Metrics
from reconciler.placement import place
from reconciler.render import RenderCache, TargetResult, Toolchain, render_all
from reconciler.source import CommitInfo, redact
from reconciler.store import DriftKey, FieldDrift, State, StatusRow, Store
from reconciler.sync import DEFAULT_INSTANCE

__all__ = [
    "Backoff",
    "Clock",
    "ClusterSchedule",
    "Daemon",
    "Desired",
    "Dispatcher",
    "PassKind",
    "Settings",
    "Source",
    "SystemClock",
    "ThreadDispatcher",
    "Waker",
    "classify",
    "drift_fields",
    "target_status",
]

T = TypeVar("T")
TargetKey = tuple[str, str]  # (app, cluster)
_ERROR_STATES = frozenset({State.FAILED, State.UNREACHABLE, State.INVALID_CONFIG})
_MAX_SLEEP = 10.0  # the main loop wakes at least this often (health, timeouts)
_HEALTHY_WITHIN = 60.0  # /healthz fails when the main loop has not ticked for this long
_FALLBACK_CANDIDATES = 50  # valid revisions from the store a restart on an invalid head tries
_PRUNE_EVERY = 3600.0  # drift history retention is enforced at most this often


# ---- injected edges ----------------------------------------------------------------------------


class Clock(Protocol):
    """Monotonic time for scheduling, wall time (UTC, aware) for what is recorded."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class Source(Protocol):
    """What the daemon needs of a config repo (``reconciler.source.GitSource``)."""

    display: str  # where the repo is, without credentials
    branch: str | None  # None: the remote's default branch

    def fetch(self) -> str: ...

    def commit(self, rev: str) -> CommitInfo: ...

    def tree(self, rev: str) -> Path: ...

    def watch_paths(self) -> list[Path]: ...

    def is_ancestor(self, ancestor: str, descendant: str) -> bool: ...


class Dispatcher(Protocol):
    """Runs a job off the main thread; the future is done when the job is."""

    def submit(self, job: Callable[[], T], name: str) -> Future[T]: ...


class ReconcileFn(Protocol):
    """``engine.reconcile``'s signature (injected so scheduling is testable without clusters)."""

    def __call__(
        self,
        repo: Repo,
        rendered: Iterable[TargetResult],
        clients: Clients,
        revision: str,
        *,
        apply: bool,
        clusters: Iterable[str] | None = None,
        prune_departed: bool = True,
        instance: str = DEFAULT_INSTANCE,
    ) -> list[TargetOutcome]: ...


class Waker:
    """Sleep until a timeout or a wake-up; ``wake`` is safe from threads and signal handlers.

    A self-pipe: ``wake`` only writes a byte (async-signal-safe), ``wait`` selects on the pipe.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def wake(self) -> None:
        # A full pipe already holds a pending wake-up; a closed one means we are done.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"!")

    def wait(self, timeout: float) -> bool:
        """True when woken, False on timeout."""
        ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read, 4096):
                pass
        return bool(ready)

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class ThreadDispatcher:
    """One daemon thread per job (at most one source job and one pass per cluster run at once).

    Daemon threads, so a request stuck on a dead cluster never keeps the process alive after a
    stop; ``on_done`` wakes the main loop when a job finishes.
    """

    def __init__(self, on_done: Callable[[], None]) -> None:
        self._on_done = on_done

    def submit(self, job: Callable[[], T], name: str) -> Future[T]:
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(job())
            except BaseException as err:  # handed to the main thread via the future
                future.set_exception(err)
            finally:
                self._on_done()

        threading.Thread(target=run, name=name, daemon=True).start()
        return future


# ---- settings and per-cluster scheduling (pure) ------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential: ``initial``, times ``factor`` per further failure, at most ``maximum``."""

    initial: float = 2.0
    factor: float = 2.0
    maximum: float = 300.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.maximum, self.initial * self.factor ** (failures - 1)))


@dataclass(frozen=True)
class Settings:
    interval: float = 30.0  # poll the repo this often (a local repo is also watched)
    drift_interval: float = 60.0  # re-check each cluster this often without new commits
    jitter: float = 0.1  # each poll waits up to this fraction longer, at random
    backoff: Backoff = field(default_factory=Backoff)
    cluster_timeout: float = 300.0  # a pass still running after this is reported Failed
    shutdown_grace: float = 3.0  # on stop, wait this long for passes in flight
    watch: bool = True  # watch a local repo's refs for commits
    instance: str = DEFAULT_INSTANCE  # names our inventories: other instances' apps are not ours
    max_parallel: int = 32  # cluster passes in flight at once (more wait for a free slot)
    drift_retention: float = 30 * 86400.0  # corrected drift records older than this are deleted


class PassKind(Enum):
    OK = "ok"
    APPS_FAILED = "apps-failed"  # the cluster answered; some app failed: retry soon, no block
    CLUSTER_FAILED = "cluster-failed"  # unreachable or timed out: back off, skip until then


def classify(outcomes: Sequence[TargetOutcome]) -> PassKind:
    """How a pass went, for scheduling. Render errors are not retried: they need a commit."""
    if any(o.unreachable for o in outcomes):
        return PassKind.CLUSTER_FAILED
    if any(not o.ok and not isinstance(o.error, RenderError) for o in outcomes):
        return PassKind.APPS_FAILED
    return PassKind.OK


@dataclass
class ClusterSchedule:
    """When one cluster's next reconcile pass is due (monotonic seconds)."""

    cluster: str
    generation: int = -1  # the desired generation of the last finished pass
    next_check: float = 0.0  # next drift check (or retry)
    blocked_until: float = 0.0  # backoff after the cluster failed as a whole
    failures: int = 0
    running_since: float | None = None
    timed_out: bool = False

    @property
    def running(self) -> bool:
        return self.running_since is not None

    def due(self, now: float, generation: int) -> bool:
        if self.running or now < self.blocked_until:
            return False
        return generation != self.generation or now >= self.next_check

    def wake_at(self, generation: int, timeout: float) -> float:
        """The next moment this schedule may need the main loop."""
        if self.running_since is not None:
            return float("inf") if self.timed_out else self.running_since + timeout
        if generation != self.generation:
            return self.blocked_until
        return max(self.blocked_until, self.next_check)

    def start(self, now: float) -> None:
        self.running_since = now
        self.timed_out = False

    def finish(self, now: float, generation: int, kind: PassKind, settings: Settings) -> None:
        self.running_since = None
        self.generation = generation
        if kind is PassKind.OK:
            self.failures = 0
            self.blocked_until = 0.0
            self.next_check = now + settings.drift_interval
            return
        self.failures += 1
        delay = settings.backoff.delay(self.failures)
        if kind is PassKind.CLUSTER_FAILED:
            self.blocked_until = now + delay
            self.next_check = self.blocked_until
        else:
            self.blocked_until = 0.0
            self.next_check = now + min(delay, settings.drift_interval)

    def time_out(self, now: float, settings: Settings) -> float:
        """The pass overran its timeout: count a failure and back off; returns the delay."""
        self.timed_out = True
        self.failures += 1
        delay = settings.backoff.delay(self.failures)
        self.blocked_until = now + delay
        return delay

    def finish_late(self) -> None:
        """A timed-out pass finally returned (its result is discarded): retry after backoff."""
        self.running_since = None
        self.timed_out = False
        self.next_check = self.blocked_until


# ---- what is desired ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Desired:
    """What the clusters should run: a loaded, rendered revision (or the last good one)."""

    generation: int
    revision: str  # the revision being applied
    head: str  # the newest revision seen (differs when it is invalid)
    repo: Repo
    targets: Mapping[str, tuple[TargetResult, ...]]  # per non-paused cluster
    revisions: Mapping[TargetKey, str | None]  # where each target's objects come from
    invalid: Mapping[TargetKey, str]  # targets whose newest config did not render
    paused: frozenset[TargetKey] = frozenset()
    repo_error: str | None = None  # the head revision does not load: why

    def problem(self, key: TargetKey) -> str | None:
        return self.invalid.get(key) or self.repo_error


@dataclass
class _Loaded:
    """The source job's result."""

    sha: str
    fetched_at: datetime  # when the repo was read (wall time)
    unchanged: bool = False
    commit: CommitInfo | None = None
    repo: Repo | None = None
    rendered: list[TargetResult] = field(default_factory=list)
    config_error: ConfigError | None = None
    fallback: _Loaded | None = None  # the last good revision, loaded when nothing runs yet
    # per app whose render failed: its last good revision, if on the followed branch's history
    last_good: dict[str, str] = field(default_factory=dict)


class _SourceFailed(Exception):
    """The source job could not fetch or read the repo; ``error`` is why, ``at`` when."""

    def __init__(self, error: Exception, at: datetime) -> None:
        super().__init__(str(error))
        self.error = error
        self.at = at


@dataclass
class _PassReport:
    cluster: str
    desired: Desired
    outcomes: list[TargetOutcome]
    duration: float


@dataclass
class _Running:
    future: Future[_PassReport]
    desired: Desired


# ---- status and drift (pure) -------------------------------------------------------------------


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "none"


def _first(items: Sequence[str], noun: str) -> str:
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}: {items[0]}{more}"


def _state_of(outcome: TargetOutcome) -> tuple[State, str]:
    if outcome.unreachable:
        return State.UNREACHABLE, str(outcome.error)
    if outcome.error is not None:
        state = State.INVALID_CONFIG if isinstance(outcome.error, RenderError) else State.FAILED
        return state, str(outcome.error)
    result, plan = outcome.result, outcome.plan
    if result is not None and result.failed:
        return State.FAILED, _first([f"{ref}: {why}" for ref, why in result.failed], "object")
    corrected = set(result.corrected) if result is not None else set()
    drifted = [c for c in plan.changes if c.drift is not None] if plan is not None else []
    left = [c for c in drifted if c.ref not in corrected]
    if left:
        described = [
            f"{c.ref} {c.drift}" + (f" by {', '.join(c.managers)}" if c.managers else "")
            for c in left
        ]
        return State.DRIFTED, _first(described, "drifted object")
    if result is not None and result.skipped:
        return State.OUT_OF_SYNC, _first([f"{ref}: {why}" for ref, why in result.skipped], "object")
    if result is None and plan is not None and plan.pending:
        return State.OUT_OF_SYNC, _first([str(c.ref) for c in plan.pending], "pending change")
    if result is None:
        return State.SYNCED, ""
    done = [
        f"{verb} {len(refs)}"
        for verb, refs in (
            ("created", result.created),
            ("configured", result.configured),
            ("pruned", result.pruned),
        )
        if refs
    ]
    if result.corrected:
        done.append(f"corrected drift on {len(result.corrected)}")
    return State.SYNCED, ", ".join(done)


def target_status(
    outcome: TargetOutcome, *, revision: str | None, problem: str | None, now: datetime
) -> StatusRow:
    """The status row of one app on one cluster after a pass.

    ``problem`` says why the newest config is not applied to this target (invalid revision or
    failed render): the state is then InvalidConfig whatever the cluster says, and the message
    keeps what else is wrong. ``last_synced_at`` moves only when the target is in sync.
    """
    state, message = _state_of(outcome)
    synced_at = now if state is State.SYNCED else None
    if problem is not None:
        if state not in (State.SYNCED, State.INVALID_CONFIG):
            problem = f"{problem} (meanwhile {state}: {message})"
        state, message = State.INVALID_CONFIG, problem
    return StatusRow(
        app=outcome.app,
        cluster=outcome.cluster,
        state=state,
        message=message,
        revision=revision,
        updated_at=now,
        last_synced_at=synced_at,
    )


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def drift_fields(finding: Finding) -> list[FieldDrift]:
    """A finding's fields as stored: before = Git's value, after = the live value."""
    return [
        FieldDrift(
            path=f.path,
            before=f.desired,
            after=f.live,
            manager=f.manager,
            changed_at=_parse_time(f.time),
        )
        for f in finding.fields
    ]


def invalid_revision_message(sha: str, err: ConfigError, applied: str | None) -> str:
    """One line for status: which revision is skipped, its first located problem, what runs."""
    problems = [str(p) for p in err.problems] or [str(err)]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    stays = f"; {_short(applied)} stays applied" if applied else "; nothing applied yet"
    return f"revision {_short(sha)} invalid: {problems[0]}{more}{stays}"


# ---- the daemon --------------------------------------------------------------------------------


class Daemon:
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
        load: Callable[[Path], Repo] = load_repo,
        render: Callable[[Repo], list[TargetResult]] | None = None,
        reconcile_fn: ReconcileFn = reconcile,
        tools: Toolchain | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.source = source
        self.store = store
        self.clients = clients
        self.settings = settings or Settings()
        self.metrics = metrics or Metrics()
        self.clock = clock or SystemClock()
        self.waker = Waker()
        self._dispatcher = dispatcher or ThreadDispatcher(self.waker.wake)
        self._load = load
        self._render = render or (lambda repo: render_all(repo, tools=tools, cache=RenderCache()))
        self._reconcile = reconcile_fn
        self._rand = rand
        self.log = structlog.get_logger("reconciler.daemon").bind(repo=source.display)

        self._desired: Desired | None = None
        self._generation = 0
        self._head: str | None = None
        self._source_job: Future[_Loaded] | None = None
        self._source_error: str | None = None
        self._repo_error: str | None = None  # head invalid and nothing to fall back on
        self._sources_done = 0
        self._next_poll = 0.0
        self._poked = False
        self._stopping = False
        self._ready = False
        self._last_tick = self.clock.monotonic()
        self._schedules: dict[str, ClusterSchedule] = {}
        self._running: dict[str, _Running] = {}
        self._states: dict[TargetKey, State] = {}
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._known_clusters: set[str] = set()  # the clusters of the installed repo
        self._next_prune = self.clock.monotonic()

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
        if self.settings.watch and not once:
            self._start_watcher()
        try:
            while not self._stopping:
                delay = self.tick()
                if once and self.once_done():
                    break
                self.waker.wait(delay)
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
        now = self.clock.monotonic()
        self._maybe_prune(now)
        self._check_timeouts(now)
        if not self._stopping:
            self._dispatch(now)
            self._collect_passes()  # an inline dispatcher (tests) has finished them already
        return self._sleep_for(now)

    def once_done(self) -> bool:
        """After one load, every cluster of the desired revision finished (or timed out) once."""
        if self._sources_done == 0 or self._source_job is not None:
            return False
        desired = self._desired
        if desired is None:
            return True
        for name in desired.targets:
            schedule = self._schedules.get(name)
            if schedule is None:
                return False
            if schedule.running and not schedule.timed_out:
                return False
            if not schedule.running and schedule.generation != desired.generation:
                return False
        return True

    def exit_code(self) -> int:
        """2 when the repo could not be read or loaded or any target is in an error state."""
        if self._source_error or self._repo_error or self._desired is None:
            return 2
        if self._desired.repo_error:
            return 2
        return 2 if any(s in _ERROR_STATES for s in self._states.values()) else 0

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
        if self._source_job is None:
            wake.append(now if self._poked else self._next_poll)
        desired = self._desired
        if desired is not None:
            for name in desired.targets:
                schedule = self._schedules.get(name)
                if schedule is None:
                    return 0.0
                wake.append(schedule.wake_at(desired.generation, self.settings.cluster_timeout))
        return max(0.0, min(wake) - now)

    def _shutdown(self) -> None:
        self._stopping = True
        self._watch_stop.set()
        deadline = self.clock.monotonic() + self.settings.shutdown_grace
        while self._running and self.clock.monotonic() < deadline:
            self._collect_passes()
            if self._running:
                self.waker.wait(min(0.1, max(0.0, deadline - self.clock.monotonic())))
        self._collect_passes()
        if self._watcher is not None:
            self._watcher.join(timeout=2)
        if self.busy:
            self.log.warning("daemon stopped; passes abandoned in flight", clusters=self.busy)
        else:
            self.log.info("daemon stopped")

    # -- source: fetch, load, render -------------------------------------------------------------

    def _maybe_fetch(self, now: float) -> None:
        if self._source_job is not None or not (self._poked or now >= self._next_poll):
            return
        self._poked = False
        self._next_poll = now + self.settings.interval * (1 + self.settings.jitter * self._rand())
        fallback = self._fallback_candidates() if self._desired is None else []
        last_good = self.store.last_goods()
        head = self._head
        self._source_job = self._dispatcher.submit(
            lambda: self._source_work(head, fallback, last_good), name="reconciler-source"
        )

    def _fallback_candidates(self) -> list[str]:
        """The valid revisions the store remembers, most recently seen first (a restart whose
        head is invalid runs the first one on the branch's history). Apps whose render failed
        there keep their own last good revision (``_build``)."""
        return [r.sha for r in self.store.valid_revisions(limit=_FALLBACK_CANDIDATES)]

    def _source_work(
        self, head: str | None, fallback: list[str], last_good: Mapping[str, str] | None = None
    ) -> _Loaded:
        """Runs on a worker thread: touches the source only, never the store.

        Fetching or reading the fetched commit fails with :class:`_SourceFailed`; a commit
        whose config does not load is a result (``config_error``), not a failure.
        """
        try:
            sha = self.source.fetch()
        except Exception as err:
            raise _SourceFailed(err, self.clock.now()) from err
        fetched_at = self.clock.now()
        if sha == head:
            return _Loaded(sha, fetched_at, unchanged=True)
        try:
            loaded = self._load_revision(sha, fetched_at)
        except Exception as err:
            raise _SourceFailed(err, self.clock.now()) from err
        if loaded.config_error is not None and fallback:
            loaded.fallback = self._load_fallback(
                [s for s in fallback if s != sha], sha, fetched_at
            )
        self._verify_last_good(loaded, sha, last_good or {})
        return loaded

    def _on_branch(self, candidate: str, head: str) -> bool:
        """Whether ``candidate`` is in the followed branch's history up to ``head`` (a commit
        left behind by a branch switch or a force-push is not, and is never applied)."""
        try:
            return self.source.is_ancestor(candidate, head)
        except ReconcilerError:
            return False

    def _verify_last_good(self, loaded: _Loaded, head: str, last_good: Mapping[str, str]) -> None:
        """Keep the last good revision of each app whose render failed, if it is on the branch."""
        for result in (loaded, loaded.fallback):
            if result is None:
                continue
            for target in result.rendered:
                sha = last_good.get(target.app)
                if target.error is None or sha is None or target.app in result.last_good:
                    continue
                if self._on_branch(sha, head):
                    result.last_good[target.app] = sha

    def _load_revision(self, sha: str, fetched_at: datetime) -> _Loaded:
        commit = self.source.commit(sha)
        tree = self.source.tree(sha)
        try:
            repo = self._load(tree)
        except ConfigError as err:
            return _Loaded(sha, fetched_at, commit=commit, config_error=err)
        return _Loaded(sha, fetched_at, commit=commit, repo=repo, rendered=self._render(repo))

    def _load_fallback(
        self, candidates: list[str], head: str, fetched_at: datetime
    ) -> _Loaded | None:
        """The first candidate (newest first) on ``head``'s history whose config loads."""
        for sha in candidates:
            if not self._on_branch(sha, head):
                continue  # another branch, or history rewritten since: never applied
            try:
                loaded = self._load_revision(sha, fetched_at)
            except ReconcilerError:
                continue
            if loaded.repo is not None:
                return loaded
        return None

    def _collect_source(self) -> None:
        job = self._source_job
        if job is None or not job.done():
            return
        self._source_job = None
        self._sources_done += 1
        try:
            loaded = job.result()
        except Exception as failure:
            err = failure.error if isinstance(failure, _SourceFailed) else failure
            at = failure.at if isinstance(failure, _SourceFailed) else self.clock.now()
            self.metrics.git_errors.inc()
            if isinstance(err, ReconcilerError):
                message = redact(str(err))
                self.log.warning("cannot read the config repo", error=message)
            else:
                message = redact(
                    f"internal error while loading the repo: {type(err).__name__}: {err}"
                )
                self.log.exception("bug: loading the config repo failed")
            self._source_error = message
            self.store.record_fetch_failure(self.source.display, self.source.branch, message, at)
            return
        self._source_error = None
        self.store.record_fetch_success(
            self.source.display, self.source.branch, loaded.sha, loaded.fetched_at
        )
        if not loaded.unchanged:
            self._publish(loaded)

    def _publish(self, loaded: _Loaded) -> None:
        wall = self.clock.now()
        log = self.log.bind(revision=_short(loaded.sha))
        self._head = loaded.sha
        if loaded.commit is not None:
            log = log.bind(author=loaded.commit.author, subject=loaded.commit.message_first_line)
        err = loaded.config_error
        if err is not None:
            self.metrics.config_errors.inc()
            self.store.record_revision(loaded.sha, wall, False, str(err))
            for problem in err.problems:
                log.error("invalid config", problem=str(problem))
            base = self._desired
            if base is None and loaded.fallback is not None:
                base = self._build(loaded.fallback)
                log.info("running the last good revision", applied=_short(base.revision))
            message = invalid_revision_message(
                loaded.sha, err, base.revision if base is not None else None
            )
            if base is None:
                self._repo_error = message
                self._show_unapplied(message, wall)
                return
            self._install(replace(base, head=loaded.sha, repo_error=message))
            self._ready = True
            return
        self.store.record_revision(loaded.sha, wall, True, None)
        desired = self._build(loaded)
        failed_apps = {t.app for t in loaded.rendered if t.error is not None}
        for app in desired.repo.apps:
            if app not in failed_apps:
                self.store.set_last_good(app, loaded.sha)
        for target in loaded.rendered:
            if target.error is not None:
                log.error(
                    "render failed", app=target.app, cluster=target.cluster, error=str(target.error)
                )
        log.info("revision loaded", targets=sum(len(t) for t in desired.targets.values()))
        self._install(desired)
        self._ready = True

    def _show_unapplied(self, message: str, wall: datetime) -> None:
        """Nothing valid to run (invalid head, no fallback on the branch): every target the
        store knows shows why, and nothing is applied."""
        for row in self.store.list_status():
            if row.state is State.PAUSED:
                continue
            self._set_status(
                replace(
                    row,
                    state=State.INVALID_CONFIG,
                    message=message,
                    updated_at=wall,
                    last_synced_at=None,
                )
            )

    def _build(self, loaded: _Loaded) -> Desired:
        """Desired state from a loaded revision; failed renders keep their previous good render."""
        repo = loaded.repo
        assert repo is not None
        previous = self._desired
        kept: dict[TargetKey, tuple[TargetResult, str | None]] = {}
        if previous is not None:
            for results in previous.targets.values():
                for t in results:
                    if t.rendered is not None:
                        kept[(t.app, t.cluster)] = (t, previous.revisions.get((t.app, t.cluster)))
        targets: dict[str, list[TargetResult]] = {
            name: [] for name, cluster in repo.clusters.items() if not cluster.paused
        }
        revisions: dict[TargetKey, str | None] = {}
        invalid: dict[TargetKey, str] = {}
        for target in loaded.rendered:
            key = (target.app, target.cluster)
            if target.cluster not in targets:
                continue
            if target.error is None:
                targets[target.cluster].append(target)
                revisions[key] = loaded.sha
                continue
            good = kept.get(key)
            if good is not None:
                targets[target.cluster].append(good[0])
                revisions[key] = good[1]
                invalid[key] = f"{target.error}; {_short(good[1])} stays applied"
            else:
                targets[target.cluster].append(target)
                revisions[key] = loaded.last_good.get(target.app)
                invalid[key] = str(target.error)
        paused = frozenset(
            (app.name, p.cluster)
            for app in repo.apps.values()
            for p in place(repo, app)
            if p.placed and p.paused
        )
        return Desired(
            generation=self._generation,
            revision=loaded.sha,
            head=loaded.sha,
            repo=repo,
            targets={name: tuple(ts) for name, ts in targets.items()},
            revisions=revisions,
            invalid=invalid,
            paused=paused,
        )

    def _install(self, desired: Desired) -> None:
        """Make ``desired`` current: every cluster gets a pass; paused and gone ones are shown."""
        self._generation += 1
        desired = replace(desired, generation=self._generation)
        self._desired = desired
        self._repo_error = None
        wall = self.clock.now()
        clusters = set(desired.repo.clusters)
        known = set(self._schedules) | set(self._known_clusters)
        self._known_clusters = clusters
        for name in sorted(known - clusters):
            self.metrics.forget_cluster(name)
        for name in list(self._schedules):
            if name not in desired.targets and name not in self._running:
                del self._schedules[name]
        existing = {(r.app, r.cluster): r for r in self.store.list_status()}
        for app, cluster in existing:
            gone = cluster not in clusters
            paused = cluster not in desired.targets
            if gone or (paused and (app, cluster) not in desired.paused):
                self._forget(app, cluster)
        for app, cluster in sorted(desired.paused):
            old = existing.get((app, cluster))
            self._set_status(
                StatusRow(
                    app=app,
                    cluster=cluster,
                    state=State.PAUSED,
                    message="cluster paused (spec.paused: true): nothing is applied or pruned",
                    revision=old.revision if old is not None else None,
                    updated_at=wall,
                )
            )

    # -- clusters: dispatch, time out, record ----------------------------------------------------

    def _dispatch(self, now: float) -> None:
        desired = self._desired
        if desired is None:
            return
        schedules = [self._schedules.setdefault(n, ClusterSchedule(n)) for n in desired.targets]
        due = [s for s in schedules if s.due(now, desired.generation)]
        # Longest waiting first, so a bounded pool serves every cluster in turn.
        due.sort(key=lambda s: (s.wake_at(desired.generation, 0.0), s.cluster))
        for schedule in due[: max(0, self.settings.max_parallel - len(self._running))]:
            name = schedule.cluster
            schedule.start(now)
            job = functools.partial(self._pass, desired, name)
            future = self._dispatcher.submit(job, name=f"reconciler-{name}")
            self._running[name] = _Running(future, desired)

    def _pass(self, desired: Desired, cluster: str) -> _PassReport:
        """Runs on a worker thread: talks to one cluster, never to the store."""
        started = self.clock.monotonic()
        outcomes = self._reconcile(
            desired.repo,
            desired.targets.get(cluster, ()),
            self.clients,
            desired.revision,
            apply=True,
            clusters=[cluster],
            instance=self.settings.instance,
        )
        return _PassReport(cluster, desired, outcomes, self.clock.monotonic() - started)

    def _check_timeouts(self, now: float) -> None:
        timeout = self.settings.cluster_timeout
        for name, running in self._running.items():
            schedule = self._schedules.get(name)
            if schedule is None or schedule.timed_out or schedule.running_since is None:
                continue
            if now - schedule.running_since < timeout:
                continue
            delay = schedule.time_out(now, self.settings)
            message = (
                f"cluster {name}: the reconcile pass did not finish within {timeout:g}s; "
                f"retrying after it returns, in {delay:g}s at the earliest"
            )
            self.log.warning("reconcile pass timed out", cluster=name, timeout=timeout)
            if name in self._known_clusters:
                self.metrics.cluster_up.labels(name).set(0)
            wall = self.clock.now()
            for target in running.desired.targets.get(name, ()):
                key = (target.app, name)
                problem = running.desired.problem(key)
                self._set_status(
                    StatusRow(
                        app=target.app,
                        cluster=name,
                        state=State.INVALID_CONFIG if problem else State.FAILED,
                        message=f"{problem} (meanwhile: {message})" if problem else message,
                        revision=running.desired.revisions.get(key),
                        updated_at=wall,
                    )
                )

    def _collect_passes(self) -> None:
        for name, running in list(self._running.items()):
            if not running.future.done():
                continue
            del self._running[name]
            schedule = self._schedules.get(name)
            now = self.clock.monotonic()
            report: _PassReport | None = None
            crash = ""
            try:
                report = running.future.result()
            except Exception as err:
                # A bug, not a cluster problem: say so loudly, keep the other clusters going.
                self.log.exception("bug: reconcile pass crashed", cluster=name)
                crash = f"internal error: {type(err).__name__}: {err}"
            if schedule is None:
                continue
            if self._desired is not None and name not in self._desired.targets:
                # The cluster left the repo (or was paused) meanwhile: drop its schedule, so a
                # return later starts afresh instead of inheriting one stuck "running".
                del self._schedules[name]
                continue
            if schedule.timed_out:
                schedule.finish_late()
                self.log.info("late pass result discarded", cluster=name)
                continue
            if report is None:
                self._record_crash(running.desired, name, crash)
                schedule.finish(
                    now, running.desired.generation, PassKind.APPS_FAILED, self.settings
                )
                continue
            kind = self._record(report)
            schedule.finish(now, report.desired.generation, kind, self.settings)
            if kind is PassKind.CLUSTER_FAILED:
                self.log.warning(
                    "cluster unreachable",
                    cluster=name,
                    retry_in=round(schedule.blocked_until - now, 3),
                    failures=schedule.failures,
                )

    def _record_crash(self, desired: Desired, cluster: str, message: str) -> None:
        wall = self.clock.now()
        for target in desired.targets.get(cluster, ()):
            key = (target.app, cluster)
            self._set_status(
                StatusRow(
                    target.app, cluster, State.FAILED, message, desired.revisions.get(key), wall
                )
            )

    def _record(self, report: _PassReport) -> PassKind:
        desired, name = report.desired, report.cluster
        wall = self.clock.now()
        kind = classify(report.outcomes)
        self.metrics.reconcile_duration.labels(name).observe(report.duration)
        self.metrics.cluster_up.labels(name).set(0 if kind is PassKind.CLUSTER_FAILED else 1)
        shown: set[str] = set()
        for outcome in report.outcomes:
            log = self.log.bind(app=outcome.app, cluster=name, revision=_short(desired.revision))
            self._count_writes(outcome)
            if outcome.departed:
                if self._record_departed(outcome, wall, log):
                    shown.add(outcome.app)
                continue
            shown.add(outcome.app)
            key = (outcome.app, name)
            row = target_status(
                outcome,
                revision=desired.revisions.get(key, desired.revision),
                problem=desired.problem(key),
                now=wall,
            )
            self._set_status(row)
            drifted = (
                self._record_drift(outcome, row.revision, wall, log)
                if outcome.plan is not None
                else None
            )
            if row.state is State.SYNCED and outcome.result is not None:
                self.metrics.last_sync.labels(outcome.app, name).set(wall.timestamp())
            self._log_outcome(log, outcome, row, drifted)
        self._tidy_rows(name, shown, kind, wall, report)
        self.log.debug(
            "pass finished",
            cluster=name,
            revision=_short(desired.revision),
            duration_ms=round(report.duration * 1000, 1),
            result=kind.value,
        )
        return kind

    def _tidy_rows(
        self, cluster: str, shown: set[str], kind: PassKind, wall: datetime, report: _PassReport
    ) -> None:
        """Rows of apps this pass did not report on: gone, or (cluster down) not prunable yet."""
        desired = report.desired
        for row in self.store.list_status(cluster=cluster):
            if row.app in shown or (row.app, cluster) in desired.paused:
                continue
            if kind is PassKind.CLUSTER_FAILED:
                error = next((o.error for o in report.outcomes if o.unreachable), None)
                self._set_status(
                    replace(
                        row,
                        state=State.UNREACHABLE,
                        message=f"no longer placed here; pruned once reachable: {error}",
                        updated_at=wall,
                        last_synced_at=None,
                    )
                )
            else:
                self._forget(row.app, cluster)

    def _record_departed(
        self, outcome: TargetOutcome, wall: datetime, log: FilteringBoundLogger
    ) -> bool:
        """An app that left this cluster; True when its row stays (something is left there)."""
        name = outcome.cluster
        if outcome.error is not None:
            state = State.UNREACHABLE if outcome.unreachable else State.FAILED
            message = f"no longer placed here; pruning failed: {outcome.error}"
        elif outcome.result is not None and outcome.result.failed:
            state = State.FAILED
            failed = [f"{ref}: {why}" for ref, why in outcome.result.failed]
            message = f"no longer placed here; {_first(failed, 'object')}"
        elif outcome.result is not None and outcome.result.skipped:
            state = State.OUT_OF_SYNC
            kept = [f"{ref}: {why}" for ref, why in outcome.result.skipped]
            message = f"no longer placed here; {_first(kept, 'object')} kept"
        else:
            if outcome.result is not None and outcome.result.pruned:
                log.info("app pruned from cluster", objects=len(outcome.result.pruned))
            self.store.close_resolved(outcome.app, name, [], wall)
            self._forget(outcome.app, name)
            return False
        self._set_status(StatusRow(outcome.app, name, state, message, None, wall))
        log.warning("departed app not fully pruned", state=str(state), message=message)
        return True

    def _record_drift(
        self,
        outcome: TargetOutcome,
        revision: str | None,
        wall: datetime,
        log: FilteringBoundLogger,
    ) -> int:
        """Drift findings of a plan into the store; returns how many stay open."""
        assert outcome.plan is not None
        corrected = {str(ref) for ref in outcome.result.corrected} if outcome.result else set()
        still_open: list[DriftKey] = []
        for finding in findings(outcome.plan):
            row = self.store.record_drift(
                outcome.app,
                outcome.cluster,
                finding.object,
                finding.kind.value,
                drift_fields(finding),
                revision,
                wall,
            )
            details = {
                "object": finding.object,
                "drift": finding.kind.value,
                "fields": list(finding.paths) or None,
                "managers": list(finding.managers) or None,
                "drift_id": row.id,
            }
            if finding.object in corrected:
                self.store.mark_corrected(row.id, wall)
                log.info("drift corrected", **details)
            else:
                still_open.append(row.key)
                if row.detected_at == wall:
                    log.warning("drift detected", **details)
        for closed in self.store.close_resolved(outcome.app, outcome.cluster, still_open, wall):
            log.info("drift gone", object=closed.object, drift_id=closed.id)
        self.metrics.drifted_objects.labels(outcome.app, outcome.cluster).set(len(still_open))
        return len(still_open)

    def _count_writes(self, outcome: TargetOutcome) -> None:
        result = outcome.result
        if result is None:
            return
        counter = self.metrics.objects_applied
        for action, count in (
            ("created", len(result.created)),
            ("configured", len(result.configured)),
            ("pruned", len(result.pruned)),
            ("failed", len(result.failed)),
        ):
            if count:
                counter.labels(outcome.cluster, action).inc(count)

    def _log_outcome(
        self, log: FilteringBoundLogger, outcome: TargetOutcome, row: StatusRow, drifted: int | None
    ) -> None:
        result = outcome.result
        counts = {}
        if result is not None:
            counts = {
                "created": len(result.created),
                "configured": len(result.configured),
                "pruned": len(result.pruned),
                "failed": len(result.failed),
            }
        wrote = any(counts.values())
        previous = self._states.get((outcome.app, outcome.cluster))
        self._states[(outcome.app, outcome.cluster)] = row.state
        fields = {k: v for k, v in counts.items() if v}
        if row.state in _ERROR_STATES:
            if row.state is not previous:
                log.error("reconcile failed", state=str(row.state), message=row.message)
        elif wrote or row.state is not previous:
            if drifted:
                fields["drifted"] = drifted
            log.info("reconciled", state=str(row.state), **fields)

    # -- store helpers --------------------------------------------------------------------------

    def _set_status(self, row: StatusRow) -> None:
        self.store.set_status(row)
        self._states[(row.app, row.cluster)] = row.state

    def _forget(self, app: str, cluster: str) -> None:
        """The app no longer targets the cluster (or the cluster left): its open drift records
        are closed, since nobody will check them again."""
        self.store.close_resolved(app, cluster, [], self.clock.now())
        self.store.delete_status(app, cluster)
        self._states.pop((app, cluster), None)
        self.metrics.forget_target(app, cluster)

    # -- watching a local repo -------------------------------------------------------------------

    def _start_watcher(self) -> None:
        try:
            paths = self.source.watch_paths()
        except ReconcilerError as err:
            self.log.warning("cannot watch the repo; polling only", error=str(err))
            return
        if not paths:
            return
        self._watcher = threading.Thread(
            target=self._watch, args=(paths,), name="reconciler-watch", daemon=True
        )
        self._watcher.start()

    def _watch(self, paths: list[Path]) -> None:
        import watchfiles

        self.log.info("watching the repo for commits", paths=[str(p) for p in paths])
        try:
            for _ in watchfiles.watch(
                *paths,
                watch_filter=None,  # the default filter ignores everything under .git
                debounce=400,
                step=30,
                rust_timeout=500,  # how soon a stop is noticed
                stop_event=self._watch_stop,
                raise_interrupt=False,
            ):
                self.poke()
        except Exception as err:  # the watch is an optimisation: polling still runs
            self.log.warning("watching the repo stopped; polling only", error=str(err))
