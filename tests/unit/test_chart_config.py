"""app.yaml's chart sources: a local path, a Helm repository (repo + chart + version) or an OCI
registry (oci:// + version); the shape is checked at load, with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RepoFactory
from repo_snippets import helm_app

from reconciler.charts.lock import chart_source
from reconciler.charts.model import ChartLock, ChartSource
from reconciler.config.load import load_repo
from reconciler.errors import ConfigError
from reconciler.render import render_all


def problems(make_repo: RepoFactory, helm: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_repo(make_repo(helm_app(helm)))
    return [str(p) for p in err.value.problems]


def test_a_helm_repository_chart_loads_and_names_its_source(make_repo: RepoFactory) -> None:
    repo = load_repo(
        make_repo(
            helm_app('{repo: "https://charts.example.com/stable", chart: redis, version: ^1.2}')
        )
    )
    app = repo.apps["web"]
    assert chart_source(app) == ChartSource(
        "repo", "https://charts.example.com/stable", "redis", "^1.2"
    )
    assert app.chart_line == 6


def test_an_oci_chart_loads_and_its_name_is_the_last_segment(make_repo: RepoFactory) -> None:
    repo = load_repo(
        make_repo(
            helm_app('{chart: "oci://registry.example.com:5000/team/redis", version: "1.2.3"}')
        )
    )
    assert chart_source(repo.apps["web"]) == ChartSource(
        "oci", "oci://registry.example.com:5000/team/redis", "redis", "1.2.3"
    )


@pytest.mark.parametrize(
    ("helm", "message"),
    [
        (
            "{chart: ./chart, version: 1.0.0}",
            "apps/web/app.yaml:6: spec.source.helm.version: version is for a chart from a Helm "
            "repository (repo:) or an oci:// registry",
        ),
        (
            '{repo: "https://charts.example.com", chart: redis}',
            "apps/web/app.yaml:6: spec.source.helm: version is required for a chart from a "
            'repository or registry: an exact version ("1.2.3") or a range',
        ),
        (
            '{repo: "https://u:p@charts.example.com", chart: redis, version: "1"}',
            "spec.source.helm.repo: credentials never live in the config repo",
        ),
        (
            '{repo: "ftp://charts.example.com", chart: redis, version: "1"}',
            "spec.source.helm.repo: not an https:// or http:// URL: ftp://charts.example.com",
        ),
        (
            '{repo: "https://charts.example.com", chart: stable/redis, version: "1"}',
            "spec.source.helm.chart: with repo, chart is the chart's name in that repository",
        ),
        (
            '{repo: "https://x.example", chart: "oci://r.example/a", version: "1"}',
            "spec.source.helm.repo: an oci:// chart takes no repo",
        ),
        (
            '{chart: "oci://r.example", version: "1"}',
            "spec.source.helm.chart: not an oci://host/path/name reference: oci://r.example",
        ),
    ],
)
def test_a_bad_chart_source_is_a_located_problem(
    make_repo: RepoFactory, helm: str, message: str
) -> None:
    found = problems(make_repo, helm)
    assert any(message in p for p in found), found


def test_a_remote_chart_without_a_lock_entry_fails_its_targets_with_the_lock_error(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo = load_repo(
        make_repo(helm_app('{repo: "https://charts.example.com", chart: redis, version: "9"}'))
    )
    lock = ChartLock(
        errors={"web": "apps/web/app.yaml:7: chart https://charts.example.com redis 9: gone"}
    )
    (result,) = render_all(repo, charts=lock)
    assert str(result.error) == (
        "app web, cluster c1: apps/web/app.yaml:7: chart https://charts.example.com redis 9: gone"
    )
