"""A rollout plan in words: what `reconciler plan` and `rollout status` say about it."""

from __future__ import annotations

from reconciler.rollout.model import OnFailure, PlannedStage, RolloutPlan


def duration(seconds: float) -> str:
    """``20s``, ``10m``, ``1h30m``, ``250ms``."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def gates(stage: PlannedStage) -> list[str]:
    """The stage's gates and pace, as short phrases (defaults left out)."""
    out: list[str] = []
    if stage.approval:
        out.append("waits for manual approval")
    total = len(stage.clusters)
    if total > 1 and stage.max_concurrent < total:
        out.append(f"{stage.max_concurrent} at a time")
    if stage.interval > 0 and stage.max_concurrent < total:
        out.append(f"{duration(stage.interval)} between batches")
    if stage.min_healthy_time > 0:
        out.append(f"soak {duration(stage.min_healthy_time)}")
    out.append(f"healthy within {duration(stage.progress_deadline)}")
    if stage.on_failure == OnFailure.CONTINUE:
        out.append("failures do not stop it")
    else:
        verb = "halts" if stage.on_failure == OnFailure.HALT else "rolls back"
        n = stage.max_failures
        when = "on a failure" if n == 0 else f"after more than {n} failure{'s' if n > 1 else ''}"
        out.append(f"{verb} {when}")
    return out


def stage_lines(plan: RolloutPlan) -> list[str]:
    """One line per stage: ``2. prod: us-west-1, eu-1 — waits for manual approval; ...``."""
    lines = []
    for index, stage in enumerate(plan.stages, 1):
        clusters = ", ".join(stage.clusters) or "(no cluster)"
        lines.append(f"{index}. {stage.name}: {clusters} — {'; '.join(gates(stage))}")
    return lines


def summary(plan: RolloutPlan) -> str:
    """The order in one sentence, naming every manual gate with what comes before it:
    ``canary beijing-1, then beijing beijing-2 (1 at a time), then aws us-west-1 waits for
    manual approval after beijing beijing-2``."""
    parts: list[str] = []
    previous = ""
    for stage in plan.stages:
        if not stage.clusters:
            continue
        who = f"{stage.name} {', '.join(stage.clusters)}"
        pace = (
            f" ({stage.max_concurrent} at a time)"
            if stage.max_concurrent < len(stage.clusters)
            else ""
        )
        if stage.approval:
            after = f" after {previous}" if previous else ""
            parts.append(f"{who}{pace} waits for manual approval{after}")
        else:
            parts.append(f"{who}{pace}")
        previous = who
    return ", then ".join(parts) if parts else "no cluster to roll out to"
