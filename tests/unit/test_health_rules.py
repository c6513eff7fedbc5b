"""Users' health rules: CEL expressions over the live object, per kind."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.health import Health, RuleError, compile_rule, object_health, target_health
from reconciler.objects import ObjectRef

WIDGET = ObjectRef("example.com", "Widget", "demo", "blue")


def _widget(phase: str | None = None, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "blue", "namespace": "demo", "generation": 1},
        "spec": {"size": 3},
    }
    if phase is not None:
        obj["status"] = {"phase": phase, **status}
    return obj


RULE = compile_rule(
    "Widget",
    "example.com",
    healthy="object.status.phase == 'Ready'",
    degraded="object.status.phase == 'Failed'",
    suspended="has(object.spec.paused) && object.spec.paused",
    message="object.status.message",
)


@pytest.mark.parametrize(
    ("obj", "health", "reason"),
    [
        (_widget("Ready", message="all 3 parts up"), Health.HEALTHY, "all 3 parts up"),
        (_widget("Failed", message="part 2 broke"), Health.DEGRADED, "part 2 broke"),
        (
            _widget("Building"),
            Health.PROGRESSING,
            "health rule: object.status.phase == 'Ready' is false",
        ),
        # No status yet: reading a missing field counts as false, not as an error.
        (_widget(), Health.PROGRESSING, "health rule: object.status.phase == 'Ready' is false"),
        (
            {**_widget("Ready"), "spec": {"paused": True}},
            Health.SUSPENDED,
            "health rule: has(object.spec.paused) && object.spec.paused is true",
        ),
    ],
)
def test_a_rule_decides_its_kind(obj: dict[str, Any], health: Health, reason: str) -> None:
    judged = object_health(WIDGET, obj, (RULE,))
    assert (judged.health, judged.reason) == (health, reason)


def test_a_rule_wins_over_the_built_in_rule_and_only_for_its_kind() -> None:
    always = compile_rule("Deployment", "apps", healthy="true", message='"by the team\'s rule"')
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    ref = ObjectRef.of(deploy)
    assert object_health(ref, deploy, (always,)).reason == "by the team's rule"
    assert object_health(ref, deploy).health is Health.PROGRESSING  # no status yet
    other_group = ObjectRef("other.io", "Widget", "demo", "blue")
    assert object_health(other_group, _widget("Failed"), (RULE,)).health is Health.HEALTHY


def test_a_rule_naming_its_group_wins_over_one_for_any_group() -> None:
    anywhere = compile_rule("Widget", healthy="false")
    assert object_health(WIDGET, _widget("Ready"), (anywhere, RULE)).health is Health.HEALTHY
    other = ObjectRef("other.io", "Widget", "demo", "blue")
    assert object_health(other, _widget("Ready"), (anywhere, RULE)).health is Health.PROGRESSING


def test_a_rule_that_fails_at_run_time_makes_the_object_unknown() -> None:
    rule = compile_rule("Widget", healthy="object.spec.size > 'three'")
    judged = object_health(WIDGET, _widget("Ready"), (rule,))
    assert judged.health is Health.UNKNOWN
    assert judged.reason.startswith("health rule healthy failed: No such overload")
    not_bool = compile_rule("Widget", healthy="object.spec.size")
    assert object_health(WIDGET, _widget("Ready"), (not_bool,)).reason == (
        "health rule healthy gave int 3, not a bool"
    )


def test_the_target_shows_the_rules_verdict() -> None:
    health = target_health({WIDGET: _widget("Failed", message="part 2 broke")}, (RULE,))
    assert str(health) == "Degraded: Widget.example.com/demo/blue part 2 broke"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"healthy": "object.status.phase =="}, "healthy: 1:23: Syntax error: mismatched input"),
        ({"degraded": "obj.status.failed"}, "degraded: Undefined variable or function: 'obj'"),
        ({"healthy": "  "}, "healthy: must be a non-empty CEL expression"),
        (
            {"message": "object.status.message"},
            "needs at least one of healthy, degraded, suspended",
        ),
    ],
)
def test_a_rule_that_does_not_compile_is_an_error(fields: dict[str, str], error: str) -> None:
    with pytest.raises(RuleError) as raised:
        compile_rule("Widget", "example.com", **fields)
    assert str(raised.value).startswith(error)
    assert "\n" not in str(raised.value)


def test_a_spec_the_controller_has_not_observed_is_progressing_whatever_the_rule_says() -> None:
    widget = _widget("Ready", observedGeneration=1)
    widget["metadata"]["generation"] = 2
    judged = object_health(WIDGET, widget, (RULE,))
    assert judged.health is Health.PROGRESSING
    assert judged.reason == "waiting for the controller to observe generation 2 (saw 1)"
    widget["status"]["observedGeneration"] = 2
    assert object_health(WIDGET, widget, (RULE,)).health is Health.HEALTHY


def test_an_object_being_deleted_is_progressing_whatever_the_rule_says() -> None:
    widget = _widget("Ready")
    widget["metadata"]["deletionTimestamp"] = "2026-12-02T22:00:00Z"
    judged = object_health(WIDGET, widget, (RULE,))
    assert (judged.health, judged.reason) == (Health.PROGRESSING, "being deleted")


@pytest.mark.parametrize(
    ("degraded", "health"),
    [
        ("object.status.conditions.exists(c, c.reason == 'Failed')", Health.DEGRADED),
        ("!object.status.conditions.all(c, c.reason != 'Failed')", Health.DEGRADED),
        ("object.status.conditions.exists(c, c.reason == 'Other')", Health.HEALTHY),
        # A field no element has still reads as false.
        ("object.status.conditions.exists(c, c.nothere == 'x')", Health.HEALTHY),
    ],
)
def test_in_a_list_an_element_without_the_field_does_not_hide_one_that_has_it(
    degraded: str, health: Health
) -> None:
    rule = compile_rule("Widget", "example.com", degraded=degraded)
    widget = _widget(
        "Running",
        conditions=[
            {"type": "Synced", "status": "True"},  # no reason: omitted when empty
            {"type": "Ready", "status": "False", "reason": "Failed", "message": "boom"},
        ],
    )
    assert object_health(WIDGET, widget, (rule,)).health is health


def test_a_rule_can_make_a_cron_job_whose_last_run_failed_degraded() -> None:
    """The built-in rule keeps it Healthy (no rollout of its own); a team that wants the failure
    to count (in ``status --exit-code``, in gates) says so for its apps."""
    failed_run = (
        "has(object.status.lastScheduleTime) && !has(object.status.active)"
        " && (!has(object.status.lastSuccessfulTime)"
        " || timestamp(object.status.lastSuccessfulTime)"
        " < timestamp(object.status.lastScheduleTime))"
    )
    rule = compile_rule("CronJob", "batch", degraded=failed_run, suspended="object.spec.suspend")
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "backup", "namespace": "demo"},
        "spec": {"schedule": "0 * * * *", "suspend": False},
        "status": {
            "lastScheduleTime": "2026-12-02T05:00:00Z",
            "lastSuccessfulTime": "2026-12-02T04:00:07Z",
        },
    }
    ref = ObjectRef.of(cron)
    assert object_health(ref, cron).health is Health.HEALTHY
    assert object_health(ref, cron, (rule,)).health is Health.DEGRADED
    cron["status"]["lastSuccessfulTime"] = "2026-12-02T05:00:07Z"
    assert object_health(ref, cron, (rule,)).health is Health.HEALTHY
