"""A target's health is its worst object's, with that object and its reason."""

from __future__ import annotations

from typing import Any

from reconciler.health import Health, ObjectHealth, TargetHealth, target_health
from reconciler.objects import ObjectRef

DEPLOY = ObjectRef("apps", "Deployment", "demo", "hello-world")
SERVICE = ObjectRef("", "Service", "demo", "hello-world")
JOB = ObjectRef("batch", "Job", "demo", "migrate")


def _deployment(available: int, desired: int, deadline: bool = False) -> dict[str, Any]:
    conditions = []
    if deadline:
        conditions.append(
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello-world", "namespace": "demo", "generation": 1},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": 1,
            "replicas": desired,
            "updatedReplicas": desired,
            "availableReplicas": available,
            "conditions": conditions,
        },
    }


SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello-world"}, "spec": {}}


def test_the_worst_object_decides_and_names_itself() -> None:
    health = target_health({DEPLOY: _deployment(1, 3, deadline=True), SERVICE: SVC})
    assert str(health) == (
        "Degraded: Deployment.apps/demo/hello-world 1/3 available (ProgressDeadlineExceeded)"
    )
    assert (health.ready, health.desired, health.ready_text) == (1, 3, "1/3")
    assert [o.ref for o in health.objects] == [DEPLOY, SERVICE]


def test_all_healthy_reads_like_vela() -> None:
    health = target_health({DEPLOY: _deployment(3, 3), SERVICE: SVC})
    assert (health.health, health.reason, health.ready_text) == (
        Health.HEALTHY,
        "2 objects healthy",
        "3/3",
    )


def test_missing_is_worse_than_progressing_and_degraded_worst() -> None:
    order = [Health.HEALTHY, Health.SUSPENDED, Health.PROGRESSING, Health.UNKNOWN]
    order += [Health.MISSING, Health.DEGRADED]
    assert sorted(Health, key=lambda h: h.severity) == order
    health = target_health({DEPLOY: _deployment(1, 3), JOB: None})
    assert str(health) == "Missing: Job.batch/demo/migrate not found on the cluster"


def test_several_objects_in_the_worst_state_are_counted() -> None:
    other = ObjectRef("apps", "Deployment", "demo", "other")
    health = target_health({DEPLOY: None, other: None})
    assert (
        health.reason
        == "Deployment.apps/demo/hello-world not found on the cluster (and 1 more Missing)"
    )


def test_without_workloads_ready_counts_healthy_objects() -> None:
    health = target_health({SERVICE: SVC})
    assert (health.ready, health.desired, health.ready_text) == (None, None, "1/1")
    assert target_health({}).health is Health.HEALTHY
    assert target_health({}).ready_text == "-"


def test_target_health_round_trips_through_json() -> None:
    health = target_health({DEPLOY: _deployment(2, 3), SERVICE: SVC})
    assert TargetHealth.from_json(health.to_json()) == health
    judged = [ObjectHealth(Health.DEGRADED, "x", 0, 1, ref=DEPLOY)]
    assert target_health(judged).objects == tuple(judged)


def test_final_states_need_no_quick_recheck() -> None:
    assert {h for h in Health if h.final} == {Health.HEALTHY, Health.SUSPENDED, Health.DEGRADED}
