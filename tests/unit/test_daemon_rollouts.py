"""The daemon runs rollouts: per-target revisions, stages, approvals, restarts (fake clusters)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import repo_snippets as snip
from click.testing import CliRunner
from test_daemon_health import Workloads, judged

from reconciler.cli.main import cli
from reconciler.daemon.loop import Daemon
from reconciler.health import Health
from reconciler.kube.pool import Clients
from reconciler.rollout.codec import state_from_data
from reconciler.rollout.model import ClusterPhase, RolloutPhase, RolloutState
from reconciler.store.db import Store
from tests.unit.daemon_rig import (
    CLUSTERS,
    SETTINGS,
    T0,
    FakeClock,
    FakeSource,
    InlineDispatcher,
    Rig,
    configmap,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        yield opened


def make_rig(tmp_path: Path, store: Store, source: FakeSource | None = None) -> Rig:
    """Clusters whose targets are Healthy after every pass and every re-check."""
    clock = FakeClock()
    source = source or FakeSource(tmp_path / "trees")
    workloads = Workloads(health=judged(Health.HEALTHY, 3))
    daemon = Daemon(
        source,
        store,
        Clients(None),
        settings=SETTINGS,
        clock=clock,
        dispatcher=InlineDispatcher(),
        reconcile_fn=workloads,
        check_fn=workloads.check,
        rand=lambda: 0.5,
    )
    return Rig(daemon, clock, source, workloads, store)


def restart(tmp_path: Path, store: Store, source: FakeSource) -> Rig:
    restarted = make_rig(tmp_path, store, source)
    restarted.tick()
    return restarted


@pytest.fixture
def rig(tmp_path: Path, store: Store) -> Rig:
    return make_rig(tmp_path, store)


STRATEGY = """
rollout:
  canary: {clusters: [beijing-1]}
  stages:
  - name: prod
    target: {clusters: [beijing-2]}
    approval: manual
"""


def files(value: str, strategy: str = STRATEGY) -> dict[str, str]:
    out = {f"clusters/{name}.yaml": snip.cluster(name) for name in CLUSTERS}
    out["apps/web/app.yaml"] = snip.app(
        "web",
        "namespace: web\nsource: {manifests: manifests/}\n"
        "placement: {clusters: [beijing-1, beijing-2, us-west-1]}\n" + strategy,
    )
    out["apps/web/manifests/cm.yaml"] = configmap("web", value)
    return out


def revisions(rig: Rig) -> dict[str, str | None]:
    return {r.cluster: r.revision for r in rig.store.list_status(app="web")}


def rollout(rig: Rig) -> RolloutState:
    (row,) = rig.store.latest_rollouts("web")
    return state_from_data(row.data)


def settle(rig: Rig, seconds: int = 20) -> None:
    for _ in range(seconds):
        rig.clock.advance(1.0)
        rig.tick()


def test_a_first_deploy_goes_everywhere_at_once(rig: Rig) -> None:
    first = rig.source.commit_files(files("1"))
    rig.tick()
    assert revisions(rig) == dict.fromkeys(CLUSTERS, first)
    assert rig.store.latest_rollouts() == []


def test_a_change_goes_stage_by_stage_and_waits_for_approval(rig: Rig) -> None:
    first = rig.source.commit_files(files("1"))
    rig.tick()
    second = rig.source.commit_files(files("2"))
    rig.daemon.poke()
    rig.tick()
    assert revisions(rig) == {"beijing-1": second, "beijing-2": first, "us-west-1": first}
    settle(rig)
    state = rollout(rig)
    assert state.phase == RolloutPhase.WAITING_APPROVAL
    assert state.cluster("beijing-1").phase == ClusterPhase.SUCCEEDED
    assert revisions(rig) == {"beijing-1": second, "beijing-2": first, "us-west-1": first}
    rig.store.add_rollout_command("web", second, "approve", "prod", "alice", T0)
    settle(rig)
    state = rollout(rig)
    assert state.phase == RolloutPhase.SUCCEEDED
    assert revisions(rig) == dict.fromkeys(CLUSTERS, second)
    approval = state.approved("prod")
    assert approval is not None and approval.user == "alice"
    assert rig.store.pending_rollout_commands() == []
    # Each target's inventory names the revision its objects came from.
    passes = [c for c in rig.clusters.calls if c[0] == "beijing-2"]
    assert passes


def test_a_restart_mid_rollout_resumes_at_the_same_stage(
    tmp_path: Path, store: Store, rig: Rig
) -> None:
    first = rig.source.commit_files(files("1"))
    rig.tick()
    second = rig.source.commit_files(files("2"))
    rig.daemon.poke()
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.WAITING_APPROVAL
    again = restart(tmp_path, store, rig.source)
    settle(again)
    state = rollout(again)
    assert state.phase == RolloutPhase.WAITING_APPROVAL and state.stage == 1
    assert revisions(again) == {"beijing-1": second, "beijing-2": first, "us-west-1": first}
    again.store.add_rollout_command("web", second, "approve", None, "bob", T0)
    settle(again)
    assert rollout(again).phase == RolloutPhase.SUCCEEDED
    assert revisions(again) == dict.fromkeys(CLUSTERS, second)


def test_an_unrelated_commit_leaves_a_waiting_rollout_alone(rig: Rig) -> None:
    first = rig.source.commit_files(files("1"))
    rig.tick()
    second = rig.source.commit_files(files("2"))
    rig.daemon.poke()
    settle(rig)
    other = files("2")
    other["apps/other/app.yaml"] = snip.app(
        "other", "source: {manifests: manifests/}\nplacement: {clusters: [beijing-1]}\n"
    )
    other["apps/other/manifests/cm.yaml"] = configmap("other")
    rig.source.commit_files(other)
    rig.daemon.poke()
    settle(rig)
    state = rollout(rig)
    assert state.revision == second and state.phase == RolloutPhase.WAITING_APPROVAL
    assert revisions(rig) == {"beijing-1": second, "beijing-2": first, "us-west-1": first}


def test_a_newer_change_supersedes_from_the_first_stage(rig: Rig) -> None:
    first = rig.source.commit_files(files("1"))
    rig.tick()
    second = rig.source.commit_files(files("2"))
    rig.daemon.poke()
    settle(rig)
    third = rig.source.commit_files(files("3"))
    rig.daemon.poke()
    settle(rig)
    old, new = (state_from_data(r.data) for r in reversed(rig.store.list_rollouts("web")))
    assert (old.revision, old.phase) == (second, RolloutPhase.SUPERSEDED)
    assert (new.revision, new.phase) == (third, RolloutPhase.WAITING_APPROVAL)
    assert new.cluster("beijing-2").base == first
    assert revisions(rig) == {"beijing-1": third, "beijing-2": first, "us-west-1": first}


def test_a_pin_holds_targets_and_its_release_lets_them_go(rig: Rig) -> None:
    first = rig.source.commit_files(files("1", strategy=""))
    rig.tick()
    second = rig.source.commit_files(files("2", strategy=""))
    rig.daemon.poke()
    rig.tick()
    assert revisions(rig) == dict.fromkeys(CLUSTERS, second)
    rig.store.pin("web", ["us-west-1"], first, "carol", T0 + timedelta(minutes=1))
    settle(rig, 3)
    assert revisions(rig) == {"beijing-1": second, "beijing-2": second, "us-west-1": first}
    rig.store.unpin("web")
    settle(rig, 3)
    assert revisions(rig) == dict.fromkeys(CLUSTERS, second)


def test_a_rollout_started_while_the_app_is_pinned_applies_once_the_pin_is_released(
    rig: Rig,
) -> None:
    first = rig.source.commit_files(files("1"))
    rig.tick()
    second = rig.source.commit_files(files("2"))  # a bad change: its rollout starts
    rig.daemon.poke()
    settle(rig)
    rig.store.pin("web", ["*"], first, "ops", T0)  # the whole app back to first
    settle(rig, 3)
    assert revisions(rig) == dict.fromkeys(CLUSTERS, first)
    third = rig.source.commit_files(files("3"))  # the fix, rolled out while pinned
    rig.daemon.poke()
    settle(rig)
    rig.store.add_rollout_command("web", third, "approve", "prod", "ops", T0)
    settle(rig)
    state = rollout(rig)
    assert (state.revision, state.phase) == (third, RolloutPhase.SUCCEEDED)
    assert revisions(rig) == dict.fromkeys(CLUSTERS, first)  # the pin wins while it exists
    rig.store.unpin("web")
    settle(rig, 3)
    assert revisions(rig) == dict.fromkeys(CLUSTERS, third)
    assert second not in revisions(rig).values()


ONE_BY_ONE = """
rollout:
  stages:
  - name: all
    target: {clusters: [beijing-1, beijing-2, us-west-1]}
    maxConcurrent: 1
"""


def test_a_cluster_pinned_through_a_rollout_gets_its_revision_once_released(
    tmp_path: Path, store: Store
) -> None:
    rig = make_rig(tmp_path, store)
    each = ONE_BY_ONE
    first = rig.source.commit_files(files("1", strategy=each))
    rig.tick()
    rig.store.pin("web", ["us-west-1"], first, "ops", T0)
    settle(rig, 3)
    second = rig.source.commit_files(files("2", strategy=each))
    rig.daemon.poke()
    settle(rig)
    state = rollout(rig)
    assert (state.revision, state.phase) == (second, RolloutPhase.SUCCEEDED)
    assert state.cluster("us-west-1").phase == ClusterPhase.SKIPPED
    assert revisions(rig) == {"beijing-1": second, "beijing-2": second, "us-west-1": first}
    rig.store.unpin("web", ["us-west-1"])
    settle(rig, 3)
    assert revisions(rig) == dict.fromkeys(CLUSTERS, second)
    # A restart keeps it there (the rollout's state says so, not only memory).
    again = restart(tmp_path, store, rig.source)
    settle(again, 3)
    assert revisions(again) == dict.fromkeys(CLUSTERS, second)


def test_a_branch_back_at_a_revision_rolled_out_before_rolls_it_out_again(
    tmp_path: Path, store: Store
) -> None:
    rig = make_rig(tmp_path, store)
    rig.source.commit_files(files("1"))
    rig.tick()
    second = rig.source.commit_files(files("2"))
    rig.daemon.poke()
    settle(rig)
    rig.clock.advance(60)
    third = rig.source.commit_files(files("3"))
    rig.daemon.poke()
    settle(rig)
    rig.clock.advance(60)
    rig.source.head = second  # force-pushed back
    rig.daemon.poke()
    settle(rig)
    state = rollout(rig)
    assert (state.revision, state.phase) == (second, RolloutPhase.WAITING_APPROVAL)
    superseded = store.rollout("web", third)
    assert superseded is not None and superseded.phase == RolloutPhase.SUPERSEDED
    again = restart(tmp_path, store, rig.source)
    assert again.daemon.rollouts.states["web"].revision == second
    approved = CliRunner().invoke(
        cli, ["rollout", "approve", "web", "--user", "ops", "--state-dir", str(tmp_path / "state")]
    )
    assert approved.exit_code == 0, approved.output
    settle(again)
    assert rollout(again).phase == RolloutPhase.SUCCEEDED
    assert revisions(again) == dict.fromkeys(CLUSTERS, second)


ROLL_BACK = """
rollout:
  stages:
  - name: all
    target: {clusters: [beijing-1, beijing-2]}
    maxConcurrent: 1
    onFailure: rollback
"""


def test_a_rollback_does_not_wait_for_a_cluster_the_app_left(tmp_path: Path, store: Store) -> None:
    rig = make_rig(tmp_path, store)
    assert isinstance(rig.clusters, Workloads)
    first = rig.source.commit_files(files("1", ROLL_BACK))
    rig.tick()
    second = rig.source.commit_files(files("2", ROLL_BACK))
    rig.daemon.poke()
    settle(rig, 1)
    while rollout(rig).cluster("beijing-1").phase != ClusterPhase.SUCCEEDED:
        settle(rig, 1)
    rig.clusters.down.add("beijing-1")  # it cannot go back
    rig.clusters.health = judged(Health.DEGRADED, 0)  # beijing-2 fails: roll back
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.ROLLING_BACK
    assert revisions(rig)["beijing-2"] == first
    # The app leaves beijing-1 (what it renders elsewhere is the same: no new rollout).
    left = files("2", ROLL_BACK)
    left["apps/web/app.yaml"] = left["apps/web/app.yaml"].replace("beijing-1, beijing-2, ", "")
    rig.source.commit_files(left)
    rig.daemon.poke()
    settle(rig, 3)
    state = rollout(rig)
    assert (state.revision, state.phase) == (second, RolloutPhase.ROLLED_BACK)
    gone = state.cluster("beijing-1")
    assert gone.phase == ClusterPhase.ROLLED_BACK and "no longer a target" in gone.reason


def test_a_pin_to_a_revision_not_loaded_is_loaded_first(tmp_path: Path, store: Store) -> None:
    rig = make_rig(tmp_path, store)
    first = rig.source.commit_files(files("1", strategy=""))
    rig.tick()
    rig.source.commit_files(files("2", strategy=""))
    rig.daemon.poke()
    rig.tick()
    again = restart(tmp_path, store, rig.source)  # only head is loaded now
    again.store.pin("web", ["*"], first, "carol", T0)
    settle(again, 3)
    assert revisions(again) == dict.fromkeys(CLUSTERS, first)


def test_a_degraded_canary_halts_and_the_others_keep_their_revision(rig: Rig) -> None:
    first = rig.source.commit_files(files("1"))
    rig.tick()
    assert isinstance(rig.clusters, Workloads)
    # The revision breaks it: the pass that applies it reads it still rolling out, a re-check
    # after the apply finds it Degraded.
    rig.clusters.health = judged(Health.PROGRESSING, 0)
    rig.clusters.rollout = [judged(Health.DEGRADED, 0)]
    second = rig.source.commit_files(files("2"))
    rig.daemon.poke()
    settle(rig)
    state = rollout(rig)
    assert state.phase == RolloutPhase.HALTED
    assert state.cluster("beijing-1").phase == ClusterPhase.FAILED
    assert "Degraded" in state.cluster("beijing-1").reason
    assert revisions(rig) == {"beijing-1": second, "beijing-2": first, "us-west-1": first}
    metrics = rig.daemon.metrics.exposition().decode()
    assert 'reconciler_rollout_cluster_failures_total{app="web"} 1.0' in metrics
    assert 'reconciler_rollout_in_progress{app="web"} 0.0' in metrics


def test_degraded_from_before_the_revision_does_not_fail_its_gate_at_once(rig: Rig) -> None:
    """Revision 1 is Degraded (a ConfigMap key missing); revision 2 adds it. The pass that
    applies 2 judges the Deployment it left alone on what it read before the apply: still
    Degraded. That fails nothing; the gate waits for the Deployment to recover."""
    assert isinstance(rig.clusters, Workloads)
    rig.clusters.health = judged(Health.DEGRADED, 0)
    rig.source.commit_files(files("1"))
    rig.tick()
    rig.clusters.rollout = [judged(Health.DEGRADED, 0)] * 2 + [judged(Health.HEALTHY, 3)]
    rig.source.commit_files(files("2"))
    rig.daemon.poke()
    settle(rig, 8)
    assert rig.clusters.checks  # Degraded re-read after the apply
    state = rollout(rig)
    assert state.phase == RolloutPhase.PROGRESSING
    canary = state.cluster("beijing-1")
    assert canary.phase == ClusterPhase.PROGRESSING
    assert "since before the apply" in canary.reason
    settle(rig, 30)
    assert rollout(rig).cluster("beijing-1").phase == ClusterPhase.SUCCEEDED


def test_the_pass_that_applies_a_revision_does_not_count_for_its_gate(rig: Rig) -> None:
    """It judges the objects the revision left alone on what it read before the apply: the
    revision counts as applied when the pass ended, its health as read when it started."""
    rollouts, key = rig.daemon.rollouts, ("web", "beijing-1")
    t0 = datetime(2026, 12, 2, 22, 0, tzinfo=UTC)
    t1, t2 = t0 + timedelta(seconds=3), t0 + timedelta(seconds=10)
    rollouts.observe(key, "b" * 40, t0, t1, True, False, "Healthy")
    seen = rollouts.observed[key]
    assert seen.applied_at == t1.timestamp()
    assert seen.health_at is not None and seen.health_at <= seen.applied_at
    rollouts.observe(key, "b" * 40, t2, t2 + timedelta(seconds=1), True, False, "Healthy")
    seen = rollouts.observed[key]
    assert seen.applied_at == t1.timestamp()  # applied once, by the first pass
    assert seen.health_at == t2.timestamp()  # read by a pass that started after it


def test_a_rollout_stops_when_its_app_leaves_the_repo(rig: Rig) -> None:
    rig.source.commit_files(files("1"))
    rig.tick()
    rig.source.commit_files(files("2"))
    rig.daemon.poke()
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.WAITING_APPROVAL
    gone = {k: v for k, v in files("2").items() if not k.startswith("apps/web/")}
    gone["apps/other/app.yaml"] = snip.app(
        "other", "source: {manifests: manifests/}\nplacement: {clusters: [beijing-1]}\n"
    )
    gone["apps/other/manifests/cm.yaml"] = configmap("other")
    rig.source.commit_files(gone)
    rig.daemon.poke()
    settle(rig, 3)
    state = rollout(rig)
    assert (state.phase, state.reason) == (RolloutPhase.SUPERSEDED, "the app left the repo")
    assert (
        'reconciler_rollout_in_progress{app="web"} 0.0' in rig.daemon.metrics.exposition().decode()
    )


def changed(
    value: str, strategy: str = STRATEGY, paused: tuple[str, ...] = (), broken: str = ""
) -> dict[str, str]:
    """``files(value, strategy)`` with these clusters paused, the app's app.yaml broken."""
    out = files(value, strategy)
    for name in paused:
        out[f"clusters/{name}.yaml"] = snip.cluster(name, paused=True)
    out["apps/web/app.yaml"] += broken
    return out


def test_a_cluster_paused_during_a_rollout_is_skipped_and_the_rollout_goes_on(rig: Rig) -> None:
    first = rig.source.commit_files(changed("1"))
    rig.tick()
    second = rig.source.commit_files(changed("2"))
    rig.daemon.poke()
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.WAITING_APPROVAL
    rig.source.commit_files(changed("2", paused=("beijing-2",)))
    rig.daemon.poke()
    settle(rig, 3)
    skipped = rollout(rig).cluster("beijing-2")
    assert (skipped.phase, skipped.reason) == (ClusterPhase.SKIPPED, "paused")
    rig.store.add_rollout_command("web", second, "approve", "prod", "alice", T0)
    settle(rig, 700)  # past the progress deadline (10m)
    state = rollout(rig)
    assert state.phase == RolloutPhase.SUCCEEDED
    assert state.cluster("beijing-2").phase == ClusterPhase.SKIPPED
    assert revisions(rig) == {"beijing-1": second, "beijing-2": first, "us-west-1": second}


def test_a_cluster_unplaced_during_a_rollout_leaves_it(rig: Rig) -> None:
    rig.source.commit_files(changed("1"))
    rig.tick()
    second = rig.source.commit_files(changed("2"))
    rig.daemon.poke()
    settle(rig)
    unplaced = changed("2")
    unplaced["apps/web/app.yaml"] = unplaced["apps/web/app.yaml"].replace(
        "[beijing-1, beijing-2, us-west-1]", "[beijing-1, us-west-1]"
    )
    rig.source.commit_files(unplaced)
    rig.daemon.poke()
    settle(rig, 3)
    assert rollout(rig).cluster("beijing-2").reason == "no longer placed"
    rig.store.add_rollout_command("web", second, "approve", "prod", "alice", T0)
    settle(rig, 700)
    assert rollout(rig).phase == RolloutPhase.SUCCEEDED
    assert revisions(rig)["us-west-1"] == second


def test_a_cluster_unpaused_during_a_rollout_waits_for_its_stage(rig: Rig) -> None:
    first = rig.source.commit_files(changed("1"))
    rig.tick()
    second = rig.source.commit_files(changed("2", paused=("us-west-1",)))
    rig.daemon.poke()
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.WAITING_APPROVAL
    # us-west-1 back: the same render elsewhere, so no new rollout.
    third = rig.source.commit_files(changed("2"))
    rig.daemon.poke()
    settle(rig, 5)
    state = rollout(rig)
    assert (state.revision, state.phase) == (second, RolloutPhase.WAITING_APPROVAL)
    joined = state.cluster("us-west-1")
    assert (joined.phase, joined.base) == (ClusterPhase.PENDING, first)
    assert revisions(rig) == {"beijing-1": second, "beijing-2": first, "us-west-1": first}
    rig.store.add_rollout_command("web", second, "approve", "prod", "alice", T0)
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.SUCCEEDED
    # second was not rendered for us-west-1 (paused then): it runs third, the same objects.
    assert revisions(rig) == {"beijing-1": second, "beijing-2": second, "us-west-1": third}


def test_a_cluster_unpaused_after_a_halt_keeps_its_revision(rig: Rig) -> None:
    first = rig.source.commit_files(changed("1"))
    rig.tick()
    assert isinstance(rig.clusters, Workloads)
    rig.clusters.health = judged(Health.PROGRESSING, 0)
    rig.clusters.rollout = [judged(Health.DEGRADED, 0)]  # read after the apply
    second = rig.source.commit_files(changed("2", paused=("us-west-1",)))
    rig.daemon.poke()
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.HALTED
    rig.source.commit_files(changed("2"))
    rig.daemon.poke()
    settle(rig, 5)
    assert revisions(rig) == {"beijing-1": second, "beijing-2": first, "us-west-1": first}


def test_a_broken_app_file_holds_its_rollout_until_it_loads_again(rig: Rig) -> None:
    first = rig.source.commit_files(changed("1"))
    rig.tick()
    second = rig.source.commit_files(changed("2"))
    rig.daemon.poke()
    settle(rig)
    rig.source.commit_files(changed("2", broken="  bogusField: [\n"))
    rig.daemon.poke()
    settle(rig, 3)
    state = rollout(rig)
    assert (state.revision, state.phase) == (second, RolloutPhase.WAITING_APPROVAL)
    assert revisions(rig) == {"beijing-1": second, "beijing-2": first, "us-west-1": first}
    rig.store.add_rollout_command("web", second, "approve", "prod", "alice", T0)
    settle(rig, 3)  # held: the approval waits for the app to load
    assert rollout(rig).phase == RolloutPhase.WAITING_APPROVAL
    rig.source.commit_files(changed("2"))
    rig.daemon.poke()
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.SUCCEEDED
    assert revisions(rig) == dict.fromkeys(CLUSTERS, second)


SOAK = """
rollout:
  canary: {clusters: [beijing-1]}
  minHealthyTime: 20m
  progressDeadline: 1m
"""


def test_a_restart_during_a_soak_longer_than_the_deadline_soaks_again(
    tmp_path: Path, store: Store, rig: Rig
) -> None:
    rig.source.commit_files(changed("1", SOAK))
    rig.tick()
    second = rig.source.commit_files(changed("2", SOAK))
    rig.daemon.poke()
    settle(rig, 120)
    assert rollout(rig).cluster("beijing-1").phase == ClusterPhase.SOAKING
    again = make_rig(tmp_path, store, rig.source)
    again.clock.t = rig.clock.t
    again.tick()
    settle(again, 5)
    assert rollout(again).cluster("beijing-1").phase == ClusterPhase.SOAKING
    settle(again, 20 * 60 + 5)  # the soak starts again, and is not cut short by the deadline
    state = rollout(again)
    assert state.cluster("beijing-1").phase == ClusterPhase.SUCCEEDED
    assert state.phase == RolloutPhase.PROGRESSING and state.stage == 1
    assert revisions(again) == dict.fromkeys(CLUSTERS, second)


def test_a_broken_group_the_app_names_holds_its_rollout_too(rig: Rig) -> None:
    def grouped(value: str, broken: bool = False) -> dict[str, str]:
        out = changed(value)
        out["apps/web/app.yaml"] = out["apps/web/app.yaml"].replace(
            "placement: {clusters: [beijing-1, beijing-2, us-west-1]}",
            "placement: {clusters: [beijing-1, beijing-2], groups: [west]}",
        )
        out["clusters/us-west-1.yaml"] = snip.cluster("us-west-1", labels="{region: west}")
        selector = "{matchLabels: {region: west}}" + ("\n  bogus: [" if broken else "")
        out["groups/west.yaml"] = snip.group("west", selector)
        return out

    first = rig.source.commit_files(grouped("1"))
    rig.tick()
    second = rig.source.commit_files(grouped("2"))
    rig.daemon.poke()
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.WAITING_APPROVAL
    rig.source.commit_files(grouped("2", broken=True))
    rig.daemon.poke()
    settle(rig, 3)
    assert rollout(rig).phase == RolloutPhase.WAITING_APPROVAL
    rig.source.commit_files(grouped("2"))
    rig.daemon.poke()
    settle(rig, 3)
    rig.store.add_rollout_command("web", second, "approve", "prod", "alice", T0)
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.SUCCEEDED
    assert revisions(rig) == dict.fromkeys(CLUSTERS, second)
    assert first != second


def test_a_cluster_whose_file_breaks_during_a_rollout_rejoins_it_when_fixed(rig: Rig) -> None:
    by_labels = STRATEGY.replace("target: {clusters: [beijing-2]}", "target: {selector: {}}")

    def labelled(value: str, broken: bool = False) -> dict[str, str]:
        out = changed(value, by_labels)
        out["apps/web/app.yaml"] = out["apps/web/app.yaml"].replace(
            "placement: {clusters: [beijing-1, beijing-2, us-west-1]}",
            "placement: {selector: {matchLabels: {web: 'yes'}}}",
        )
        for name in CLUSTERS:
            labels = "{web: 'yes'}" if name != "us-west-1" else "{}"
            out[f"clusters/{name}.yaml"] = snip.cluster(name, labels=labels)
        if broken:
            out["clusters/beijing-2.yaml"] += "  bogus: [\n"
        return out

    first = rig.source.commit_files(labelled("1"))
    rig.tick()
    second = rig.source.commit_files(labelled("2"))
    rig.daemon.poke()
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.WAITING_APPROVAL
    rig.source.commit_files(labelled("2", broken=True))
    rig.daemon.poke()
    settle(rig, 3)
    left = rollout(rig).cluster("beijing-2")
    assert (left.phase, left.reason) == (ClusterPhase.SKIPPED, "its cluster file is broken")
    rig.source.commit_files(labelled("2"))
    rig.daemon.poke()
    settle(rig, 3)
    back = rollout(rig).cluster("beijing-2")
    assert (back.phase, back.base) == (ClusterPhase.PENDING, first)
    assert revisions(rig)["beijing-2"] == first
    rig.store.add_rollout_command("web", second, "approve", "prod", "alice", T0)
    settle(rig)
    assert rollout(rig).phase == RolloutPhase.SUCCEEDED
    assert revisions(rig) == {"beijing-1": second, "beijing-2": second}
