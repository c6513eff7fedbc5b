"""Pure decisions about status: a pass outcome as a status row, the one-line messages of an
invalid revision."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reconciler.engine import TargetOutcome
from reconciler.errors import ConfigError, RenderError
from reconciler.store.rows import State, StatusRow


def short(sha: str | None) -> str:
    return sha[:12] if sha else "none"


def first(items: Sequence[str], noun: str) -> str:
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}: {items[0]}{more}"


def _state_of(outcome: TargetOutcome) -> tuple[State, str]:
    if outcome.unreachable:
        return State.UNREACHABLE, str(outcome.error)
    if outcome.error is not None:
        state = State.INVALID_CONFIG if isinstance(outcome.error, RenderError) else State.FAILED
        return state, str(outcome.error)
    result, plan = outcome.result, outcome.plan
    if result is not None and result.failed:
        return State.FAILED, first([f"{ref}: {why}" for ref, why in result.failed], "object")
    corrected = set(result.corrected) if result is not None else set()
    drifted = [c for c in plan.changes if c.drift is not None] if plan is not None else []
    left = [c for c in drifted if c.ref not in corrected]
    if left:
        described = [
            f"{c.ref} {c.drift}" + (f" by {', '.join(c.managers)}" if c.managers else "")
            for c in left
        ]
        return State.DRIFTED, first(described, "drifted object")
    if result is not None and result.skipped:
        return State.OUT_OF_SYNC, first([f"{ref}: {why}" for ref, why in result.skipped], "object")
    if result is None and plan is not None and plan.pending:
        return State.OUT_OF_SYNC, first([str(c.ref) for c in plan.pending], "pending change")
    if result is None:
        return State.SYNCED, ""
    counts = result.counts()
    done = [
        f"{verb} {counts[verb]}" for verb in ("created", "configured", "pruned") if counts[verb]
    ]
    if result.corrected:
        done.append(f"corrected drift on {len(result.corrected)}")
    return State.SYNCED, ", ".join(done)


def target_status(
    outcome: TargetOutcome,
    *,
    revision: str | None,
    problem: str | None,
    now: datetime,
    held: bool = False,
    warnings: Sequence[str] = (),
) -> StatusRow:
    """The status row of one app on one cluster after a pass.

    ``problem`` says why the newest config is not applied to this target (invalid revision or
    failed render; with ``held``, the prune guard holds the newest revision): the state is then
    InvalidConfig (Held) whatever the cluster says, and the message keeps what else is wrong.
    ``last_synced_at`` moves only when the target is in sync. Render ``warnings`` (a patch
    that matched nothing) follow the message.
    """
    state, message = _state_of(outcome)
    if warnings:
        message = "; ".join(m for m in (message, first(warnings, "warning")) if m)
    synced_at = now if state is State.SYNCED else None
    if problem is not None:
        if state not in (State.SYNCED, State.INVALID_CONFIG):
            problem = f"{problem} (meanwhile {state}: {message})"
        state, message = (State.HELD if held else State.INVALID_CONFIG), problem
    return StatusRow(
        app=outcome.app,
        cluster=outcome.cluster,
        state=state,
        message=message,
        revision=revision,
        updated_at=now,
        last_synced_at=synced_at,
    )


def invalid_revision_message(sha: str, err: ConfigError, applied: str | None) -> str:
    """One line for status: which revision is skipped, its first located problem, what runs."""
    problems = [str(p) for p in err.problems] or [str(err)]
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    stays = f"; {short(applied)} stays applied" if applied else "; nothing applied yet"
    return f"revision {short(sha)} invalid: {problems[0]}{more}{stays}"
