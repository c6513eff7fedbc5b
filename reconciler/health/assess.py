"""Judge live objects: one object, and a target (app × cluster) as its worst object."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.health.conditions import from_conditions, generation_pending
from reconciler.health.kinds import builtin_rule
from reconciler.health.model import Assessment, Health, ObjectHealth, TargetHealth, worst
from reconciler.health.rules import HealthRule, evaluate, find_rule
from reconciler.objects import ObjectRef

NO_RULES: tuple[HealthRule, ...] = ()


def assess(
    ref: ObjectRef, live: Mapping[str, Any] | None, rules: tuple[HealthRule, ...]
) -> Assessment:
    """One object: Missing when absent; Progressing while being deleted or while its
    controller has not observed its spec; then a user's rule for its kind, the built-in rule,
    its conditions."""
    if live is None:
        return Assessment(Health.MISSING, "not found on the cluster")
    if (live.get("metadata") or {}).get("deletionTimestamp"):
        return Assessment(Health.PROGRESSING, "being deleted")
    rule = find_rule(rules, ref.group, ref.kind)
    if rule is not None:
        return generation_pending(live) or evaluate(rule, live)
    builtin = builtin_rule(ref.group, ref.kind)
    return builtin(live) if builtin is not None else from_conditions(live)


def object_health(
    ref: ObjectRef, live: Mapping[str, Any] | None, rules: tuple[HealthRule, ...] = NO_RULES
) -> ObjectHealth:
    return ObjectHealth.of(ref, assess(ref, live, rules))


def target_health(
    objects: Mapping[ObjectRef, Mapping[str, Any] | None] | Iterable[ObjectHealth],
    rules: tuple[HealthRule, ...] = NO_RULES,
) -> TargetHealth:
    """A target's health: its worst object's, with that object and reason, e.g.
    ``Degraded: Deployment.apps/demo/hello-world 1/3 available (ProgressDeadlineExceeded)``.

    ``objects`` maps each desired object to its live state (``None``: not on the cluster), or
    is already-judged objects. Pods ready/desired are summed over the workloads.
    """
    if isinstance(objects, Mapping):
        judged = worst(object_health(ref, live, rules) for ref, live in objects.items())
    else:
        judged = worst(objects)
    if not judged:
        return TargetHealth(Health.HEALTHY, "no objects")
    counted = [o for o in judged if o.desired is not None]
    ready = sum(o.ready or 0 for o in counted) if counted else None
    desired = sum(o.desired or 0 for o in counted) if counted else None
    first = judged[0]
    if first.health is Health.HEALTHY:
        reason = f"{len(judged)} object{'s' if len(judged) != 1 else ''} healthy"
    else:
        reason = first.describe()
        same = sum(1 for o in judged if o.health is first.health) - 1
        if same:
            reason += f" (and {same} more {first.health})"
    return TargetHealth(first.health, reason, ready, desired, judged)
