"""Every load-time error names file:line and field path; all of a repo's errors come at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURES, RepoFactory
from repo_snippets import app, cluster, group
from repo_snippets import settings as snip_settings

from reconciler.config.load import load_repo
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


# ---- the repo boundary: symlinks, sizes, unreadable files, odd paths --------------------------

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
CHART_FILES = {
    "apps/x/app.yaml": app("x", "source:\n  helm: {chart: c/}\n"),
    "apps/x/c/Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    "apps/x/c/templates/cm.yaml": CM,
}
KUSTOMIZE_FILES = {
    "apps/x/app.yaml": app("x", "source:\n  kustomize: {path: overlay}\n"),
    "apps/x/overlay/kustomization.yaml": "resources: [../base]\n",
    "apps/x/base/kustomization.yaml": "resources: [cm.yaml]\n",
    "apps/x/base/cm.yaml": CM,
}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the repo (never inside it) holding a secret file and a manifest."""
    out = tmp_path / "outside"
    (out / "dir").mkdir(parents=True)
    (out / "secret.yaml").write_text(CM.replace("name: c", "name: stolen"))
    (out / "dir" / "cm.yaml").write_text(CM.replace("name: c", "name: stolen-too"))
    (out / "dir" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    return out


def _link(root: Path, rel: str, target: Path | str) -> None:
    link = root / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


@pytest.mark.parametrize(
    ("files", "link", "to", "expected"),
    [
        pytest.param(
            {}, "clusters/evil.yaml", "secret.yaml", "clusters/evil.yaml: ", id="cluster file"
        ),
        pytest.param({}, "groups/evil.yaml", "secret.yaml", "groups/evil.yaml: ", id="group file"),
        pytest.param({}, "apps/evil", "dir", "apps/evil: ", id="app directory"),
        pytest.param({}, "apps/y/app.yaml", "secret.yaml", "apps/y/app.yaml: ", id="app.yaml"),
        pytest.param(
            {"apps/x/app.yaml": app("x", "source: {manifests: m/}\n")},
            "apps/x/m/evil.yaml",
            "secret.yaml",
            "apps/x/m/evil.yaml: ",
            id="manifest file in a directory",
        ),
        pytest.param(
            {"apps/x/app.yaml": app("x", "source: {manifests: m/}\n")},
            "apps/x/m/sub",
            "dir",
            "apps/x/m/sub: ",
            id="directory in a manifest directory",
        ),
        pytest.param(
            {"apps/x/app.yaml": app("x", "source: {manifests: [m/evil.yaml]}\n")},
            "apps/x/m/evil.yaml",
            "secret.yaml",
            "apps/x/app.yaml:6: spec.source.manifests[0]: ",
            id="listed manifest file",
        ),
        pytest.param(
            CHART_FILES,
            "apps/x/c/templates/evil.yaml",
            "secret.yaml",
            "apps/x/c/templates/evil.yaml: ",
            id="file in a chart",
        ),
        pytest.param(
            CHART_FILES, "apps/x/c/files", "dir", "apps/x/c/files: ", id="directory in a chart"
        ),
        pytest.param(
            {
                **CHART_FILES,
                "apps/x/app.yaml": app("x", "source:\n  helm: {chart: c/, valuesFiles: [v.yaml]}"),
            },
            "apps/x/v.yaml",
            "secret.yaml",
            "apps/x/app.yaml:7: spec.source.helm.valuesFiles[0]: ",
            id="values file",
        ),
        pytest.param(
            KUSTOMIZE_FILES,
            "apps/x/base/evil.yaml",
            "secret.yaml",
            "apps/x/base/evil.yaml: ",
            id="file in a kustomize base",
        ),
        pytest.param(
            KUSTOMIZE_FILES,
            "apps/x/overlay/evil",
            "dir",
            "apps/x/overlay/evil: ",
            id="directory in a kustomize overlay",
        ),
    ],
)
def test_symlinks_that_leave_the_repo_are_rejected(
    make_repo: RepoFactory,
    outside: Path,
    files: dict[str, str],
    link: str,
    to: str,
    expected: str,
) -> None:
    root = make_repo({"clusters/a.yaml": A, **files})
    _link(root, link, outside / to)
    problems = _problems(root)
    assert any(p.startswith(expected) and "leave" in p for p in problems), problems
    assert not any("stolen" in p for p in problems)


def test_symlinks_that_stay_in_the_repo_are_followed(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": A,
            "apps/x/app.yaml": app("x", "source: {manifests: m/}\n"),
            "shared/cm.yaml": CM,
            "shared/more/cm2.yaml": CM.replace("name: c", "name: d"),
        }
    )
    _link(root, "apps/x/m/cm.yaml", root / "shared" / "cm.yaml")
    _link(root, "apps/x/m/more", "../../../shared/more")
    _link(root, "apps/x/m/more/loop", "..")  # a cycle is walked once
    repo = load_repo(root)
    assert [d.file for d in repo.apps["x"].manifests] == [
        "apps/x/m/cm.yaml",
        "apps/x/m/more/cm2.yaml",
    ]


@pytest.mark.parametrize(
    ("kustomization", "expected"),
    [
        pytest.param(
            "resources:\n- https://github.com/example/repo//dir?ref=v1\n",
            "apps/x/overlay/kustomization.yaml:2: resources[0]: remote",
            id="remote base",
        ),
        pytest.param(
            "resources:\n- github.com/example/repo/dir?ref=v1\n",
            "apps/x/overlay/kustomization.yaml:2: resources[0]: remote",
            id="remote base without scheme",
        ),
        pytest.param(
            "resources: [../base]\ncomponents:\n- git@github.com:example/repo.git\n",
            "apps/x/overlay/kustomization.yaml:3: components[0]: remote",
            id="remote component",
        ),
        pytest.param(
            "bases: [../../../../outside/dir]\n",
            "apps/x/overlay/kustomization.yaml:1: bases[0]: path '../../../../outside/dir' "
            "leaves the config repo",
            id="base outside the repo",
        ),
        pytest.param(
            "resources: [../base]\npatches:\n- path: https://example.com/patch.yaml\n",
            "apps/x/overlay/kustomization.yaml:3: patches[0].path: remote",
            id="remote patch file",
        ),
        pytest.param(
            "resources: [../base]\nconfigMapGenerator:\n- name: g\n  files: [k=../../../../x]\n",
            "apps/x/overlay/kustomization.yaml:4: configMapGenerator[0].files[0]: path "
            "'../../../../x' leaves the config repo",
            id="generator file outside the repo",
        ),
    ],
)
def test_kustomizations_may_not_reach_the_network_or_leave_the_repo(
    make_repo: RepoFactory, outside: Path, kustomization: str, expected: str
) -> None:
    files = {**KUSTOMIZE_FILES, "apps/x/overlay/kustomization.yaml": kustomization}
    problems = _problems(make_repo({"clusters/a.yaml": A, **files}))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_base_reached_through_an_overlay_is_checked_too(make_repo: RepoFactory) -> None:
    files = {**KUSTOMIZE_FILES, "apps/x/base/kustomization.yaml": "resources: [../../../../x]\n"}
    problems = _problems(make_repo({"clusters/a.yaml": A, **files}))
    assert problems == [
        "apps/x/base/kustomization.yaml:1: resources[0]: path '../../../../x' leaves the "
        "config repo"
    ]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param({"apps/y/app.yaml": ""}, "apps/y/app.yaml: no App document", id="empty app"),
        pytest.param(
            {"apps/y/app.yaml": "# nothing yet\n---\n"},
            "apps/y/app.yaml: no App document",
            id="comment-only app",
        ),
        pytest.param(
            {"clusters/b.yaml": "# b is gone\n"},
            "clusters/b.yaml: no Cluster document",
            id="empty cluster file",
        ),
        pytest.param(
            {"groups/g.yaml": ""}, "groups/g.yaml: no ClusterGroup document", id="empty group file"
        ),
    ],
)
def test_empty_definition_files_are_errors_not_deletions(
    make_repo: RepoFactory, files: dict[str, str], expected: str
) -> None:
    allowed = {"reconciler.yaml": snip_settings()}  # no apps is meant here
    assert _problems(make_repo({"clusters/a.yaml": A, **allowed, **files})) == [expected]


BOMB = "kind: ConfigMap\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i else 'x'] * 10)}]\n" for i in range(9)
)


@pytest.mark.timeout(20)
def test_an_alias_bomb_in_a_manifest_is_a_located_error(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": A,
            "apps/x/app.yaml": app("x", "source: {manifests: m/}\n"),
            "apps/x/m/bomb.yaml": BOMB,
        }
    )
    (problem,) = _problems(root)
    assert problem.startswith("apps/x/m/bomb.yaml:")
    assert "excessive aliasing" in problem


def test_oversized_files_are_located_errors(
    make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reconciler.config.files.MAX_FILE_BYTES", 1000)
    root = make_repo(
        {
            "clusters/a.yaml": A,
            "apps/x/app.yaml": app("x", "source: {manifests: m/}\n"),
            "apps/x/m/big.yaml": CM + "data:\n" + "".join(f"  k{i}: v\n" for i in range(200)),
        }
    )
    assert _problems(root) == ["apps/x/m/big.yaml: file is larger than 1000 bytes"]


@pytest.mark.parametrize(
    ("files", "file"),
    [
        pytest.param(
            {
                **CHART_FILES,
                "apps/x/app.yaml": app("x", "source:\n  helm: {chart: c/, valuesFiles: [v.yaml]}"),
            },
            "apps/x/v.yaml",
            id="values file",
        ),
        pytest.param(
            {"apps/x/app.yaml": app("x", "source: {manifests: m/}\n")},
            "apps/x/m/v.yaml",
            id="manifest",
        ),
        pytest.param({}, "clusters/v.yaml", id="cluster file"),
    ],
)
def test_files_that_are_not_utf8_are_located_errors(
    make_repo: RepoFactory, files: dict[str, str], file: str
) -> None:
    root = make_repo({"clusters/a.yaml": A, **files})
    (root / file).parent.mkdir(parents=True, exist_ok=True)
    (root / file).write_bytes(b"a: caf\xe9\n")
    problems = _problems(root)
    assert any(p.startswith(f"{file}:") and "not UTF-8: byte 0xe9" in p for p in problems), problems


@pytest.mark.parametrize(
    ("manifests", "expected"),
    [
        pytest.param('"m\\0/"', "apps/x/app.yaml:6: spec.source.manifests[0]: ", id="null byte"),
        pytest.param("x" * 300, "apps/x/app.yaml:6: spec.source.manifests[0]: ", id="too long"),
        pytest.param(
            f"m/{'x' * 300}/y.yaml", "apps/x/app.yaml:6: spec.source.manifests[0]: ", id="deep"
        ),
    ],
)
def test_unusable_paths_are_located_errors(
    make_repo: RepoFactory, manifests: str, expected: str
) -> None:
    root = make_repo(
        {"clusters/a.yaml": A, "apps/x/app.yaml": app("x", f"source: {{manifests: {manifests}}}")}
    )
    problems = _problems(root)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param('{helm: {chart: "c\\0"}}', "spec.source.helm.chart: ", id="chart"),
        pytest.param('{kustomize: {path: "k\\0"}}', "spec.source.kustomize.path: ", id="kustomize"),
    ],
)
def test_unusable_tool_paths_are_located_errors(
    make_repo: RepoFactory, source: str, expected: str
) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": A,
            "apps/x/app.yaml": app("x", f"source: {source}"),
        }
    )
    problems = _problems(root)
    assert any(p.startswith(f"apps/x/app.yaml:6: {expected}") for p in problems), problems


def test_reconciler_definitions_are_not_deployable_manifests(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": A,
            "apps/x/app.yaml": app("x", "source: {manifests: [m/, c.yaml]}\n"),
            "apps/x/m/cm.yaml": CM,
            "apps/x/c.yaml": A,
        }
    )
    assert _problems(root) == [
        "apps/x/c.yaml:1: apiVersion: reconciler.io/v1alpha1 is the reconciler's own config, "
        "not a Kubernetes object to deploy"
    ]
