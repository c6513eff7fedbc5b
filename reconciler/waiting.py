"""What ``reconciler wait`` decides: has every target of an app reached the goal, failed, or
is it still on its way? Pure: callers read the rows from the store and act on the verdict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.health import Health
from reconciler.store.rows import HealthRow, State, StatusRow

# A target in one of these states will not get anywhere without a change: waiting fails.
_FAILED_STATES = frozenset({State.FAILED, State.INVALID_CONFIG})
# Healthy, or deliberately not running (a suspended CronJob): a target is its worst object.
PASSING = frozenset({Health.HEALTHY, Health.SUSPENDED})


class Goal(StrEnum):
    SYNCED = "synced"  # live matches the revision (Git)
    HEALTHY = "healthy"  # ... and its workloads work


class Outcome(StrEnum):
    WAITING = "waiting"
    REACHED = "reached"
    FAILED = "failed"


@dataclass(frozen=True)
class TargetProgress:
    """One target as ``wait`` shows it."""

    cluster: str
    state: State | None  # None: the daemon has not recorded this target yet
    health: Health | None
    ready: str  # ``3/3``
    revision: str | None
    reason: str  # why it is not there yet (or why it failed); empty once there
    outcome: Outcome

    def line(self) -> str:
        state = self.state.value if self.state is not None else "(none yet)"
        health = self.health.value if self.health is not None else "-"
        revision = (self.revision or "-")[:12]
        text = f"{self.cluster}  {state}  {health}  {self.ready}  {revision}"
        return f"{text}  {self.reason}" if self.reason else text


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    targets: tuple[TargetProgress, ...]

    def failures(self) -> list[TargetProgress]:
        return [t for t in self.targets if t.outcome is Outcome.FAILED]

    def waiting(self) -> list[TargetProgress]:
        return [t for t in self.targets if t.outcome is Outcome.WAITING]


def _matches(revision: str | None, wanted: str | None) -> bool:
    return wanted is None or (revision is not None and revision.startswith(wanted))


def judge(
    status: Sequence[StatusRow],
    health: Sequence[HealthRow],
    goal: Goal,
    *,
    clusters: Iterable[str] | None = None,
    revision: str | None = None,
    degraded_on: Mapping[str, str | None] | None = None,
) -> Verdict:
    """Judge one app's targets (the rows of that app only).

    ``clusters``: the targets to wait for (from the repo's placement, or ``--cluster``); by
    default those the daemon recorded. ``revision``: a full or abbreviated commit each target
    must have applied; any when None. A target Failed or InvalidConfig fails the wait; so does
    one Degraded on the awaited revision when waiting for health, unless it turned Degraded on
    another revision (``degraded_on``: the revision each cluster's Degraded began on): that is
    a state the new revision may fix, waited on like Progressing.
    """
    by_cluster = {row.cluster: row for row in status}
    health_of = {row.cluster: row for row in health}
    began = {c: r for c, r in (degraded_on or {}).items() if c in health_of}
    names = sorted(set(clusters) if clusters is not None else set(by_cluster))
    targets = tuple(
        _judge_one(
            name,
            by_cluster.get(name),
            health_of.get(name),
            goal,
            revision,
            name in began and began[name] != health_of[name].revision,
        )
        for name in names
    )
    if any(t.outcome is Outcome.FAILED for t in targets):
        outcome = Outcome.FAILED
    elif targets and all(t.outcome is Outcome.REACHED for t in targets):
        outcome = Outcome.REACHED
    else:
        outcome = Outcome.WAITING
    return Verdict(outcome, targets)


def _judge_one(
    cluster: str,
    row: StatusRow | None,
    judged: HealthRow | None,
    goal: Goal,
    revision: str | None,
    inherited: bool,
) -> TargetProgress:
    if row is None:
        return TargetProgress(
            cluster, None, None, "-", None, "not recorded by the daemon yet", Outcome.WAITING
        )
    current = judged is not None and judged.revision == row.revision
    health = judged.health if judged is not None and current else None

    def progress(outcome: Outcome, reason: str) -> TargetProgress:
        return TargetProgress(
            cluster,
            row.state,
            health.health if health is not None else None,
            health.ready_text if health is not None else "-",
            row.revision,
            reason,
            outcome,
        )

    if row.state in _FAILED_STATES:
        return progress(Outcome.FAILED, f"{row.state.value}: {row.message}")
    if not _matches(row.revision, revision):
        return progress(
            Outcome.WAITING, f"at {(row.revision or 'no revision')[:12]}, not yet at {revision}"
        )
    if row.state is not State.SYNCED:
        return progress(Outcome.WAITING, f"{row.state.value}: {row.message}".rstrip(": "))
    if goal is Goal.SYNCED:
        return progress(Outcome.REACHED, "")
    if health is None:
        return progress(Outcome.WAITING, "health not judged yet")
    if health.health is Health.DEGRADED:
        if inherited:
            return progress(Outcome.WAITING, f"{health} (since before this revision)")
        return progress(Outcome.FAILED, str(health))
    if health.health not in PASSING:
        return progress(Outcome.WAITING, str(health))
    return progress(Outcome.REACHED, "")
