"""Nothing in the config repo that looks like config is silently left unread: a file or folder
the loader would skip is a located error, and an emptied manifest file or folder does not
quietly remove (and prune) the objects it held."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster, group
from repo_snippets import settings as snip_settings

from reconciler.config.load import load_repo
from reconciler.errors import ConfigError

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"
BASE = {
    "clusters/a.yaml": cluster("a"),
    "apps/x/app.yaml": app("x", "source: {manifests: m/}\n"),
    "apps/x/m/cm.yaml": CM,
}


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_repo(root)
    return [str(p) for p in err.value.problems]


def test_a_json_manifest_is_read(make_repo: RepoFactory) -> None:
    svc = '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}\n'
    root = make_repo({**BASE, "apps/x/m/svc.json": svc})
    objects = load_repo(root).apps["x"].manifests
    assert sorted((m.file, m.value["kind"]) for m in objects) == [
        ("apps/x/m/cm.yaml", "ConfigMap"),
        ("apps/x/m/svc.json", "Service"),
    ]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {"clusters/eu/eu-1.yaml": cluster("eu-1")},
            "clusters/eu: a folder in clusters/ is not read: put its files directly in clusters/",
            id="cluster subfolder",
        ),
        pytest.param(
            {"groups/eu/g.yaml": "x: 1\n"},
            "groups/eu: a folder in groups/ is not read: put its files directly in groups/",
            id="group subfolder",
        ),
        pytest.param(
            {"apps/y.yaml": app("y", "source: {manifests: m/}\n")},
            "apps/y.yaml: a file in apps/ is not read: each app is a folder apps/<name>/ "
            "holding app.yaml",
            id="stray file in apps",
        ),
        pytest.param(
            {"apps/x/app.yml": app("x", "source: {manifests: n/}\n")},
            "apps/x/app.yml: both app.yaml and app.yml: app.yml is not read; keep one",
            id="app.yml beside app.yaml",
        ),
        pytest.param(
            {"reconciler.yaml": snip_settings(), "reconciler.yml": snip_settings()},
            "reconciler.yml: both reconciler.yaml and reconciler.yml: reconciler.yml is not "
            "read; keep one",
            id="reconciler.yml beside reconciler.yaml",
        ),
        pytest.param(
            {"apps/x/m/svc.yaml": ""},
            "apps/x/m/svc.yaml: no Kubernetes object document",
            id="emptied manifest file",
        ),
        pytest.param(
            {"apps/x/m/svc.yaml": "# nothing left\n---\n"},
            "apps/x/m/svc.yaml: no Kubernetes object document",
            id="manifest file of comments only",
        ),
        pytest.param(
            {
                "apps/z/app.yaml": app("z", "source: {manifests: m/}\n"),
                "apps/z/m/.keep": "",
            },
            "apps/z/app.yaml:6: spec.source.manifests[0]: no manifest files (.yaml, .yml, .json) "
            "in apps/z/m/",
            id="emptied manifests folder",
        ),
        pytest.param(
            {"clusters/b.yaml": cluster("b-9")},
            "clusters/b.yaml:4: metadata.name: cluster 'b-9' is in b.yaml: name the file b-9.yaml",
            id="cluster file",
        ),
        pytest.param(
            {"groups/g.yaml": group("north", "{matchLabels: {region: north}}")},
            "groups/g.yaml:4: metadata.name: group 'north' is in g.yaml: name the file north.yaml",
            id="group file",
        ),
        pytest.param(
            {"apps/y/app.yaml": app("y2", "source: {manifests: m/}\n"), "apps/y/m/c.yaml": CM},
            "apps/y/app.yaml:4: metadata.name: app 'y2' is in folder y/: name the folder y2/",
            id="app folder",
        ),
    ],
)
def test_what_would_be_skipped_or_is_misnamed_is_a_located_error(
    make_repo: RepoFactory, extra: dict[str, str], expected: str
) -> None:
    assert _problems(make_repo({**BASE, **extra})) == [expected]


def test_dot_files_and_other_files_in_apps_are_not_reported(make_repo: RepoFactory) -> None:
    root = make_repo({**BASE, "apps/README.md": "# apps\n", "apps/.hidden.yaml": "x: 1\n"})
    assert set(load_repo(root).apps) == {"x"}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        pytest.param(
            "kustomization.yaml",
            "resources: [cm.yaml]\n",
            "apps/x/m/kustomization.yaml:1: a kustomization is not supported among manifests "
            "(they are applied as written): point source.kustomize.path at its folder instead",
            id="kustomization.yaml",
        ),
        pytest.param(
            "kust.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "resources: [cm.yaml]\n",
            "apps/x/m/kust.yaml:1: a kustomization is not supported among manifests "
            "(they are applied as written): point source.kustomize.path at its folder instead",
            id="Kustomization document",
        ),
        pytest.param(
            "list.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- " + CM.replace("\n", "\n  "),
            "apps/x/m/list.yaml:1: kind List is not supported in a manifest file: write its "
            "items as separate documents (separated by ---)",
            id="kind List",
        ),
    ],
)
def test_a_file_that_is_not_objects_to_apply_is_one_error_saying_what_it_is(
    make_repo: RepoFactory, name: str, text: str, expected: str
) -> None:
    assert _problems(make_repo({**BASE, f"apps/x/m/{name}": text})) == [expected]


def test_a_file_of_several_clusters_is_not_held_to_one_name(make_repo: RepoFactory) -> None:
    root = make_repo({**BASE, "clusters/edge.yaml": cluster("e-1") + "---\n" + cluster("e-2")})
    assert set(load_repo(root).clusters) == {"a", "e-1", "e-2"}


@pytest.mark.parametrize("context", ['""', "' '"])
def test_an_empty_context_is_an_error_not_unset(make_repo: RepoFactory, context: str) -> None:
    text = cluster("b") + f"  context: {context}\n"
    assert _problems(make_repo({**BASE, "clusters/b.yaml": text})) == [
        "clusters/b.yaml:9: spec.context: empty context: leave spec.context out to use the "
        "cluster's name"
    ]


def test_a_file_not_in_utf8_is_an_error_at_the_line_of_the_first_bad_byte(
    make_repo: RepoFactory,
) -> None:
    root = make_repo(BASE)
    (root / "apps/x/m/cm.yaml").write_bytes(CM.encode() + b"data: {city: Montr\xe9al}\n")
    assert _problems(root) == [
        "apps/x/m/cm.yaml:4: not UTF-8: byte 0xe9 can not be read; save the file as UTF-8"
    ]


def test_a_tab_in_indentation_is_said_to_be_a_tab(make_repo: RepoFactory) -> None:
    root = make_repo({**BASE, "apps/x/m/cm.yaml": CM + "data:\n\ta: b\n"})
    assert _problems(root) == [
        "apps/x/m/cm.yaml:5: invalid YAML: a tab (column 1): YAML does not allow tabs for "
        "indentation; use spaces"
    ]
