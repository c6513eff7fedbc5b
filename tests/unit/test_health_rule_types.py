"""A health condition that cannot give a bool is found at load time, not as Unknown at runtime."""

from __future__ import annotations

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler.config.load import load_repo
from reconciler.errors import ConfigError
from reconciler.health import RuleError, compile_rule


@pytest.mark.parametrize(
    ("healthy", "expected"),
    [
        ("size(object.spec.rules)", "healthy: must give a bool (true or false), got int"),
        ("'yes'", "healthy: must give a bool (true or false), got string"),
        ("object.status.message", None),  # a bool field for all it knows: judged live
        (
            "object.spec.x == 1 && 1 + 'a' == 2",
            "healthy: No such overload: the operation is not defined for the given operand types",
        ),
    ],
)
def test_a_condition_that_cannot_give_a_bool_is_a_rule_error(
    healthy: str, expected: str | None
) -> None:
    if expected is None:
        compile_rule("Widget", healthy=healthy)
        return
    with pytest.raises(RuleError) as err:
        compile_rule("Widget", healthy=healthy)
    assert str(err.value) == expected


@pytest.mark.parametrize(
    "healthy",
    [
        "has(object.spec.rules) && size(object.spec.rules) > 0",
        "object.spec.paused",
        "object.status.phase == 'Ready'",
        "object.status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
        "object.metadata.generation == object.status.observedGeneration",
        "object.status.readyReplicas >= object.spec.replicas",
        "!has(object.status.phase) || object.status.phase != 'Failed'",
    ],
)
def test_conditions_that_give_a_bool_still_compile(healthy: str) -> None:
    compile_rule("Widget", healthy=healthy, suspended=healthy, degraded=healthy)


def test_a_message_may_give_a_string() -> None:
    compile_rule("Widget", healthy="true", message="string(size(object.spec.rules)) + ' rules'")
    compile_rule("Widget", healthy="true", message="'fixed text'")


def test_a_non_bool_condition_is_located_at_app_yaml(make_repo: RepoFactory) -> None:
    spec = (
        "source: {manifests: m/}\nhealth:\n- kind: Ingress\n"
        '  healthy: "size(object.spec.rules)"\n  degraded: "\'yes\'"\n'
    )
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    root = make_repo(
        {"clusters/a.yaml": cluster("a"), "apps/x/app.yaml": app("x", spec), "apps/x/m/c.yaml": cm}
    )
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    assert {str(p) for p in err.value.problems} == {
        "apps/x/app.yaml:9: spec.health[0].healthy: CEL: must give a bool (true or false), got int",
        "apps/x/app.yaml:10: spec.health[0].degraded: CEL: must give a bool (true or false), got "
        "string",
    }
