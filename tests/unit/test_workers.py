"""The process's worker pool: bounded threads, fan-out that the caller works through itself (so
nested use never deadlocks), errors in item order; the open-file limit check."""

from __future__ import annotations

import threading
import time

import pytest

from reconciler.daemon.openfiles import FDS_BASE, FDS_PER_CLUSTER, needed, too_low
from reconciler.workers import WorkerPool


def test_map_keeps_item_order_and_runs_every_item() -> None:
    pool = WorkerPool(4)
    assert pool.map(lambda i: i * i, range(50), limit=8) == [i * i for i in range(50)]


def test_threads_never_exceed_the_size_whatever_the_work() -> None:
    pool = WorkerPool(3)
    seen: set[str] = set()

    def work(i: int) -> int:
        seen.add(threading.current_thread().name)
        time.sleep(0.001)
        return i

    for _ in range(20):
        assert pool.map(work, range(30), limit=16) == list(range(30))
    assert pool.threads <= 3
    assert len(seen - {threading.current_thread().name}) <= 3


def test_nested_fan_out_on_a_pool_of_one_finishes() -> None:
    # Passes on the pool fan out their objects onto the same pool: the callers do the work.
    pool = WorkerPool(1)

    def a_pass(n: int) -> int:
        return sum(pool.map(lambda i: i + n, range(10), limit=8))

    futures = [pool.submit(lambda n=n: a_pass(n)) for n in range(5)]  # type: ignore[misc]
    assert [f.result(timeout=30) for f in futures] == [45 + 10 * n for n in range(5)]


def test_the_first_error_in_item_order_is_raised_after_every_item_ran() -> None:
    pool = WorkerPool(4)
    ran: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            ran.append(i)
        if i in (3, 7):
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 3"):
        pool.map(work, range(10), limit=4)
    assert sorted(ran) == list(range(10))


def test_each_returns_every_outcome_without_raising() -> None:
    pool = WorkerPool(2)

    def work(i: int) -> int:
        if i == 1:
            raise KeyError(i)
        return i

    outcomes = pool.each(work, [0, 1, 2], limit=3)
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert isinstance(outcomes[1][1], KeyError)


def test_an_open_file_limit_too_low_for_the_clusters_is_said_with_the_numbers() -> None:
    assert needed(300) == FDS_BASE + 300 * FDS_PER_CLUSTER
    assert too_low(-1, 10_000) is None  # unlimited
    assert too_low(needed(300), 300) is None
    message = too_low(1024, 300)
    assert message is not None
    assert message.startswith(f"the open-file limit (1024) is below the {needed(300)} ")
    assert "300 clusters" in message
