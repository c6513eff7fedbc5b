"""Pure: the detail panel of one app on one cluster (its status, cluster labels, revisions,
objects with their health, and open drift)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.objects import ObjectRef
from reconciler.presentation import format_time
from reconciler.store.rows import TargetRevision
from reconciler.web.model import Fleet, health_of, phase_of, ready_of

__all__ = ["target_detail"]


def _object_health(target: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``Kind/namespace/name`` -> health, reason, ready/desired of each object the target's
    health assessed (empty when the status carries no health)."""
    health = target.get("health")
    if not isinstance(health, Mapping):
        return {}
    found = {}
    for item in health.get("objects") or ():
        ref = ObjectRef(
            str(item.get("group") or ""),
            str(item.get("kind") or ""),
            str(item.get("namespace") or ""),
            str(item.get("name") or ""),
        )
        name = str(ref)  # as the objects list names it
        ready = f"{item.get('ready') or 0}/{item['desired']}" if item.get("desired") else ""
        found[name] = {
            "health": item.get("health"),
            "reason": item.get("reason") or "",
            "ready": ready,
        }
    return found


def target_detail(
    target: Mapping[str, Any],
    fleet: Fleet | None,
    drift: Sequence[Mapping[str, Any]],
    revisions: TargetRevision | None,
    *,
    drift_total: int | None = None,
) -> dict[str, Any]:
    """One app on one cluster: its status (every field of ``status -o json``), the cluster's
    labels, the revision it should run and the one it last applied, its objects (those of the
    last apply, else those its current revision renders) and its open drift records (``drift``,
    newest first: closed ones are left out) with how many are open in all (``drift_total``, at
    least the open records given)."""
    app, cluster = str(target["app"]), str(target["cluster"])
    info = next((c for c in (fleet.clusters if fleet else ()) if c.name == cluster), None)
    health, health_reason = health_of(target)
    phase, phase_reason = phase_of(target)
    objects: Sequence[str] | None = revisions.objects if revisions else None
    objects_from = "last apply"
    if not objects and fleet is not None:
        objects, objects_from = fleet.objects(app, cluster), "Git"
    object_health = _object_health(target)
    open_records = [
        d
        for d in drift
        if d["app"] == app and d["cluster"] == cluster and d.get("corrected_at") is None
    ]
    if not objects and object_health:
        objects, objects_from = list(object_health), "health"
    return {
        "target": dict(target),
        "health": health,
        "health_reason": health_reason,
        "phase": phase,
        "phase_reason": phase_reason,
        "labels": dict(info.labels) if info else {},
        "desired": revisions.desired if revisions else None,
        "applied": revisions.applied if revisions else None,
        "applied_at": format_time(revisions.applied_at) or None if revisions else None,
        "ready": ready_of(target),
        "objects": list(objects) if objects is not None else None,
        "objects_from": objects_from,
        "object_health": object_health,
        "drift": open_records,
        "drift_total": max(drift_total or 0, len(open_records)),
    }
