"""Drift findings from a plan: what differs from Git, who changed it, when (pure).

A finding's fields are the plan's ``FieldChange`` values as they are (Git's value, the live value,
who set the live one, when): what the store records, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.fields import Drift, FieldChange
from reconciler.sync.model import Change, TargetPlan


@dataclass(frozen=True)
class Finding:
    app: str
    cluster: str
    object: str
    kind: Drift
    fields: tuple[FieldChange, ...]
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
    return Finding(
        app=plan.app,
        cluster=plan.cluster,
        object=str(change.ref),
        kind=change.drift,
        fields=tuple(change.drift_fields),  # Git's own pending changes are not drift
        managers=tuple(change.managers),
        message=change.message,
    )
