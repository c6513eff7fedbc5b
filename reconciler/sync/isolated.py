"""Concurrency: many keys (clusters, targets) at once, each isolated from the others' failures;
a bounded ``map`` for the objects of one target."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reconciler.errors import ReconcilerError
from reconciler.sync.model import OBJECT_WORKERS

T = TypeVar("T")
K = TypeVar("K")


@dataclass
class Outcome(Generic[K, T]):
    """The result of work on one key (a cluster, a target), or the error that stopped it."""

    key: K
    value: T | None = None
    error: ReconcilerError | None = None


def run_isolated(
    keys: Iterable[K], work: Callable[[K], T], max_workers: int = 32
) -> list[Outcome[K, T]]:
    """Run ``work`` for every key concurrently; one key's failure never affects the others.

    Only the project's own errors are caught: anything else is a bug and propagates.
    """
    keys = list(keys)
    if not keys:
        return []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(keys))) as pool:
        futures: list[tuple[K, Future[T]]] = [(k, pool.submit(work, k)) for k in keys]
        outcomes: list[Outcome[K, T]] = []
        for key, future in futures:
            try:
                outcomes.append(Outcome(key, value=future.result()))
            except ReconcilerError as err:
                outcomes.append(Outcome(key, error=err))
    return outcomes


def bounded_map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int = OBJECT_WORKERS
) -> list[Any]:
    """``map`` with bounded concurrency; the first exception is re-raised."""
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))
