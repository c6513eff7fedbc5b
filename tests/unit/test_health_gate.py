"""What a rollout gate and ``reconciler wait`` make of a target's health as judged from its live
objects: a pod whose image is not pulled yet is waited on (until the progress deadline), a
crash loop fails at once, a CronJob whose last run failed fails neither (the health rules with
the state machine and with the wait's verdict, all pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reconciler.health import TargetHealth, target_health
from reconciler.objects import ObjectRef
from reconciler.rollout.machine import start, step
from reconciler.rollout.model import (
    ClusterPhase,
    Observation,
    PlannedStage,
    RolloutPhase,
    RolloutPlan,
    RolloutState,
)
from reconciler.store.rows import HealthRow, State, StatusRow
from reconciler.waiting import Goal, Outcome, judge

OLD, NEW = "a" * 40, "b" * 40


def _gate(deadline: float = 20) -> RolloutState:
    """One cluster told at 0 to run NEW; it fails if not healthy by ``deadline``."""
    stage = PlannedStage("all", ("c1",), max_concurrent=1, progress_deadline=deadline)
    state = start("app", NEW, RolloutPlan((stage,)), {"c1": OLD}, 0.0)
    return step(state, {}, (), 0.0).state


def _judged(*objects: dict[str, Any]) -> TargetHealth:
    """The target's health as the daemon judges it from its live ``objects``."""
    return target_health({ObjectRef.of(o): o for o in objects})


def _observed(*objects: dict[str, Any], since: float, at: float) -> Observation:
    """NEW applied at 1, then judged from ``objects``."""
    judged = _judged(*objects)
    return Observation(NEW, 1.0, str(judged.health), since, at, judged.reason)


def _wait(*objects: dict[str, Any]) -> Outcome:
    """``reconciler wait --for healthy`` on one cluster synced at NEW, judged from ``objects``."""
    at = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    row = StatusRow("web", "c1", State.SYNCED, "", NEW, at)
    health = HealthRow("web", "c1", _judged(*objects), NEW, at, at)
    return judge([row], [health], Goal.HEALTHY).outcome


def _cron_job_whose_last_run_failed() -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "backup", "namespace": "demo", "generation": 2},
        "spec": {"schedule": "0 * * * *"},
        "status": {
            "lastScheduleTime": "2026-12-02T05:00:00Z",
            "lastSuccessfulTime": "2026-12-02T04:00:07Z",
        },
    }


def _pod(waiting: str | None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "ready": waiting is None}
    if waiting is None:
        container["state"] = {"running": {"startedAt": "2026-12-02T05:20:13Z"}}
        st = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    else:
        container["state"] = {"waiting": {"reason": waiting}}
        st = {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"containers": [{"name": "app", "image": "web:2"}], "restartPolicy": "Always"},
        "status": {**st, "containerStatuses": [container]},
    }


def test_a_pod_whose_image_is_not_pulled_yet_holds_the_gate_until_the_deadline() -> None:
    """An image pushed moments after the apply, a registry hiccup: waited on, not a failure."""
    state = _gate()
    for reason in ("ErrImagePull", "ImagePullBackOff"):
        pulling = _observed(_pod(reason), since=2.0, at=3.0)
        waiting = step(state, {"c1": pulling}, (), 3.0).state.cluster("c1")
        assert waiting.phase == ClusterPhase.PROGRESSING
        assert waiting.reason == f"Progressing: Pod/demo/web container app: {reason}"
        assert step(state, {"c1": pulling}, (), 20.0).state.phase == RolloutPhase.HALTED
    pulled = _observed(_pod(None), since=8.0, at=9.0)
    assert step(state, {"c1": pulled}, (), 9.0).state.phase == RolloutPhase.SUCCEEDED


def test_a_crash_looping_pod_fails_the_gate_at_once() -> None:
    crashing = _observed(_pod("CrashLoopBackOff"), since=4.0, at=4.0)
    halted = step(_gate(), {"c1": crashing}, (), 4.0).state
    assert halted.phase == RolloutPhase.HALTED
    assert halted.cluster("c1").reason == "Degraded: Pod/demo/web container app: CrashLoopBackOff"


def test_a_cron_jobs_failed_run_does_not_fail_the_gate() -> None:
    """Its run failed on the old revision; the next is an hour away and the new revision has
    nothing to roll out in it."""
    observed = _observed(_pod(None), _cron_job_whose_last_run_failed(), since=0.5, at=3.0)
    assert step(_gate(), {"c1": observed}, (), 3.0).state.phase == RolloutPhase.SUCCEEDED


def test_wait_waits_on_a_pod_not_pulled_yet_and_fails_on_a_crash_loop() -> None:
    assert _wait(_pod("ImagePullBackOff")) is Outcome.WAITING
    assert _wait(_pod("ErrImagePull")) is Outcome.WAITING
    assert _wait(_pod("CrashLoopBackOff")) is Outcome.FAILED
    assert _wait(_pod(None)) is Outcome.REACHED


def test_wait_reaches_a_target_whose_cron_job_run_failed() -> None:
    assert _wait(_pod(None), _cron_job_whose_last_run_failed()) is Outcome.REACHED
