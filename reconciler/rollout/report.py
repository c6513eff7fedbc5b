"""`reconciler rollout status`: a rollout as a table for people or JSON for tools (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from reconciler.rollout.codec import state_to_data
from reconciler.rollout.describe import duration, gates
from reconciler.rollout.model import ClusterPhase, RolloutPhase, RolloutState


def _time(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting_for(state: RolloutState, now: float) -> str:
    """What the rollout waits for, and until when: one phrase."""
    stage = state.current_stage
    name = stage.name if stage is not None else ""
    if state.finished:
        reason = f": {state.reason}" if state.reason else ""
        return f"{state.phase}{reason}"
    if state.phase == RolloutPhase.ROLLING_BACK:
        back = [c.cluster for c in state.clusters if c.phase == ClusterPhase.ROLLING_BACK]
        return f"rolling back {', '.join(back)} ({state.reason})"
    paused = " (paused: no new batch starts)" if state.paused else ""
    if state.phase == RolloutPhase.WAITING_APPROVAL:
        return f"stage {name} waits for manual approval: reconciler rollout approve {state.app}"
    if state.phase == RolloutPhase.WAITING and state.next_at is not None:
        left = max(0.0, state.next_at - now)
        return f"stage {name}: next batch at {_time(state.next_at)} (in {duration(left)}){paused}"
    busy = [
        c for c in state.clusters if c.phase in (ClusterPhase.PROGRESSING, ClusterPhase.SOAKING)
    ]
    parts = []
    for c in busy:
        planned = state.plan.stages[c.stage]
        if c.phase == ClusterPhase.SOAKING and c.healthy_since is not None:
            until = c.healthy_since + planned.min_healthy_time
            parts.append(f"{c.cluster} soaking until {_time(until)}")
        elif c.started_at is not None:
            until = (c.progress_from or c.started_at) + planned.progress_deadline
            parts.append(f"{c.cluster} healthy by {_time(until)}")
    if parts:
        return f"stage {name}: {'; '.join(parts)}{paused}"
    return f"stage {name}{paused}"


def _cluster_rows(state: RolloutState) -> list[list[str]]:
    rows = []
    for c in state.clusters:
        stage = state.plan.stages[c.stage]
        batch = "" if c.batch < 0 else str(c.batch + 1)
        rows.append(
            [
                stage.name,
                batch,
                c.cluster,
                str(c.phase),
                (state.desired(c.cluster) or "-")[:12],
                _time(c.started_at),
                c.reason,
            ]
        )
    return rows


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def status_text(states: Sequence[RolloutState], now: float) -> str:
    """Each app's newest rollout: a heading, what it waits for, gates, then one row per cluster."""
    if not states:
        return "no rollout yet (an app with spec.rollout starts one when its render changes)"
    blocks = []
    for state in sorted(states, key=lambda s: s.app):
        stage = state.current_stage
        where = f"stage {state.stage + 1}/{len(state.plan.stages)}" if stage else "all stages done"
        head = (
            f"{state.app}  revision {state.revision[:12]}  {state.phase}"
            f"{'  (paused)' if state.paused else ''}  {where}  started {_time(state.started_at)}"
        )
        lines = [head, f"  {waiting_for(state, now)}"]
        if stage is not None and not state.finished:
            lines.append(f"  gates of {stage.name}: {'; '.join(gates(stage))}")
        for approval in state.approvals:
            lines.append(
                f"  approved: stage {approval.stage} by {approval.user} at {_time(approval.at)}"
            )
        headers = ["STAGE", "BATCH", "CLUSTER", "PHASE", "RUNS", "STARTED", "REASON"]
        table = _table(headers, _cluster_rows(state))
        lines += ["  " + line for line in table.splitlines()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def status_data(state: RolloutState, now: float) -> dict[str, Any]:
    data = state_to_data(state)
    data["waiting_for"] = waiting_for(state, now)
    for cluster in data["clusters"]:
        cluster["desired"] = state.desired(cluster["cluster"])
    return data


def status_document(states: Sequence[RolloutState], now: float) -> dict[str, Any]:
    """``rollout status -o json|yaml``: each app's newest rollout."""
    return {"rollouts": [status_data(s, now) for s in sorted(states, key=lambda s: s.app)]}


def status_json(states: Sequence[RolloutState], now: float) -> str:
    return json.dumps(status_document(states, now), indent=2, sort_keys=True)


def status_section(
    states: Sequence[RolloutState], pins: Sequence[tuple[str, str, str, str, float]], now: float
) -> str:
    """What `reconciler status` adds below its table: running rollouts and their targets'
    phases, and pins ``(app, cluster, revision, user, at)``. Empty when there is neither."""
    lines: list[str] = []
    for state in sorted(states, key=lambda s: s.app):
        if state.finished and state.phase == RolloutPhase.SUCCEEDED:
            continue
        stage = state.current_stage
        where = (
            f" at stage {stage.name} ({state.stage + 1}/{len(state.plan.stages)})" if stage else ""
        )
        lines.append(f"rollout {state.app} {state.revision[:12]}: {state.phase}{where}")
        lines.append(f"  {waiting_for(state, now)}")
        phases = ", ".join(
            f"{c.cluster} {c.phase}" for c in state.clusters if c.phase != ClusterPhase.PENDING
        )
        pending = [c.cluster for c in state.clusters if c.phase == ClusterPhase.PENDING]
        if phases:
            lines.append(f"  {phases}")
        if pending:
            lines.append(f"  not reached yet (run their earlier revision): {', '.join(pending)}")
    for app, cluster, revision, user, at in sorted(pins):
        where = "every cluster" if cluster == "*" else cluster
        lines.append(
            f"pinned: {app} on {where} to {revision[:12]} by {user} at {_time(at)}"
            f" (reconciler rollback {app} --release)"
        )
    return "\n".join(lines) + "\n" if lines else ""
