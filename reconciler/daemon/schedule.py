"""When things happen: clocks, the wake-up pipe, thread dispatch, backoff, settings, and each
cluster's schedule (pure: when its next pass is due)."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol, TypeVar

from reconciler.daemon.guard import DEFAULT_LIMITS, PruneLimits
from reconciler.engine import TargetOutcome
from reconciler.errors import RenderError
from reconciler.sync.model import DEFAULT_INSTANCE
from reconciler.workers import WorkerPool

T = TypeVar("T")


class Clock(Protocol):
    """Monotonic time for scheduling, wall time (UTC, aware) for what is recorded."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class Dispatcher(Protocol):
    """Runs a job off the main thread; the future is done when the job is."""

    def submit(self, job: Callable[[], T], name: str) -> Future[T]: ...


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


class PoolDispatcher:
    """Jobs on the process's worker pool (passes and health checks: a bounded number of
    threads whatever the number of clusters); ``on_done`` wakes the main loop when one ends."""

    def __init__(self, pool: WorkerPool, on_done: Callable[[], None]) -> None:
        self._pool = pool
        self._on_done = on_done

    def submit(self, job: Callable[[], T], name: str) -> Future[T]:
        def run() -> T:
            try:
                return job()
            finally:
                self._on_done()

        return self._pool.submit(run)


class ThreadDispatcher:
    """One daemon thread per job: the source job (one at a time), never held up by passes.

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
    # a revision pruning more is held until released (reconciler.yaml's spec.pruneGuard wins)
    prune_limits: PruneLimits = DEFAULT_LIMITS
    health_interval: float = 5.0  # re-read targets whose health is not final this often
    open_files: int = -1  # the soft open-file limit, checked against the clusters (-1: none)
    # a head's chart whose source could not be asked is resolved again after the poll
    # interval, doubling, at most this long apart
    chart_retry_max: float = 300.0


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
    next_health: float = float("inf")  # next health re-check (some target not final yet)

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
        return max(self.blocked_until, min(self.next_check, self.next_health))

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

    def regained(self) -> None:
        """The cluster is this replica's again (several replicas): its drift check is due at
        once, but a retry after failures keeps its backoff."""
        if self.failures == 0:
            self.next_check = min(self.next_check, self.blocked_until)

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
