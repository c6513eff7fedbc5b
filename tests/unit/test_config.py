"""Loading a valid config repo into the frozen Repo model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import SAMPLE_REPO, RepoFactory
from repo_snippets import app, cluster, settings

from reconciler.config.load import load_repo
from reconciler.errors import ConfigError


def test_sample_repo_loads_with_everything_sorted_by_name() -> None:
    repo = load_repo(SAMPLE_REPO)
    assert list(repo.clusters) == ["beijing-1", "beijing-2", "us-west-1"]
    assert list(repo.groups) == ["beijing"]
    assert list(repo.apps) == ["guestbook", "hello-world", "redis"]


def test_clusters_expose_inventory_fields_in_snake_case() -> None:
    usw1 = load_repo(SAMPLE_REPO).clusters["us-west-1"]
    assert usw1.labels["provider"] == "AWS"
    assert usw1.vars == {"domain": "usw1.example.com"}
    assert usw1.context == "us-west-1"
    assert usw1.paused is False
    assert usw1.file == "clusters/us-west-1.yaml"


def test_context_defaults_to_the_cluster_name(make_repo: RepoFactory) -> None:
    root = make_repo({"clusters/a.yaml": cluster("a"), "reconciler.yaml": settings()})
    assert load_repo(root).clusters["a"].context == "a"


def test_apps_expose_source_placement_overrides_and_sync_policy() -> None:
    hello = load_repo(SAMPLE_REPO).apps["hello-world"]
    assert hello.file == "apps/hello-world/app.yaml"
    assert hello.dir == SAMPLE_REPO / "apps" / "hello-world"
    assert hello.namespace == "demo"
    assert hello.source.manifests == ["manifests/"]
    assert hello.placement.groups == ["beijing"]
    assert [o.name for o in hello.overrides] == ["aws-high-availability"]
    assert hello.overrides[0].replicas == 5
    assert hello.sync.prune is True and hello.sync.self_heal is True


def test_sync_policy_reads_camel_case_keys(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a"),
            "apps/x/app.yaml": app(
                "x",
                """
                source: {manifests: []}
                sync:
                  prune: false
                  selfHeal: false
                  allowEmpty: true
                  force: true
                  ignoreDifferences:
                  - {kind: Deployment, name: "web-*", jsonPointers: [/spec/replicas]}
                """,
            ),
        }
    )
    sync = load_repo(root).apps["x"].sync
    assert (sync.prune, sync.self_heal, sync.allow_empty, sync.force) == (False, False, True, True)
    rule = sync.ignore_differences[0]
    assert (rule.group, rule.kind, rule.name, rule.json_pointers) == (
        None,
        "Deployment",
        "web-*",
        ["/spec/replicas"],
    )


def test_the_loaded_repo_is_frozen() -> None:
    repo = load_repo(SAMPLE_REPO)
    with pytest.raises(dataclasses.FrozenInstanceError):
        repo.apps = {}  # type: ignore[misc]


def test_manifest_directories_are_read_recursively_in_path_order(make_repo: RepoFactory) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {}}}\n"
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a"),
            "apps/x/app.yaml": app("x", "source: {manifests: [m/, extra.yml]}"),
            "apps/x/m/b.yaml": cm.format("b") + "---\n" + cm.format("b2"),
            "apps/x/m/a/nested.yml": cm.format("nested"),
            "apps/x/m/notes.txt": "not yaml",
            "apps/x/m/.hidden/skip.yaml": cm.format("hidden"),
            "apps/x/extra.yml": cm.format("extra"),
        }
    )
    docs = load_repo(root).apps["x"].manifests
    assert [(d.file, d.value["metadata"]["name"]) for d in docs] == [
        ("apps/x/m/a/nested.yml", "nested"),
        ("apps/x/m/b.yaml", "b"),
        ("apps/x/m/b.yaml", "b2"),
        ("apps/x/extra.yml", "extra"),
    ]
    assert docs[2].line == 5


def test_an_app_with_zero_targets_is_valid(make_repo: RepoFactory) -> None:
    root = make_repo(
        {"clusters/a.yaml": cluster("a"), "apps/x/app.yaml": app("x", "source: {manifests: []}")}
    )
    assert load_repo(root).apps["x"].placement.clusters == []


def test_an_empty_repo_is_an_error_unless_settings_allow_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_repo(tmp_path)
    assert [str(p).partition(";")[0] for p in err.value.problems] == [
        "apps: no apps: every app would be pruned",
        "clusters: no clusters: every app would leave every cluster",
    ]

    (tmp_path / "reconciler.yaml").write_text(settings())
    repo = load_repo(tmp_path)
    assert (repo.clusters, repo.groups, repo.apps) == ({}, {}, {})
    assert repo.settings.allow_empty


def test_a_manifest_directory_holding_the_app_definition_skips_it(make_repo: RepoFactory) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a"),
            "apps/x/app.yaml": app("x", "source: {manifests: ./}\n"),
            "apps/x/cm.yaml": cm,
            "apps/x/sub/app.yaml": cm.replace("name: c", "name: app"),  # not the definition
        }
    )
    manifests = load_repo(root).apps["x"].manifests
    assert [(d.file, d.value["metadata"]["name"]) for d in manifests] == [
        ("apps/x/cm.yaml", "c"),
        ("apps/x/sub/app.yaml", "app"),
    ]
