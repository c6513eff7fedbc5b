"""``spec.health`` in app.yaml: users' CEL rules per kind, compiled and located at load time."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler.config.load import load_repo
from reconciler.errors import ConfigError
from reconciler.health import Health, object_health
from reconciler.objects import ObjectRef

RULES = """
source: {manifests: m/}
health:
- kind: Widget
  group: example.com
  healthy: "object.status.phase == 'Ready'"
  degraded: "object.status.phase == 'Failed'"
  message: "object.status.message"
"""


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    return [str(p) for p in err.value.problems]


def test_an_apps_health_rules_are_loaded_compiled(make_repo: RepoFactory) -> None:
    root = make_repo({"clusters/a.yaml": cluster("a"), "apps/x/app.yaml": app("x", RULES)})
    (root / "apps/x/m").mkdir()
    (root / "apps/x/m/cm.yaml").write_text(CONFIGMAP)
    rules = load_repo(root).apps["x"].health
    widget = {"kind": "Widget", "status": {"phase": "Failed", "message": "part 2 broke"}}
    ref = ObjectRef("example.com", "Widget", "demo", "blue")
    judged = object_health(ref, widget, rules)
    assert (judged.health, judged.reason) == (Health.DEGRADED, "part 2 broke")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            'health:\n- kind: Widget\n  healthy: "object.status.phase =="\n',
            "apps/x/app.yaml:9: spec.health[0].healthy: CEL: 1:23: Syntax error: mismatched input",
            id="syntax error",
        ),
        pytest.param(
            "health:\n- kind: Widget\n  healthy: 'true'\n  degraded: obj.status.failed\n",
            "apps/x/app.yaml:10: spec.health[0].degraded: CEL: Undefined variable or function: "
            "'obj'",
            id="unknown variable",
        ),
        pytest.param(
            "health:\n- kind: Widget\n  message: object.status.message\n",
            "apps/x/app.yaml:8: spec.health[0]: set at least one of healthy, degraded, suspended",
            id="nothing decides",
        ),
        pytest.param(
            "health:\n- group: example.com\n  healthy: 'true'\n",
            "apps/x/app.yaml:8: spec.health[0].kind: required",
            id="no kind",
        ),
    ],
)
def test_a_bad_health_rule_is_a_located_error(
    make_repo: RepoFactory, spec: str, expected: str
) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a"),
            "apps/x/app.yaml": app("x", "source: {manifests: m/}\n" + spec),
        }
    )
    (root / "apps/x/m").mkdir()
    (root / "apps/x/m/cm.yaml").write_text(CONFIGMAP)
    problems = _problems(root)
    assert len(problems) == 1
    assert problems[0].startswith(expected), problems
