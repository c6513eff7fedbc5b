"""Built-in health rules, judged on objects recorded as the API server returns them
(tests/fixtures/health/*.yaml: each case names the object, the health and the reason)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.health import Health, object_health
from reconciler.objects import ObjectRef

FIXTURES = Path(__file__).parent.parent / "fixtures" / "health"


def _cases() -> list[Any]:
    cases = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()):
            obj = case["object"]
            cases.append(pytest.param(case, id=f"{obj['kind']}: {case['case']}"))
    return cases


@pytest.mark.parametrize("case", _cases())
def test_recorded_object_is_judged(case: dict[str, Any]) -> None:
    obj = case["object"]
    judged = object_health(ObjectRef.of(obj), obj)
    assert (judged.health, judged.reason) == (Health(case["health"]), case["reason"])
    if "ready" in case:
        assert [judged.ready, judged.desired] == case["ready"]
    else:
        assert judged.desired is None


def test_every_built_in_kind_has_recorded_cases() -> None:
    from reconciler.health.kinds import BUILTIN

    recorded = set()
    for path in FIXTURES.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text()):
            recorded.add(ObjectRef.of(case["object"]).kind)
    assert {kind for _, kind in BUILTIN} <= recorded


def test_every_state_a_kind_can_reach_is_recorded() -> None:
    seen: dict[str, set[str]] = {}
    for path in FIXTURES.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text()):
            seen.setdefault(case["object"]["kind"], set()).add(case["health"])
    assert seen["Deployment"] >= {"Healthy", "Progressing", "Degraded", "Suspended"}
    assert seen["Job"] >= {"Healthy", "Progressing", "Degraded", "Suspended"}
    assert seen["Pod"] >= {"Healthy", "Progressing", "Degraded"}


def test_an_absent_object_is_missing() -> None:
    ref = ObjectRef("apps", "Deployment", "demo", "hello-world")
    judged = object_health(ref, None)
    assert (judged.health, str(judged)) == (
        Health.MISSING,
        "Missing: Deployment.apps/demo/hello-world not found on the cluster",
    )
