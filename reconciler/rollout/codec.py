"""A rollout's state as JSON-ready data and back (what the store keeps)."""

from __future__ import annotations

from typing import Any

from reconciler.rollout.model import (
    Approval,
    ClusterPhase,
    ClusterState,
    OnFailure,
    PlannedStage,
    RolloutPhase,
    RolloutPlan,
    RolloutState,
)


def plan_to_data(plan: RolloutPlan) -> dict[str, Any]:
    return {
        "stages": [
            {
                "name": s.name,
                "clusters": list(s.clusters),
                "maxConcurrent": s.max_concurrent,
                "minHealthyTime": s.min_healthy_time,
                "interval": s.interval,
                "approval": s.approval,
                "progressDeadline": s.progress_deadline,
                "maxFailures": s.max_failures,
                "onFailure": str(s.on_failure),
            }
            for s in plan.stages
        ],
        "warnings": list(plan.warnings),
    }


def plan_from_data(data: dict[str, Any]) -> RolloutPlan:
    stages = tuple(
        PlannedStage(
            name=s["name"],
            clusters=tuple(s["clusters"]),
            max_concurrent=int(s["maxConcurrent"]),
            min_healthy_time=float(s["minHealthyTime"]),
            interval=float(s["interval"]),
            approval=bool(s["approval"]),
            progress_deadline=float(s["progressDeadline"]),
            max_failures=int(s["maxFailures"]),
            on_failure=OnFailure(s["onFailure"]),
        )
        for s in data["stages"]
    )
    return RolloutPlan(stages, tuple(data.get("warnings", ())))


def state_to_data(state: RolloutState) -> dict[str, Any]:
    return {
        "app": state.app,
        "revision": state.revision,
        "plan": plan_to_data(state.plan),
        "clusters": [
            {
                "cluster": c.cluster,
                "stage": c.stage,
                "batch": c.batch,
                "base": c.base,
                "phase": str(c.phase),
                "startedAt": c.started_at,
                "healthySince": c.healthy_since,
                "finishedAt": c.finished_at,
                "reason": c.reason,
                "unchanged": c.unchanged,
            }
            for c in state.clusters
        ],
        "startedAt": state.started_at,
        "updatedAt": state.updated_at,
        "phase": str(state.phase),
        "stage": state.stage,
        "batch": state.batch,
        "batchStarted": state.batch_started,
        "nextAt": state.next_at,
        "paused": state.paused,
        "approvals": [{"stage": a.stage, "user": a.user, "at": a.at} for a in state.approvals],
        "reason": state.reason,
        "finishedAt": state.finished_at,
    }


def state_from_data(data: dict[str, Any]) -> RolloutState:
    clusters = tuple(
        ClusterState(
            cluster=c["cluster"],
            stage=int(c["stage"]),
            batch=int(c["batch"]),
            base=c["base"],
            phase=ClusterPhase(c["phase"]),
            started_at=c["startedAt"],
            healthy_since=c["healthySince"],
            finished_at=c["finishedAt"],
            reason=c["reason"],
            unchanged=bool(c.get("unchanged", False)),
        )
        for c in data["clusters"]
    )
    return RolloutState(
        app=data["app"],
        revision=data["revision"],
        plan=plan_from_data(data["plan"]),
        clusters=clusters,
        started_at=float(data["startedAt"]),
        updated_at=float(data["updatedAt"]),
        phase=RolloutPhase(data["phase"]),
        stage=int(data["stage"]),
        batch=int(data["batch"]),
        batch_started=bool(data["batchStarted"]),
        next_at=data["nextAt"],
        paused=bool(data["paused"]),
        approvals=tuple(Approval(a["stage"], a["user"], float(a["at"])) for a in data["approvals"]),
        reason=data["reason"],
        finished_at=data["finishedAt"],
    )
