"""Concurrency: many keys (clusters, targets) at once, each isolated from the others' failures;
a bounded ``map`` for the objects of one target. Both run on the process's one worker pool."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reconciler.errors import ReconcilerError
from reconciler.sync.model import OBJECT_WORKERS
from reconciler.workers import pool

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
    outcomes: list[Outcome[K, T]] = []
    for key, (ok, value) in zip(keys, pool().each(work, keys, max_workers), strict=True):
        if ok:
            outcomes.append(Outcome(key, value=value))
        elif isinstance(value, ReconcilerError):
            outcomes.append(Outcome(key, error=value))
        else:
            raise value
    return outcomes


def bounded_map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int = OBJECT_WORKERS
) -> list[Any]:
    """``map`` with bounded concurrency; the first exception is re-raised."""
    return pool().map(fn, items, workers)
