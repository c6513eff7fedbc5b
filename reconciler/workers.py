"""The process's one worker pool: a bounded number of threads, whatever the number of clusters.

Cluster passes, health checks and the requests inside one pass (an object's dry-run, a LIST per
kind) all run on the same threads. Work that fans out (``map``, ``each``) never waits for a free
thread: the caller works through the items itself and idle workers join in, so nested use of
the one pool cannot deadlock, and a saturated pool only makes the fan-out sequential.

Daemon threads: a request stuck on a dead cluster never keeps the process alive after a stop.
Threads start lazily, up to the size (``configure`` sets it, e.g. from ``run --workers``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
K = TypeVar("K")

DEFAULT_SIZE = 32

_Task = tuple[Future[Any], Callable[[], Any]]


class WorkerPool:
    """At most ``size`` daemon threads taking jobs from one queue (see the module docstring)."""

    def __init__(self, size: int = DEFAULT_SIZE, name: str = "reconciler-worker") -> None:
        self._size = max(1, size)
        self._name = name
        self._queue: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._queued = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def threads(self) -> int:
        """Threads started so far (never more than ``size``)."""
        return self._threads

    def resize(self, size: int) -> None:
        """Allow ``size`` threads from now on (threads already started stay until exit)."""
        with self._lock:
            self._size = max(1, size)

    def submit(self, job: Callable[[], T]) -> Future[T]:
        """Run ``job`` on a worker; its future holds the result or the exception."""
        future: Future[T] = Future()
        with self._lock:
            self._queued += 1
            start = self._idle < self._queued and self._threads < self._size
            if start:
                self._threads += 1
                number = self._threads
        self._queue.put((future, job))
        if start:
            threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            future, job = self._queue.get()
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            if not future.set_running_or_notify_cancel():
                continue  # a helper the caller no longer needed
            try:
                future.set_result(job())
            except BaseException as err:  # handed to whoever waits on the future
                future.set_exception(err)
            del future, job  # an idle worker must not keep its last result alive

    def map(self, fn: Callable[[K], T], items: Iterable[K], limit: int) -> list[T]:
        """``[fn(i) for i in items]`` with up to ``limit`` at once; every item runs, then the
        first item's exception (in item order) is raised."""
        results = self._fan_out(fn, list(items), limit)
        for ok, value in results:
            if not ok:
                raise value
        return [value for _, value in results]

    def each(self, fn: Callable[[K], T], items: Iterable[K], limit: int) -> list[tuple[bool, Any]]:
        """Like ``map`` but nothing is raised: per item ``(True, result)`` or
        ``(False, exception)``, in item order."""
        return self._fan_out(fn, list(items), limit)

    def _fan_out(
        self, fn: Callable[[K], T], items: Sequence[K], limit: int
    ) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = [(False, None)] * len(items)
        if len(items) <= 1 or limit <= 1:
            for index, item in enumerate(items):
                results[index] = _call(fn, item)
            return results
        pending = iter(range(len(items)))
        lock = threading.Lock()

        def drain() -> None:
            while True:
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                results[index] = _call(fn, items[index])

        helpers = [self.submit(drain) for _ in range(min(limit, len(items)) - 1)]
        drain()
        for helper in helpers:
            if not helper.cancel():
                helper.result()  # started: it finishes the item it took
        return results


def _call(fn: Callable[[K], T], item: K) -> tuple[bool, Any]:
    try:
        return True, fn(item)
    except BaseException as err:
        return False, err


_POOL = WorkerPool()


def pool() -> WorkerPool:
    """The process's pool."""
    return _POOL


def configure(size: int) -> WorkerPool:
    """Size the process's pool (``run --workers``); returns it."""
    _POOL.resize(size)
    return _POOL
