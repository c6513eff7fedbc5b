"""When a new revision starts (or supersedes) a rollout."""

from __future__ import annotations

import pytest

from reconciler.rollout.begin import begin, may_supersede
from reconciler.rollout.machine import start, step
from reconciler.rollout.members import Targets
from reconciler.rollout.model import ClusterPhase, PlannedStage, RolloutPhase, RolloutPlan

PLAN = RolloutPlan((PlannedStage("canary", ("c1",), 1), PlannedStage("rest", ("c2", "c3"), 1)))
R1, R2, R3 = "1" * 40, "2" * 40, "3" * 40


def digests(**by_revision: str) -> dict[tuple[str, str], str]:
    """digests(r1="aaa") — one letter per cluster c1, c2, c3."""
    names = {"r1": R1, "r2": R2, "r3": R3}
    return {
        (names[rev], f"c{i + 1}"): letter
        for rev, letters in by_revision.items()
        for i, letter in enumerate(letters)
    }


def test_a_changed_render_starts_a_rollout_and_unchanged_clusters_move_at_once() -> None:
    running = {"c1": R1, "c2": R1, "c3": R1}
    result = begin("web", Targets(R2, PLAN, running, digests(r1="aaa", r2="bba")), None, 0.0)
    assert result.started is not None and result.superseded is None
    assert result.started.cluster("c3").phase == ClusterPhase.SUCCEEDED
    assert result.started.cluster("c3").unchanged
    assert result.started.cluster("c1").phase == ClusterPhase.PENDING


def test_no_rollout_when_nothing_renders_differently_or_nothing_runs_yet() -> None:
    same = begin(
        "web",
        Targets(R2, PLAN, {c: R1 for c in ("c1", "c2", "c3")}, digests(r1="aaa", r2="aaa")),
        None,
        0.0,
    )
    assert same.started is None
    new_app = begin("web", Targets(R2, PLAN, {}, digests(r2="aaa")), None, 0.0)
    assert new_app.started is None and "no cluster that runs" in new_app.reason


def test_an_existing_rollout_of_the_revision_is_kept() -> None:
    latest = start("web", R2, PLAN, {c: R1 for c in ("c1", "c2", "c3")}, 0.0)
    assert begin("web", Targets(R2, PLAN, {}, {}), latest, 1.0).started is None


def test_a_newer_change_supersedes_from_the_first_stage() -> None:
    latest = start("web", R2, PLAN, {c: R1 for c in ("c1", "c2", "c3")}, 0.0)
    latest = step(latest, {}, (), 0.0).state  # c1 progressing on R2
    running = {"c1": R2, "c2": R1, "c3": R1}
    result = begin(
        "web", Targets(R3, PLAN, running, digests(r1="aaa", r2="bbb", r3="ccc")), latest, 5.0
    )
    assert result.superseded is not None and result.superseded.phase == RolloutPhase.SUPERSEDED
    assert result.started is not None
    assert [c.base for c in result.started.clusters] == [R2, R1, R1]


def test_a_commit_that_renders_like_the_running_rollout_does_not_disturb_it() -> None:
    latest = start("web", R2, PLAN, {c: R1 for c in ("c1", "c2", "c3")}, 0.0)
    running = {"c1": R2, "c2": R1, "c3": R1}
    result = begin(
        "web", Targets(R3, PLAN, running, digests(r1="aaa", r2="bbb", r3="bbb")), latest, 5.0
    )
    assert result.started is None and result.superseded is None


def test_a_halt_stands_against_an_unrelated_commit() -> None:
    halted = start("web", R2, PLAN, {c: R1 for c in ("c1", "c2", "c3")}, 0.0)
    halted = halted.__class__(**{**halted.__dict__, "phase": RolloutPhase.HALTED})
    running = {"c1": R2, "c2": R1, "c3": R1}
    result = begin(
        "web", Targets(R3, PLAN, running, digests(r1="aaa", r2="bbb", r3="bbb")), halted, 5.0
    )
    assert result.started is None


def test_a_cluster_that_runs_no_revision_yet_gets_head_at_once() -> None:
    running = {"c1": R1, "c2": None, "c3": R1}
    result = begin("web", Targets(R2, PLAN, running, digests(r1="aaa", r2="bbb")), None, 0.0)
    assert result.started is not None
    c2 = result.started.cluster("c2")
    assert c2.unchanged and result.started.desired("c2") == R2


@pytest.mark.parametrize(
    ("head_behind", "refetched", "decides"),
    [
        (False, False, True),  # a newer head (a descendant), or one on another history
        (True, False, False),  # behind: a replica that has not fetched the newer commit yet
        (None, False, False),  # that revision is not fetched here: not known to be ahead
        (True, True, True),  # a fetch since says the branch is back there (a force-push)
        (None, True, True),
    ],
)
def test_a_head_behind_the_rollout_supersedes_it_only_once_a_fetch_says_the_branch_is_there(
    head_behind: bool | None, refetched: bool, decides: bool
) -> None:
    assert may_supersede(head_behind, refetched) is decides
