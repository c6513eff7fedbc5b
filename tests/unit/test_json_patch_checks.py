"""JSON-patch ops of overrides: errors at the op's own line; RFC 6901 pointers; fields per op."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler.config.load import load_repo
from reconciler.errors import ConfigError, RenderError
from reconciler.render import render_target

A = cluster("a")
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers: [{name: web, image: nginx, args: [a, b]}]
"""


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    return [str(p) for p in err.value.problems]


def _root(make_repo: RepoFactory, spec: str) -> Path:
    return make_repo(
        {"clusters/a.yaml": A, "apps/x/app.yaml": app("x", spec), "apps/x/m/d.yaml": DEPLOYMENT}
    )


def test_a_json_op_that_cannot_apply_is_located_at_the_op(make_repo: RepoFactory) -> None:
    spec = """\
    source: {manifests: m/}
    overrides:
    - name: o
      patches:
      - target: {kind: Deployment}
        json:
        - {op: replace, path: /spec/template/spec/containers/0/args/0, value: x}
        - {op: replace, path: /spec/template/spec/containers/5/args/1, value: y}
    """
    repo = load_repo(_root(make_repo, spec))
    with pytest.raises(RenderError) as err:
        render_target(repo, repo.apps["x"], repo.clusters["a"])
    # line 8 is the override, 10 the patch, 13 the second op
    assert err.value.message.startswith("apps/x/app.yaml:13: override o: patches[0].json[1] ")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            "source: {manifests: m/}\noverrides:\n- name: o\n  patches:\n  - json:\n"
            "    - {op: replace, path: /spec/args/~2, value: x}\n",
            "apps/x/app.yaml:11: spec.overrides[0].patches[0].json[0].path: not a JSON pointer: "
            "'/spec/args/~2' (~ must be written ~0, and / inside a key ~1)",
            id="bad escape in a patch path",
        ),
        pytest.param(
            "source: {manifests: m/}\nsync:\n  ignoreDifferences:\n  - jsonPointers: "
            "['/spec/~x']\n",
            "apps/x/app.yaml:9: spec.sync.ignoreDifferences[0].jsonPointers[0]: not a JSON "
            "pointer: '/spec/~x' (~ must be written ~0, and / inside a key ~1)",
            id="bad escape in ignoreDifferences",
        ),
        pytest.param(
            "source: {manifests: m/}\noverrides:\n- name: o\n  patches:\n  - json:\n"
            "    - {op: remove, path: /spec/a, value: x}\n",
            "apps/x/app.yaml:11: spec.overrides[0].patches[0].json[0].value: op remove takes no "
            "value",
            id="remove with a value",
        ),
        pytest.param(
            "source: {manifests: m/}\noverrides:\n- name: o\n  patches:\n  - json:\n"
            "    - {op: replace, path: /spec/a, value: x, from: /spec/b}\n",
            "apps/x/app.yaml:11: spec.overrides[0].patches[0].json[0].from: op replace takes no "
            "'from'",
            id="replace with from",
        ),
        pytest.param(
            "source: {manifests: m/}\noverrides:\n- name: o\n  patches:\n  - json:\n"
            "    - {op: move, path: /spec/a, from: /spec/b, value: 1}\n",
            "apps/x/app.yaml:11: spec.overrides[0].patches[0].json[0].value: op move takes no "
            "value",
            id="move with a value",
        ),
    ],
)
def test_json_patch_mistakes_are_load_errors(
    make_repo: RepoFactory, spec: str, expected: str
) -> None:
    assert expected in _problems(_root(make_repo, spec))


def test_valid_escapes_and_ops_load(make_repo: RepoFactory) -> None:
    spec = (
        "source: {manifests: m/}\noverrides:\n- name: o\n  patches:\n  - json:\n"
        "    - {op: add, path: /metadata/annotations/a~1b~0c, value: x}\n"
        "    - {op: remove, path: /spec/x}\n"
        "    - {op: copy, path: /spec/y, from: /spec/z}\n"
        "sync:\n  ignoreDifferences:\n"
        "  - jsonPointers: ['/metadata/labels/app.kubernetes.io~1name']\n"
    )
    load_repo(_root(make_repo, spec))
