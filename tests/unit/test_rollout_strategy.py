"""spec.rollout in app.yaml: validation with located errors, and the plan it makes."""

from __future__ import annotations

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster, group

from reconciler.config.load import load_repo
from reconciler.config.model import Repo
from reconciler.errors import ConfigError
from reconciler.rollout.describe import summary
from reconciler.rollout.model import OnFailure
from reconciler.rollout.strategy import plan_for


def _repo(make_repo: RepoFactory, rollout: str) -> Repo:
    files = {
        "clusters/beijing-1.yaml": cluster("beijing-1", "{region: cn-beijing}"),
        "clusters/beijing-2.yaml": cluster("beijing-2", "{region: cn-beijing}"),
        "clusters/beijing-3.yaml": cluster("beijing-3", "{region: cn-beijing}"),
        "clusters/us-west-1.yaml": cluster("us-west-1", "{provider: AWS}"),
        "clusters/eu-1.yaml": cluster("eu-1", "{region: eu}"),
        "groups/beijing.yaml": group("beijing", "{matchLabels: {region: cn-beijing}}"),
        "apps/web/app.yaml": app(
            "web",
            "source: {manifests: []}\n"
            "placement: {clusters: [beijing-1, beijing-2, beijing-3, us-west-1, eu-1]}\n"
            f"rollout:\n{rollout}",
        ),
    }
    return load_repo(make_repo(files))


SAMPLE = """\
  canary: {clusters: [beijing-2], minHealthyTime: 1m}
  stages:
  - name: beijing
    target: {groups: [beijing]}
    maxConcurrent: 1
    interval: 20s
  - name: aws
    target: {selector: {matchLabels: {provider: AWS}}}
    approval: manual
    maxFailures: 50%
    onFailure: rollback
  progressDeadline: 5m
"""


def test_stages_in_order_with_the_canary_first_and_unmatched_clusters_last(
    make_repo: RepoFactory,
) -> None:
    repo = _repo(make_repo, SAMPLE)
    plan = plan_for(repo, repo.apps["web"])
    assert plan is not None
    assert [(s.name, s.clusters) for s in plan.stages] == [
        ("canary", ("beijing-2",)),
        ("beijing", ("beijing-1", "beijing-3")),
        ("aws", ("us-west-1",)),
        ("remaining", ("eu-1",)),
    ]
    canary, beijing, aws, rest = plan.stages
    assert canary.min_healthy_time == 60 and canary.progress_deadline == 300
    assert (beijing.max_concurrent, beijing.interval) == (1, 20)
    assert aws.approval and aws.on_failure == OnFailure.ROLLBACK and aws.max_failures == 0
    assert rest.max_concurrent == 1 and not rest.approval
    assert summary(plan) == (
        "canary beijing-2, then beijing beijing-1, beijing-3 (1 at a time), "
        "then aws us-west-1 waits for manual approval after beijing beijing-1, beijing-3, "
        "then remaining eu-1"
    )


def test_a_canary_by_count_takes_the_first_clusters_by_name(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, "  canary: {count: 2}\n")
    plan = plan_for(repo, repo.apps["web"])
    assert plan is not None
    assert [s.clusters for s in plan.stages] == [
        ("beijing-1", "beijing-2"),
        ("beijing-3", "eu-1", "us-west-1"),
    ]


def test_an_app_without_a_strategy_has_no_plan(make_repo: RepoFactory) -> None:
    repo = _repo(make_repo, "  stages: []\n")
    assert plan_for(repo, repo.apps["web"]) is not None
    files_without = make_repo(
        {
            "clusters/c.yaml": cluster("c"),
            "apps/x/app.yaml": app("x", "source: {manifests: []}\nplacement: {clusters: [c]}\n"),
        }
    )
    plain = load_repo(files_without)
    assert plan_for(plain, plain.apps["x"]) is None


@pytest.mark.parametrize(
    ("rollout", "problem"),
    [
        (
            "  stages: [{name: a, target: {groups: [beijin]}}]\n",
            "apps/web/app.yaml:9: spec.rollout.stages[0].target.groups[0]: unknown group 'beijin'",
        ),
        (
            "  stages: [{name: a, target: {}}]\n",
            "spec.rollout.stages[0].target: stage target names no clusters, groups or selector",
        ),
        (
            "  stages:\n  - {name: a, target: {clusters: [eu-1]}}\n"
            "  - {name: a, target: {clusters: [eu-1]}}\n",
            "spec.rollout.stages[1].name: duplicate stage name 'a'",
        ),
        (
            "  canary: {count: 1}\n  stages: [{name: canary, target: {clusters: [eu-1]}}]\n",
            "duplicate stage name 'canary' (the canary's name)",
        ),
        ("  progressDeadline: 10 minutes\n", "'10 minutes' is not a duration"),
        ("  maxConcurrent: 150%\n", "'150%' is more than 100%"),
        ("  maxFailures: two\n", "'two' is not a count or a percentage"),
        ("  onFailure: explode\n", "spec.rollout.onFailure"),
        ("  canary: {count: 1, clusters: [eu-1]}\n", "set exactly one of count, clusters"),
        ("  canary: {clusters: [mars-1]}\n", "unknown cluster 'mars-1'"),
        ("  stages: [{name: A_B, target: {clusters: [eu-1]}}]\n", "invalid stage name 'A_B'"),
        ("  stages: [{name: a, target: {clusters: [eu-1]}, approval: auto}]\n", "approval"),
    ],
)
def test_strategy_errors_are_located(make_repo: RepoFactory, rollout: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        _repo(make_repo, rollout)
    problems = [str(p) for p in err.value.problems]
    assert any(problem in p for p in problems), problems
    assert all(p.startswith("apps/web/app.yaml:") for p in problems), problems


def _settings(rollout: str) -> str:
    return f"apiVersion: reconciler.io/v1alpha1\nkind: Settings\nspec:\n  rollout:\n{rollout}"


def test_a_repo_wide_strategy_applies_to_apps_without_their_own(make_repo: RepoFactory) -> None:
    files = {
        "reconciler.yaml": _settings("    canary: {count: 1}\n    maxConcurrent: 1\n"),
        "clusters/a.yaml": cluster("a"),
        "clusters/b.yaml": cluster("b"),
        "apps/plain/app.yaml": app(
            "plain", "source: {manifests: []}\nplacement: {clusters: [a, b]}\n"
        ),
        "apps/own/app.yaml": app(
            "own",
            "source: {manifests: []}\nplacement: {clusters: [a, b]}\n"
            "rollout:\n  stages: [{name: b-first, target: {clusters: [b]}}]\n",
        ),
    }
    repo = load_repo(make_repo(files))
    plain = plan_for(repo, repo.apps["plain"])
    own = plan_for(repo, repo.apps["own"])
    assert plain is not None and [(s.name, s.clusters) for s in plain.stages] == [
        ("canary", ("a",)),
        ("remaining", ("b",)),
    ]
    assert own is not None and [s.name for s in own.stages] == ["b-first", "remaining"]


def test_a_repo_wide_strategy_naming_an_unknown_group_is_a_located_error(
    make_repo: RepoFactory,
) -> None:
    files = {
        "reconciler.yaml": _settings("    stages: [{name: x, target: {groups: [nope]}}]\n"),
        "clusters/a.yaml": cluster("a"),
        "apps/plain/app.yaml": app(
            "plain", "source: {manifests: []}\nplacement: {clusters: [a]}\n"
        ),
    }
    with pytest.raises(ConfigError) as err:
        load_repo(make_repo(files))
    assert [str(p) for p in err.value.problems] == [
        "reconciler.yaml:5: spec.rollout.stages[0].target.groups[0]: unknown group 'nope'"
    ]
