"""A rollout's state as JSON-ready data and back (what the store keeps), snake_case keys;
rows stored with the camelCase keys of earlier versions are read too."""

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


def _get(data: dict[str, Any], key: str) -> Any:
    """``data[key]``; rows written before the keys were snake_case have them in camelCase."""
    if key in data:
        return data[key]
    head, *rest = key.split("_")
    return data[head + "".join(word.title() for word in rest)]


def normalized(data: dict[str, Any]) -> dict[str, Any]:
    """A stored rollout state with snake_case keys, however old the row."""
    return state_to_data(state_from_data(data))


def plan_to_data(plan: RolloutPlan) -> dict[str, Any]:
    return {
        "stages": [
            {
                "name": s.name,
                "clusters": list(s.clusters),
                "max_concurrent": s.max_concurrent,
                "min_healthy_time": s.min_healthy_time,
                "interval": s.interval,
                "approval": s.approval,
                "progress_deadline": s.progress_deadline,
                "max_failures": s.max_failures,
                "on_failure": str(s.on_failure),
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
            max_concurrent=int(_get(s, "max_concurrent")),
            min_healthy_time=float(_get(s, "min_healthy_time")),
            interval=float(s["interval"]),
            approval=bool(s["approval"]),
            progress_deadline=float(_get(s, "progress_deadline")),
            max_failures=int(_get(s, "max_failures")),
            on_failure=OnFailure(_get(s, "on_failure")),
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
                "started_at": c.started_at,
                "healthy_since": c.healthy_since,
                "finished_at": c.finished_at,
                "reason": c.reason,
                "unchanged": c.unchanged,
                "pinned": c.pinned,
                "left": c.left,
                "progress_from": c.progress_from,
                "runs": c.runs,
            }
            for c in state.clusters
        ],
        "started_at": state.started_at,
        "updated_at": state.updated_at,
        "phase": str(state.phase),
        "stage": state.stage,
        "batch": state.batch,
        "batch_started": state.batch_started,
        "next_at": state.next_at,
        "paused": state.paused,
        "approvals": [{"stage": a.stage, "user": a.user, "at": a.at} for a in state.approvals],
        "reason": state.reason,
        "finished_at": state.finished_at,
    }


def state_from_data(data: dict[str, Any]) -> RolloutState:
    clusters = tuple(
        ClusterState(
            cluster=c["cluster"],
            stage=int(c["stage"]),
            batch=int(c["batch"]),
            base=c["base"],
            phase=ClusterPhase(c["phase"]),
            started_at=_get(c, "started_at"),
            healthy_since=_get(c, "healthy_since"),
            finished_at=_get(c, "finished_at"),
            reason=c["reason"],
            unchanged=bool(c.get("unchanged", False)),
            pinned=bool(c.get("pinned", False)),
            left=bool(c.get("left", False)),
            progress_from=c.get("progress_from"),
            runs=c.get("runs"),
        )
        for c in data["clusters"]
    )
    return RolloutState(
        app=data["app"],
        revision=data["revision"],
        plan=plan_from_data(data["plan"]),
        clusters=clusters,
        started_at=float(_get(data, "started_at")),
        updated_at=float(_get(data, "updated_at")),
        phase=RolloutPhase(data["phase"]),
        stage=int(data["stage"]),
        batch=int(data["batch"]),
        batch_started=bool(_get(data, "batch_started")),
        next_at=_get(data, "next_at"),
        paused=bool(data["paused"]),
        approvals=tuple(Approval(a["stage"], a["user"], float(a["at"])) for a in data["approvals"]),
        reason=data["reason"],
        finished_at=_get(data, "finished_at"),
    )
