"""Placement: clusters ∪ groups ∪ selector, minus exclude; paused clusters skipped with a reason."""

from __future__ import annotations

from pathlib import Path

from conftest import SAMPLE_REPO, RepoFactory
from repo_snippets import app, cluster, group

from reconciler.config.load import load_repo
from reconciler.config.model import Repo
from reconciler.placement import Placement, place, targets


def _repo(make_repo: RepoFactory, placement: str, paused: tuple[str, ...] = ()) -> Repo:
    files = {
        "clusters/bj-1.yaml": cluster(
            "bj-1", "{region: cn-beijing, env: prod}", paused="bj-1" in paused
        ),
        "clusters/bj-2.yaml": cluster(
            "bj-2", "{region: cn-beijing, env: staging}", paused="bj-2" in paused
        ),
        "clusters/usw-1.yaml": cluster(
            "usw-1", "{provider: AWS, env: prod}", paused="usw-1" in paused
        ),
        "clusters/edge-1.yaml": cluster("edge-1", "{}", paused="edge-1" in paused),
        "groups/beijing.yaml": group("beijing", "{matchLabels: {region: cn-beijing}}"),
        "apps/x/app.yaml": app("x", f"source: {{manifests: []}}\nplacement: {placement}\n"),
    }
    return load_repo(make_repo(files))


def _placed(repo: Repo) -> list[str]:
    return [c.name for c in targets(repo, repo.apps["x"])]


def _by_cluster(repo: Repo) -> dict[str, Placement]:
    return {p.cluster: p for p in place(repo, repo.apps["x"])}


def test_placement_is_the_union_of_clusters_groups_and_selector(make_repo: RepoFactory) -> None:
    repo = _repo(
        make_repo,
        "{clusters: [edge-1], groups: [beijing], selector: {matchLabels: {provider: AWS}}}",
    )
    assert _placed(repo) == ["bj-1", "bj-2", "edge-1", "usw-1"]


def test_exclude_wins_over_every_rule(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, "{clusters: [bj-2], groups: [beijing], exclude: [bj-2]}")
    assert _placed(repo) == ["bj-1"]
    assert _by_cluster(repo)["bj-2"] == Placement(
        "bj-2",
        False,
        ["listed in placement.clusters", "in group beijing", "excluded by placement.exclude"],
    )


def test_selector_expressions_use_kubernetes_semantics(make_repo: RepoFactory) -> None:
    repo = _repo(
        make_repo,
        "{selector: {matchExpressions: [{key: env, operator: NotIn, values: [staging]}]}}",
    )
    # NotIn matches clusters without the label too.
    assert _placed(repo) == ["bj-1", "edge-1", "usw-1"]


def test_every_matching_rule_is_given_as_a_reason(make_repo: RepoFactory) -> None:
    repo = _repo(
        make_repo, "{clusters: [bj-1], groups: [beijing], selector: {matchLabels: {env: prod}}}"
    )
    assert _by_cluster(repo)["bj-1"].reasons == [
        "listed in placement.clusters",
        "in group beijing",
        "matches selector: env=prod",
    ]


def test_an_unplaced_cluster_says_which_rules_did_not_match(make_repo: RepoFactory) -> None:
    repo = _repo(
        make_repo, "{clusters: [bj-1], groups: [beijing], selector: {matchLabels: {provider: AWS}}}"
    )
    assert _by_cluster(repo)["edge-1"] == Placement(
        "edge-1",
        False,
        [
            "not listed in placement.clusters",
            "not in group beijing (needs region=cn-beijing, has no label region)",
            "does not match selector: provider=AWS (needs provider=AWS, has no label provider)",
        ],
    )


def test_paused_clusters_are_placed_but_skipped_with_a_reason(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, "{groups: [beijing]}", paused=("bj-2",))
    assert _placed(repo) == ["bj-1"]
    bj2 = _by_cluster(repo)["bj-2"]
    assert (bj2.placed, bj2.paused, bj2.is_target) == (True, True, False)
    assert bj2.reasons == ["in group beijing", "paused: skipped (spec.paused: true)"]


def test_an_app_with_no_placement_has_zero_targets_and_says_why(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, "{}")
    assert _placed(repo) == []
    assert _by_cluster(repo)["bj-1"].reasons == ["placement names no clusters, groups or selector"]


def test_an_empty_selector_selects_every_cluster(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, "{selector: {}}")
    assert _placed(repo) == ["bj-1", "bj-2", "edge-1", "usw-1"]


def test_place_covers_every_cluster_of_the_inventory_in_name_order(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, "{clusters: [usw-1]}")
    assert [p.cluster for p in place(repo, repo.apps["x"])] == ["bj-1", "bj-2", "edge-1", "usw-1"]


def test_sample_hello_world_is_placed_by_group_in_beijing_and_by_selector_on_aws() -> None:
    repo = load_repo(Path(SAMPLE_REPO))
    reasons = {p.cluster: p.reasons for p in place(repo, repo.apps["hello-world"])}
    assert reasons == {
        "beijing-1": ["in group beijing"],
        "beijing-2": ["in group beijing"],
        "us-west-1": ["matches selector: provider=AWS"],
    }
