"""Workload health, computed purely from live objects (no network, no clock).

``target_health(objects, rules)`` judges an app on a cluster: every object by its kind's rule
(a user's CEL rule from ``app.yaml`` first, then the built-in rule, then its conditions), and the
target as its worst object. Health is separate from sync state: Synced-but-Degraded is a thing.
"""

from reconciler.health.assess import NO_RULES, assess, object_health, target_health
from reconciler.health.model import Assessment, Health, ObjectHealth, TargetHealth
from reconciler.health.rules import HealthRule, RuleError, compile_rule

__all__ = [
    "NO_RULES",
    "Assessment",
    "Health",
    "HealthRule",
    "ObjectHealth",
    "RuleError",
    "TargetHealth",
    "assess",
    "compile_rule",
    "object_health",
    "target_health",
]
