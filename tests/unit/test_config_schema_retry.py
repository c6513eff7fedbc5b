"""A schema error is reported once: the re-check after dropping the bad field does not add a
second, misleading error from a check of the mapping above it ("set exactly one of ...")."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler.config.load import load_repo
from reconciler.errors import ConfigError

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            "source: {manifests: m/}\nrollout:\n  canary: {count: 0}\n",
            "apps/x/app.yaml:8: spec.rollout.canary.count: must be >= 1",
            id="canary count 0",
        ),
        pytest.param(
            "source: {manifests: m/}\nhealth:\n- kind: Widget\n  healthy: true\n",
            "apps/x/app.yaml:9: spec.health[0].healthy: expected a string (quote it in YAML), "
            "got a boolean",
            id="health rule not a string",
        ),
        pytest.param(
            "source:\n  kustomize: overlays/prod\n",
            "apps/x/app.yaml:7: spec.source.kustomize: expected a mapping, got a string",
            id="kustomize a string",
        ),
        pytest.param(
            "source: {manifests: m/}\noverrides:\n- name: o\n  patches:\n  - json: {op: replace}\n",
            "apps/x/app.yaml:10: spec.overrides[0].patches[0].json: expected a list, got a mapping",
            id="json patch not a list",
        ),
    ],
)
def test_a_bad_field_is_one_error(make_repo: RepoFactory, spec: str, expected: str) -> None:
    root = make_repo(
        {"clusters/a.yaml": cluster("a"), "apps/x/app.yaml": app("x", spec), "apps/x/m/c.yaml": CM}
    )
    assert _problems(root) == [expected]
