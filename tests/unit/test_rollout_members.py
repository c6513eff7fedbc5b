"""Clusters that leave or join an app's targets while its rollout exists (pure)."""

from __future__ import annotations

from reconciler.rollout import codec
from reconciler.rollout.begin import begin
from reconciler.rollout.machine import start, step
from reconciler.rollout.members import Targets, refit
from reconciler.rollout.model import (
    ClusterPhase,
    Command,
    CommandKind,
    Observation,
    PlannedStage,
    RolloutPhase,
    RolloutPlan,
    RolloutState,
)

R1, R2, R3 = "1" * 40, "2" * 40, "3" * 40
CANARY = PlannedStage("canary", ("c1",), 1)
PROD = PlannedStage("prod", ("c2",), 1, approval=True)
REST = PlannedStage("remaining", ("c3",), 1)
ALL = RolloutPlan((CANARY, PROD, REST))
RENDERS = {(rev, c): f"{rev[0]}-{c}" for rev in (R1, R2) for c in ("c1", "c2", "c3")}
SAME_AT_R3 = {**RENDERS, **{(R3, c): f"2-{c}" for c in ("c1", "c2", "c3")}}


def waiting(plan: RolloutPlan = ALL) -> RolloutState:
    """A rollout of R2 from R1 whose canary succeeded; prod waits for approval."""
    state = start("web", R2, plan, dict.fromkeys(plan.clusters, R1), 0.0)
    state = step(state, {}, (), 0.0).state
    healthy = {"c1": Observation(R2, 0.0, "Healthy", 1.0, 1.0)}
    state = step(state, healthy, (), 2.0).state
    assert state.phase == RolloutPhase.WAITING_APPROVAL
    return state


def test_a_cluster_that_leaves_is_skipped_with_the_reason_and_the_rollout_goes_on() -> None:
    state = waiting()
    without = RolloutPlan((CANARY, REST))
    result = begin(
        "web", Targets(R3, without, {"c1": R2, "c3": R1}, SAME_AT_R3, {"c2": "paused"}), state, 10.0
    )
    assert result.started is None and result.refitted is not None
    left = result.refitted.state.cluster("c2")
    assert (left.phase, left.reason, left.left) == (ClusterPhase.SKIPPED, "paused", True)
    approved = step(result.refitted.state, {}, (), 11.0).state
    assert approved.phase == RolloutPhase.WAITING_APPROVAL  # the gate still stands
    assert codec.state_from_data(codec.state_to_data(approved)) == approved


def test_a_skipped_cluster_is_never_started_by_its_batch() -> None:
    state = waiting()
    gone = refit(
        state, Targets(R3, RolloutPlan((CANARY, REST)), {}, RENDERS, {"c2": "paused"}), 10.0
    )
    approve = Command(CommandKind.APPROVE, "ops", 11.0, "prod")
    moved = step(gone.state, {}, (approve,), 11.0)
    assert moved.state.cluster("c2").phase == ClusterPhase.SKIPPED
    assert "c2" not in {a.cluster for a in moved.actions}
    assert moved.state.stage == 2  # prod had nothing left to do: on to the next stage


def test_a_cluster_that_comes_back_waits_for_its_stage() -> None:
    state = waiting()
    gone = refit(
        state, Targets(R3, RolloutPlan((CANARY, REST)), {}, RENDERS, {"c2": "paused"}), 10.0
    )
    back = refit(gone.state, Targets(R3, ALL, {"c2": R1}, RENDERS), 20.0).state
    c2 = back.cluster("c2")
    assert (c2.phase, c2.base, c2.left) == (ClusterPhase.PENDING, R1, False)
    assert back.desired("c2") == R1


def test_a_cluster_new_to_the_rollout_joins_its_stage_and_keeps_its_revision_until_then() -> None:
    state = waiting(RolloutPlan((CANARY, PROD)))
    result = begin("web", Targets(R3, ALL, {"c1": R2, "c2": R1, "c3": R1}, SAME_AT_R3), state, 10.0)
    assert result.started is None and result.refitted is not None
    joined = result.refitted.state
    c3 = joined.cluster("c3")
    assert (c3.phase, c3.base, c3.runs) == (ClusterPhase.PENDING, R1, None)
    assert joined.plan.stages[-1] == REST  # the stage it is in, added to the rollout's plan
    assert joined.desired("c3") == R1


def test_a_joining_cluster_the_rollout_revision_was_not_rendered_for_runs_head() -> None:
    state = waiting(RolloutPlan((CANARY, PROD)))
    renders = {k: v for k, v in SAME_AT_R3.items() if k != (R2, "c3")}  # c3 paused at R2
    joined = refit(state, Targets(R3, ALL, {"c3": R1}, renders), 10.0).state
    assert joined.cluster("c3").runs == R3
    assert joined.revision_of(joined.cluster("c3")) == R3


def test_a_cluster_joining_in_a_stage_already_done_joins_the_stage_in_flight() -> None:
    state = waiting()
    early = RolloutPlan((PlannedStage("canary", ("c1", "c4"), 1), PROD, REST))
    joined = refit(state, Targets(R3, early, {"c4": R1}, RENDERS), 10.0).state
    assert joined.cluster("c4").stage == state.stage == 1
    assert "c4" in joined.plan.stages[1].clusters


def test_a_cluster_that_never_ran_the_app_is_left_to_take_head() -> None:
    state = waiting(RolloutPlan((CANARY, PROD)))
    same = refit(state, Targets(R3, ALL, {}, SAME_AT_R3), 10.0)
    assert same.state is state and not same.events


def test_a_cluster_joining_after_a_halt_keeps_its_revision() -> None:
    state = waiting(RolloutPlan((CANARY, PROD)))
    degraded = {"c2": Observation(R2, 12.0, "Degraded", 13.0, 13.0)}
    approve = Command(CommandKind.APPROVE, "ops", 11.0, "prod")
    state = step(state, {}, (approve,), 11.0).state
    halted = step(state, degraded, (), 14.0).state
    assert halted.phase == RolloutPhase.HALTED
    joined = refit(halted, Targets(R3, ALL, {"c3": R1}, SAME_AT_R3), 20.0).state
    c3 = joined.cluster("c3")
    assert c3.phase == ClusterPhase.SKIPPED and joined.desired("c3") == R1
