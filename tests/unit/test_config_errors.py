"""Every load-time error names file:line and field path; all of a repo's errors come at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES, RepoFactory
from repo_snippets import app, cluster, group

from reconciler.config import load_repo
from reconciler.errors import ConfigError

# tests/fixtures/bad-repo holds one instance of each error; bad-repo.expected lists every
# problem it must report, one per line (file:line: field: message).
BAD_REPO_PROBLEMS = (FIXTURES / "bad-repo.expected").read_text().splitlines()


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    return [str(p) for p in err.value.problems]


@pytest.fixture(scope="module")
def bad_repo_problems() -> list[str]:
    return _problems(FIXTURES / "bad-repo")


@pytest.mark.parametrize("expected", BAD_REPO_PROBLEMS)
def test_bad_repo_reports_each_error_with_file_line_and_field(
    bad_repo_problems: list[str], expected: str
) -> None:
    assert expected in bad_repo_problems


def test_bad_repo_reports_all_its_errors_in_one_run_and_nothing_else(
    bad_repo_problems: list[str],
) -> None:
    assert sorted(bad_repo_problems) == sorted(BAD_REPO_PROBLEMS)


def test_a_typo_and_a_broken_manifest_are_both_reported() -> None:
    assert _problems(FIXTURES / "typo-and-broken-manifest") == [
        "apps/web/app.yaml:13: spec.overrides[0].replicsa: unknown field 'replicsa' (did you "
        "mean 'replicas'?)",
        "apps/web/manifests/configmap.yaml:7: invalid YAML: found unexpected end of stream "
        "(while scanning a quoted scalar at line 6)",
    ]


def test_config_error_prints_one_located_line_per_problem() -> None:
    with pytest.raises(ConfigError) as err:
        load_repo(FIXTURES / "typo-and-broken-manifest")
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("apps/web/app.yaml:13: ")


A = cluster("a", labels="{region: north}", vars="{domain: a.example.com}")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"apps/x/app.yaml": app("x", "source: {manifests: m/}\nnamespace: Bad_NS\n")},
            "apps/x/app.yaml:7: spec.namespace: invalid namespace 'Bad_NS'",
            id="invalid namespace",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x",
                    "source: {manifests: m/}\nplacement:\n  selector:\n    matchLabels: {region: "
                    "'not ok'}\n",
                )
            },
            "apps/x/app.yaml:9: spec.placement.selector.matchLabels.region: invalid label value "
            "'not ok'",
            id="invalid matchLabels value",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x",
                    "source: {manifests: m/}\noverrides:\n- name: o\n  images: [{name: nginx}]\n",
                )
            },
            "apps/x/app.yaml:9: spec.overrides[0].images[0]: set at least one of newName, "
            "newTag, digest",
            id="image override without a change",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x",
                    "source: {manifests: m/}\noverrides:\n- name: o\n  images: [{name: nginx, "
                    "newTag: '1', digest: 'sha256:ab'}]\n",
                )
            },
            "apps/x/app.yaml:9: spec.overrides[0].images[0]: set newTag or digest, not both",
            id="image override with tag and digest",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x", "source: {manifests: m/}\noverrides:\n- name: o\n  replicas: -1\n"
                )
            },
            "apps/x/app.yaml:9: spec.overrides[0].replicas: must be >= 0",
            id="negative replicas",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x",
                    "source: {manifests: m/}\noverrides:\n- name: o\n  patches:\n  - json: [{op: "
                    "move, path: /a}]\n",
                )
            },
            "apps/x/app.yaml:10: spec.overrides[0].patches[0].json[0]: op move needs 'from' (a "
            "JSON pointer)",
            id="json patch move without from",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x",
                    "source: {manifests: m/}\noverrides:\n- name: o\n  patches:\n  - json: [{op: "
                    "frob, path: /a}]\n",
                )
            },
            "apps/x/app.yaml:10: spec.overrides[0].patches[0].json[0].op: must be one of 'add', "
            "'remove', 'replace', 'move', 'copy' or 'test', got 'frob'",
            id="json patch unknown op",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x",
                    "source: {manifests: m/}\nsync:\n  ignoreDifferences:\n  - jsonPointers: "
                    "[spec/replicas]\n",
                )
            },
            "apps/x/app.yaml:9: spec.sync.ignoreDifferences[0].jsonPointers[0]: not a JSON "
            "pointer: 'spec/replicas' (must start with /)",
            id="ignoreDifferences pointer",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x",
                    "source: {manifests: m/}\noverrides:\n- name: o\n  values: {host: "
                    "'${cluster.vars.domian}'}\n",
                )
            },
            "apps/x/app.yaml:9: spec.overrides[0].values.host: unknown variable "
            "${cluster.vars.domian}: no cluster defines var 'domian' (did you mean 'domain'?)",
            id="template in an override",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x", "source:\n  helm: {chart: c/, valuesFiles: [v.yaml]}\n"
                ),
                "apps/x/c/Chart.yaml": "name: c\n",
                "apps/x/v.yaml": "a: 1\nhost: ${cluster.labels.regoin}\n",
            },
            "apps/x/v.yaml:2: host: unknown variable ${cluster.labels.regoin}: no cluster "
            "defines label 'regoin' (did you mean 'region'?)",
            id="template in a values file",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app(
                    "x", "source:\n  helm:\n    chart: c/\n    values: {host: '${cluster.nam}'}\n"
                ),
                "apps/x/c/Chart.yaml": "name: c\n",
            },
            "apps/x/app.yaml:9: spec.source.helm.values.host: unknown variable ${cluster.nam}; "
            "use ${cluster.name}, ${cluster.labels.<key>} or ${cluster.vars.<key>} (write $${ "
            "for a literal ${)",
            id="template in inline helm values",
        ),
        pytest.param(
            {"apps/x/app.yaml": app("x", "source: {manifests: ../../../outside}\n")},
            "apps/x/app.yaml:6: spec.source.manifests[0]: path '../../../outside' leaves the "
            "config repo",
            id="path escaping the repo",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app("x", "source: {manifests: m/}\n"),
                "apps/x/m/list.yaml": "- a\n- b\n",
            },
            "apps/x/m/list.yaml:1: expected a Kubernetes object, got a list",
            id="manifest that is not an object",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": app("x", "source: {manifests: m/}\n"),
                "apps/x/m/cm.yaml": "kind: ConfigMap\nmetadata: {name: c}\n",
            },
            "apps/x/m/cm.yaml:1: apiVersion is required (a string)",
            id="manifest without apiVersion",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": (
                    "apiVersion: reconciler.io/v1alpha1\nkind: App\nmetadata: {name: x}\nspec:\n  "
                    "source: {manifests: m/}\n  sync: {prune: maybe}\n"
                )
            },
            "apps/x/app.yaml:6: spec.sync.prune: expected a boolean, got a string",
            id="wrong type",
        ),
        pytest.param(
            {
                "apps/x/app.yaml": (
                    "apiVersion: reconciler.io/v1alpha1\nkind: App\nmetadata: {name: x}\nspec:\n  "
                    "placement: {clusters: [a]}\n"
                )
            },
            "apps/x/app.yaml:4: spec.source: required field is missing",
            id="missing required field",
        ),
        pytest.param(
            {"apps/x/notes.md": "no app here\n"},
            "apps/x: app directory has no app.yaml",
            id="app directory without app.yaml",
        ),
        pytest.param(
            {
                "groups/g.yaml": group("g", "{matchLabels: {region: north}}"),
                "groups/h.yaml": group("g", "{}"),
            },
            "groups/h.yaml:4: metadata.name: duplicate group 'g' (first in groups/g.yaml)",
            id="duplicate group",
        ),
        pytest.param(
            {"clusters/b.yaml": cluster("B_1")},
            "clusters/b.yaml:4: metadata.name: invalid name 'B_1': use lowercase letters, digits "
            "and '-' (at most 63)",
            id="invalid cluster name",
        ),
    ],
)
def test_each_error_is_located(
    make_repo: RepoFactory, files: dict[str, str], expected: str
) -> None:
    root = make_repo({"clusters/a.yaml": A, "apps/x/m/.keep": "", **files})
    problems = _problems(root)
    assert any(p.startswith(expected) for p in problems), problems


def test_references_to_a_broken_cluster_are_not_reported_twice(make_repo: RepoFactory) -> None:
    broken = "apiVersion: reconciler.io/v1alpha1\nkind: Cluster\nmetadata: {name: b, labels: 7}\n"
    root = make_repo(
        {
            "clusters/b.yaml": broken,
            "apps/x/app.yaml": app("x", "source: {manifests: []}\nplacement: {clusters: [b]}"),
        }
    )
    assert _problems(root) == [
        "clusters/b.yaml:3: metadata.labels: expected a mapping, got an integer"
    ]


def test_a_missing_repo_root_is_one_problem(tmp_path: Path) -> None:
    problems = _problems(tmp_path / "nope")
    assert problems == [f"{tmp_path / 'nope'}: config repo is not a directory"]
