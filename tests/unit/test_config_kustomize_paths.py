"""A local path a kustomization names that does not exist is a load error at its line, once
(not kustomize's raw text once per cluster); an inline patch is not a path."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler.config.load import load_repo
from reconciler.errors import ConfigError

FILES = {
    "clusters/a.yaml": cluster("a"),
    "clusters/b.yaml": cluster("b"),
    "apps/x/app.yaml": app("x", "source: {kustomize: {path: overlay}}\nplacement: {selector: {}}"),
    "apps/x/base/kustomization.yaml": "resources: [cm.yaml]\n",
    "apps/x/base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
}


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize(
    ("kustomization", "expected"),
    [
        pytest.param(
            "namePrefix: p-\nresources:\n- ../base\n- ../../bse\n",
            "apps/x/overlay/kustomization.yaml:4: resources[1]: '../../bse' not found",
            id="missing base",
        ),
        pytest.param(
            "resources: [../base]\npatches:\n- path: fix.yaml\n",
            "apps/x/overlay/kustomization.yaml:3: patches[0].path: 'fix.yaml' not found",
            id="missing patch file",
        ),
        pytest.param(
            "resources: [../base]\nconfigMapGenerator:\n- name: g\n  files: [k=conf.txt]\n",
            "apps/x/overlay/kustomization.yaml:4: configMapGenerator[0].files[0]: 'conf.txt' not "
            "found",
            id="missing generator file",
        ),
    ],
)
def test_a_missing_local_path_is_one_located_error(
    make_repo: RepoFactory, kustomization: str, expected: str
) -> None:
    root = make_repo({**FILES, "apps/x/overlay/kustomization.yaml": kustomization})
    assert _problems(root) == [expected]


def test_an_inline_patch_is_not_taken_for_a_path(make_repo: RepoFactory) -> None:
    kustomization = (
        "resources: [../base]\npatchesStrategicMerge:\n"
        "- '{apiVersion: v1, kind: ConfigMap, metadata: {name: cm}, data: {a: b}}'\n"
    )
    root = make_repo({**FILES, "apps/x/overlay/kustomization.yaml": kustomization})
    assert set(load_repo(root).apps) == {"x"}
