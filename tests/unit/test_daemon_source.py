"""Following the repo: polls with jitter, pokes, fetch failures recorded for status."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from reconciler.errors import SourceError
from reconciler.store.db import Store
from reconciler.store.rows import SourceStatus, State
from tests.unit.daemon_rig import T0, HeldDispatcher, Rig, make_rig, repo_files


def test_polls_wait_the_interval_plus_at_most_the_jitter(tmp_path: Path, store: Store) -> None:
    rig = make_rig(tmp_path, store, rand=lambda: 1.0)  # the longest jitter
    rig.source.commit_files(repo_files())
    rig.tick()
    assert rig.source.fetches == 1

    rig.clock.advance(32.9)  # interval 30s + 10% jitter = 33s
    rig.tick()
    assert rig.source.fetches == 1
    rig.clock.advance(0.1)
    rig.tick()
    assert rig.source.fetches == 2


def test_a_poke_fetches_at_once_without_waiting_for_the_poll(rig: Rig) -> None:
    rig.source.commit_files(repo_files())
    rig.tick()
    second = rig.source.commit_files(repo_files(value="2"))

    rig.daemon.poke()
    rig.tick()

    assert rig.clusters.passes("beijing-1")[-1] == second


def test_a_commit_landing_during_a_fetch_is_fetched_right_after_it(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher(hold_source=True)
    rig = make_rig(tmp_path, store, dispatcher=held)
    rig.source.commit_files(repo_files())
    rig.tick()
    rig.daemon.poke()  # the watch fires while the first fetch runs
    held.release("source")

    rig.tick()

    assert held.submitted.count("source") == 2


def test_a_failing_fetch_is_recorded_for_status_and_the_next_success_clears_it(
    rig: Rig,
) -> None:
    good = rig.source.commit_files(repo_files())
    rig.tick()
    assert rig.store.source_status() == SourceStatus("fake-repo", "main", T0, good)

    rig.source.fail = SourceError(
        "fake-repo: fetch failed: unable to access 'https://deploy:s3cr3t-t0ken@git.example/r/':"
        " The requested URL returned error: 403"
    )
    for _ in range(3):
        rig.clock.advance(33.0)
        rig.tick()

    status = rig.store.source_status()
    assert status is not None
    assert (status.consecutive_failures, status.failing_since, status.last_error_at) == (
        3,
        T0 + timedelta(seconds=33),
        T0 + timedelta(seconds=99),
    )
    assert (status.last_success_at, status.last_success_sha) == (T0, good)
    assert status.last_error == (
        "fake-repo: fetch failed: unable to access 'https://git.example/r/':"
        " The requested URL returned error: 403"
    )
    assert rig.daemon.metrics.git_errors._value.get() == 3
    # The clusters keep being reconciled to what was fetched last.
    assert rig.clusters.passes("beijing-1") == [good, good]
    assert set(rig.states().values()) == {State.SYNCED}

    rig.source.fail = None
    rig.clock.advance(33.0)
    rig.tick()
    assert rig.store.source_status() == SourceStatus(
        "fake-repo", "main", T0 + timedelta(seconds=132), good
    )


def test_a_repo_never_fetched_shows_the_failure_and_no_last_success(rig: Rig) -> None:
    rig.source.fail = SourceError("fake-repo: branch 'main' not found")

    rig.tick()

    assert rig.store.source_status() == SourceStatus(
        "fake-repo", "main", None, None, "fake-repo: branch 'main' not found", T0, T0, 1
    )
    assert not rig.daemon.ready
    assert rig.daemon.exit_code() == 2


def test_a_bug_while_reading_the_repo_is_recorded_as_a_failed_fetch(rig: Rig) -> None:
    rig.source.commit_files(repo_files())
    rig.source.fail = RuntimeError("boom")

    rig.tick()

    status = rig.store.source_status()
    assert status is not None and status.consecutive_failures == 1
    assert status.last_error == "internal error while loading the repo: RuntimeError: boom"
