"""Reading ``status``: conditions, observed generation, and the rule for any kind with
conditions (kstatus's conventions: ``Stalled``, ``Reconciling``, ``Ready``, ``Available``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.health.model import Assessment, Health

Obj = Mapping[str, Any]


def status(obj: Obj) -> Mapping[str, Any]:
    value = obj.get("status")
    return value if isinstance(value, Mapping) else {}


def spec(obj: Obj) -> Mapping[str, Any]:
    value = obj.get("spec")
    return value if isinstance(value, Mapping) else {}


def number(value: Any, default: int = 0) -> int:
    """An integer field as the API server returns it; absent (omitted when zero) is ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


def condition(obj: Obj, kind: str) -> Mapping[str, Any] | None:
    """The condition of this ``type`` in ``status.conditions``, if any."""
    for cond in status(obj).get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


def is_true(obj: Obj, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "True"


def is_false(obj: Obj, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status") == "False"


def explain(cond: Mapping[str, Any]) -> str:
    """``Reason: message`` of a condition, on one line."""
    reason = str(cond.get("reason") or "").strip()
    message = " ".join(str(cond.get("message") or "").split())
    if reason and message:
        return f"{reason}: {message}"
    return reason or message or f"{cond.get('type')}={cond.get('status')}"


def generation_pending(obj: Obj) -> Assessment | None:
    """Progressing while the controller has not seen the latest spec.

    Only for objects whose controller reports ``status.observedGeneration`` (or the caller says
    it always does): a status from an older generation says nothing about the current spec.
    """
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status(obj).get("observedGeneration")
    if generation is None or observed is None:
        return None
    if number(observed) < number(generation):
        return Assessment(
            Health.PROGRESSING,
            f"waiting for the controller to observe generation {generation} (saw {observed})",
        )
    return None


def stale(obj: Obj, cond: Mapping[str, Any]) -> bool:
    """A condition written for an older generation (its own ``observedGeneration``, when it
    has one, is below ``metadata.generation``): it says nothing about the current spec."""
    observed = cond.get("observedGeneration")
    generation = (obj.get("metadata") or {}).get("generation")
    if observed is None or generation is None:
        return False
    return number(observed) < number(generation)


def from_conditions(obj: Obj) -> Assessment:
    """Any object: generation, then Stalled / Reconciling / Ready / Available; else it exists.

    A condition whose own ``observedGeneration`` is older than the object's generation is not
    believed: the object is Progressing until its controller reports on the current spec.
    """
    pending = generation_pending(obj)
    if pending is not None:
        return pending
    generation = (obj.get("metadata") or {}).get("generation")
    stalled = condition(obj, "Stalled")
    if stalled is not None and stalled.get("status") == "True" and not stale(obj, stalled):
        return Assessment(Health.DEGRADED, f"Stalled: {explain(stalled)}")
    reconciling = condition(obj, "Reconciling")
    if reconciling is not None and reconciling.get("status") == "True":
        return Assessment(Health.PROGRESSING, f"Reconciling: {explain(reconciling)}")
    for kind in ("Ready", "Available"):
        cond = condition(obj, kind)
        if cond is None:
            continue
        if stale(obj, cond):
            return _unobserved(generation, cond)
        if cond.get("status") == "True":
            return Assessment(Health.HEALTHY, kind)
        return Assessment(Health.PROGRESSING, f"{kind}={cond.get('status')}: {explain(cond)}")
    if stalled is not None and stalled.get("status") == "True":  # stalled on an older spec
        return _unobserved(generation, stalled)
    return Assessment(Health.HEALTHY, "")


def _unobserved(generation: Any, cond: Mapping[str, Any]) -> Assessment:
    return Assessment(
        Health.PROGRESSING,
        f"waiting for the controller to observe generation {generation}"
        f" ({cond.get('type')} saw {cond.get('observedGeneration')})",
    )
