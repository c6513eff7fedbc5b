"""Reconcile passes per cluster: every placed cluster, parallel slots, drift interval, dead and
slow clusters, paused clusters, departed apps, --once, crashes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing

from reconciler.daemon.loop import Daemon
from reconciler.daemon.openfiles import needed
from reconciler.engine import TargetOutcome
from reconciler.kube.pool import Clients
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow
from tests.unit.daemon_rig import (
    CLUSTERS,
    SETTINGS,
    FakeClusters,
    FakeSource,
    HeldDispatcher,
    Rig,
    make_rig,
    repo_files,
)


def test_a_new_revision_is_applied_to_every_placed_cluster_and_recorded(rig: Rig) -> None:
    sha = rig.source.commit_files(repo_files(placement="clusters: [beijing-1, us-west-1]"))

    rig.tick()

    assert sorted(rig.clusters.calls) == [
        ("beijing-1", sha, ["web"]),
        ("beijing-2", sha, []),  # still visited: departed apps are pruned from it
        ("us-west-1", sha, ["web"]),
    ]
    assert rig.states() == {("web", "beijing-1"): State.SYNCED, ("web", "us-west-1"): State.SYNCED}
    assert {r.revision for r in rig.store.list_status()} == {sha}
    assert rig.store.last_good("web") == sha
    assert rig.daemon.ready


def test_at_most_max_parallel_passes_run_and_the_rest_wait_for_a_free_slot(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher()
    rig = make_rig(tmp_path, store, dispatcher=held, settings=replace(SETTINGS, max_parallel=2))
    rig.source.commit_files(repo_files())
    rig.tick()
    assert set(held.held) == {"beijing-1", "beijing-2"}

    held.release("beijing-2")
    rig.tick()

    assert set(held.held) == {"beijing-1", "us-west-1"}


def test_a_drift_check_runs_every_drift_interval_without_new_commits(rig: Rig) -> None:
    sha = rig.source.commit_files(repo_files())
    rig.tick()

    rig.clock.advance(59.0)
    rig.tick()
    assert rig.clusters.passes("beijing-1") == [sha]
    rig.clock.advance(1.0)
    rig.tick()
    assert rig.clusters.passes("beijing-1") == [sha, sha]


def test_a_dead_cluster_is_skipped_until_its_backoff_expires_while_the_others_proceed(
    rig: Rig,
) -> None:
    rig.clusters.down.add("us-west-1")
    first = rig.source.commit_files(repo_files())
    rig.tick()
    assert rig.states()[("web", "us-west-1")] is State.UNREACHABLE

    second = rig.source.commit_files(repo_files(value="2"))
    rig.daemon.poke()
    rig.tick()
    assert rig.clusters.passes("beijing-1") == [first, second]
    assert rig.clusters.passes("us-west-1") == [first]  # backing off for 5s

    rig.clock.advance(5.0)
    rig.tick()
    assert rig.clusters.passes("us-west-1") == [first, second]
    rig.clock.advance(9.9)  # second failure: 10s
    rig.tick()
    assert len(rig.clusters.passes("us-west-1")) == 2

    rig.clusters.down.clear()
    rig.clock.advance(0.1)
    rig.tick()
    assert rig.clusters.passes("us-west-1") == [first, second, second]
    assert rig.states()[("web", "us-west-1")] is State.SYNCED


def test_a_pass_over_its_timeout_is_failed_and_not_restarted_until_it_returns(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher()
    rig = make_rig(tmp_path, store, dispatcher=held)
    first = rig.source.commit_files(repo_files())
    rig.tick()
    for name in ("beijing-1", "beijing-2"):
        held.release(name)
    rig.tick()

    rig.clock.advance(100.0)
    rig.tick()
    row = {r.cluster: r for r in rig.store.list_status()}["us-west-1"]
    assert row.state is State.FAILED
    assert "did not finish within 100s" in row.message

    second = rig.source.commit_files(repo_files(value="2"))
    rig.daemon.poke()
    rig.clock.advance(10.0)  # past the 5s backoff, but the first pass still runs
    rig.tick()
    assert set(held.held) == {"us-west-1", "beijing-1", "beijing-2"}
    assert rig.clusters.calls.count(("us-west-1", second, ["web"])) == 0

    held.release("us-west-1")  # the late result is discarded, the new revision goes next
    rig.tick()
    held.release("us-west-1")
    rig.tick()
    assert rig.clusters.passes("us-west-1") == [first, second]
    assert rig.states()[("web", "us-west-1")] is State.SYNCED


def test_a_paused_cluster_shows_paused_and_is_never_reconciled(rig: Rig) -> None:
    rig.source.commit_files(repo_files(paused=["beijing-2"]))
    rig.tick()

    assert "beijing-2" not in {name for name, _, _ in rig.clusters.calls}
    assert rig.states()[("web", "beijing-2")] is State.PAUSED


def test_an_app_that_leaves_a_cluster_loses_its_status_row_there(rig: Rig) -> None:
    rig.source.commit_files(repo_files())
    rig.tick()
    rig.source.commit_files(repo_files(placement="clusters: [beijing-1]"))
    rig.daemon.poke()
    rig.tick()

    assert set(rig.states()) == {("web", "beijing-1")}


def test_once_exits_0_when_every_target_synced_and_2_when_a_cluster_is_down(
    tmp_path: Path, store: Store
) -> None:
    rig = make_rig(tmp_path / "ok", store)
    rig.source.commit_files(repo_files())
    assert rig.daemon.run(once=True) == 0

    with Store.open(tmp_path / "other") as other:
        down = make_rig(tmp_path / "down", other)
        down.clusters.down.add("beijing-2")
        down.source.commit_files(repo_files())
        assert down.daemon.run(once=True) == 2


def test_a_pass_reads_only_its_own_clusters_status_rows(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.source.commit_files(repo_files())
    rig.tick()
    reads: list[tuple[str | None, str | None]] = []
    real = rig.store.list_status

    def spy(cluster: str | None = None, app: str | None = None) -> list[StatusRow]:
        reads.append((cluster, app))
        return real(cluster, app)

    monkeypatch.setattr(rig.store, "list_status", spy)
    rig.clock.advance(60.0)  # a drift pass on every cluster
    rig.tick()

    assert sorted(reads) == [(name, None) for name in CLUSTERS]


def test_a_crashing_pass_marks_its_cluster_failed_and_the_others_carry_on(rig: Rig) -> None:
    real = rig.clusters

    def crash_on_beijing_2(*args: Any, **kwargs: Any) -> list[TargetOutcome]:
        if list(kwargs["clusters"]) == ["beijing-2"]:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    rig.daemon._reconcile = crash_on_beijing_2
    rig.source.commit_files(repo_files())
    rig.tick()

    rows = {r.cluster: r for r in rig.store.list_status()}
    assert rows["beijing-2"].state is State.FAILED
    assert rows["beijing-2"].message == "internal error: RuntimeError: boom"
    assert rows["beijing-1"].state is State.SYNCED


def test_a_cluster_paused_during_its_pass_is_reconciled_again_once_unpaused(
    tmp_path: Path, store: Store
) -> None:
    held = HeldDispatcher()
    rig = make_rig(tmp_path, store, dispatcher=held)
    first = rig.source.commit_files(repo_files())
    rig.tick()
    for name in ("beijing-1", "us-west-1"):
        held.release(name)
    rig.source.commit_files(repo_files(paused=["beijing-2"]))  # while beijing-2's pass runs
    rig.daemon.poke()
    rig.tick()
    held.release("beijing-2")  # its result arrives after it was paused
    rig.tick()
    for name in list(held.held):
        held.release(name)
    rig.tick()

    third = rig.source.commit_files(repo_files())  # unpaused
    rig.daemon.poke()
    rig.tick()
    held.release("beijing-2")
    rig.tick()
    assert rig.clusters.passes("beijing-2") == [first, third]
    assert rig.states()[("web", "beijing-2")] is State.SYNCED


@dataclass
class _SlowClusters(FakeClusters):
    """Passes that take real time: ``us-west-1`` much longer than the others."""

    def __call__(self, *args: Any, **kwargs: Any) -> list[TargetOutcome]:
        (name,) = list(kwargs["clusters"])
        time.sleep(0.3 if name == "us-west-1" else 0.02)
        return super().__call__(*args, **kwargs)


def test_once_ends_after_one_pass_per_cluster_when_a_round_outlasts_the_drift_interval(
    tmp_path: Path, store: Store
) -> None:
    # Real threads and clock: the first clusters come due again (drift) long before the slow
    # one's pass returns; they must not take its place in the round over and over.
    source = FakeSource(tmp_path / "trees")
    sha = source.commit_files(repo_files())
    clusters = _SlowClusters()
    daemon = Daemon(
        source,
        store,
        Clients(None),
        settings=replace(SETTINGS, drift_interval=0.01, max_parallel=2),
        reconcile_fn=clusters,
    )
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(daemon.run(once=True)), daemon=True)
    runner.start()
    runner.join(timeout=60)  # a bound on a hang, not on speed: it ends in about 0.3 s
    if runner.is_alive():
        daemon.stop()
        runner.join(timeout=10)
    daemon.close()

    assert codes == [0]
    assert {c: clusters.passes(c) for c in CLUSTERS} == {c: [sha] for c in CLUSTERS}


def test_an_open_file_limit_too_low_for_the_clusters_is_logged_with_the_numbers(
    tmp_path: Path, store: Store
) -> None:
    low = make_rig(tmp_path, store, settings=replace(SETTINGS, open_files=100))
    low.source.commit_files(repo_files())
    with structlog.testing.capture_logs() as logs:
        low.tick()
    (warning,) = [e for e in logs if e["event"] == "open-file limit too low for the clusters"]
    assert (warning["limit"], warning["clusters"], warning["needed"]) == (100, 3, needed(3))
    assert warning["log_level"] == "warning"

    with Store.open(tmp_path / "enough") as other:
        enough = make_rig(tmp_path / "e", other, settings=replace(SETTINGS, open_files=needed(3)))
        enough.source.commit_files(repo_files())
        with structlog.testing.capture_logs() as logs:
            enough.tick()
        assert not [e for e in logs if "open-file" in e["event"]]
