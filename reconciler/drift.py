"""Drift findings from a plan: what differs from Git, who changed it, when (pure).

In a finding, ``desired`` is what Git says and ``live`` what the cluster holds, so a report reads
``spec.replicas: 5 → 7 (kubectl-edit, 12:03:41Z)``: Git wanted 5, kubectl-edit made it 7.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.sync.model import Change, Drift, TargetPlan


@dataclass(frozen=True)
class FieldFinding:
    path: str
    desired: object
    live: object
    manager: str | None
    time: str | None


@dataclass(frozen=True)
class Finding:
    app: str
    cluster: str
    object: str
    kind: Drift
    fields: tuple[FieldFinding, ...]
    managers: tuple[str, ...]
    message: str

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.fields)


def findings(plan: TargetPlan) -> list[Finding]:
    """Every drifted object of a plan, in apply order."""
    return [_finding(plan, c) for c in plan.changes if c.drift is not None]


def _finding(plan: TargetPlan, change: Change) -> Finding:
    assert change.drift is not None
    fields = tuple(
        FieldFinding(f.path, f.after, f.before, f.manager, f.time) for f in change.fields
    )
    return Finding(
        app=plan.app,
        cluster=plan.cluster,
        object=str(change.ref),
        kind=change.drift,
        fields=fields,
        managers=tuple(change.managers),
        message=change.message,
    )
