"""One function loads and renders a tree: strict for the CLI and plan, partial for the daemon."""

from __future__ import annotations

import pytest
from conftest import RepoFactory
from repo_snippets import app, cluster, settings

from reconciler.charts.model import ChartLock
from reconciler.config.model import Repo
from reconciler.errors import ConfigError
from reconciler.loading import load_and_render
from reconciler.render import TargetResult

CLUSTERS = {f"clusters/{n}.yaml": cluster(n) for n in ("a", "b")}
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"


def web(name: str) -> dict[str, str]:
    spec = (
        f"namespace: {name}\nsource: {{manifests: manifests/}}\nplacement: {{clusters: [a, b]}}\n"
    )
    return {f"apps/{name}/app.yaml": app(name, spec), f"apps/{name}/manifests/cm.yaml": CM}


def broken_app(make_repo: RepoFactory) -> RepoFactory:
    files = {**CLUSTERS, **web("good"), **web("typo")}
    files["apps/typo/app.yaml"] = files["apps/typo/app.yaml"].replace("placement:", "placment:")
    return lambda extra: make_repo({**files, **extra})


def test_strict_raises_every_problem_before_locking_charts(make_repo: RepoFactory) -> None:
    locked: list[Repo] = []

    def lock(repo: Repo) -> ChartLock:
        locked.append(repo)
        return ChartLock()

    with pytest.raises(ConfigError) as raised:
        load_and_render(broken_app(make_repo)({}), lock=lock)
    assert [str(p) for p in raised.value.problems] == [
        "apps/typo/app.yaml:8: spec.placment: unknown field 'placment' (did you mean 'placement'?)"
    ]
    assert locked == []


def test_partial_renders_what_loads_and_lists_the_broken_unit(make_repo: RepoFactory) -> None:
    loaded = load_and_render(broken_app(make_repo)({}), partial=True)

    assert loaded.invalid is None
    assert [(t.app, t.cluster) for t in loaded.targets] == [("good", "a"), ("good", "b")]
    assert [b.names for b in loaded.partial.broken] == [("typo",)]
    assert list(loaded.repo.apps) == ["good"]


def test_partial_with_a_repo_wide_problem_is_invalid_and_renders_nothing(
    make_repo: RepoFactory,
) -> None:
    rendered: list[Repo] = []

    def render(repo: Repo, charts: ChartLock) -> list[TargetResult]:
        rendered.append(repo)
        return []

    root = make_repo({**CLUSTERS, **web("x"), "reconciler.yaml": settings("allowEmty: 1")})
    loaded = load_and_render(root, partial=True, render=render)

    assert loaded.invalid is not None
    assert loaded.invalid.problems == loaded.partial.problems
    assert loaded.targets == [] and rendered == []
    with pytest.raises(ConfigError):
        load_and_render(root)
