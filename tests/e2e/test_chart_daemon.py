"""The daemon with a chart from a Helm repository: the resolved chart is recorded per revision,
a restart renders the same chart without asking the repository, a new commit resolves the range
afresh, and an unreachable repository with the chart cached still deploys. A repository that
was down (or answered 503) at the commit is asked again until it answers: the app gets its chart
without a new commit, and a cached fallback is replaced (and only then recorded)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from reconciler.charts.cache import ChartCache
from reconciler.charts.resolver import ChartResolver
from reconciler.store.rows import State
from tests.chartservers import HelmRepoServer, demo_chart_repo, package, write_chart
from tests.e2e.daemon_rig import (
    ConfigRepo,
    config_data,
    eventually,
    reconciler,
    running_daemon,
    status_row_message,
    statuses,
    unique,
)


@pytest.fixture
def chart_repo(tmp_path: Path) -> Iterator[HelmRepoServer]:
    with demo_chart_repo(tmp_path, ("1.0.0", "1.1.0", "2.0.0")) as server:
        yield server


def recorded(state: Path, sha: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(state / "state.db") as db:
        rows = db.execute(
            "SELECT app, source, version FROM revision_charts WHERE sha = ?", (sha,)
        ).fetchall()
    return [tuple(r) for r in rows]


def test_the_daemon_records_resolves_and_caches_remote_charts(
    tmp_path: Path,
    kubeconfig: Path,
    api_clients: dict[str, client.ApiClient],
    chart_repo: HelmRepoServer,
) -> None:
    app, namespace, state = unique("chart"), unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(("beijing-1",))

    def write_app(greeting: str) -> None:
        repo.app_spec(
            app,
            {
                "namespace": namespace,
                "source": {
                    "helm": {
                        "repo": chart_repo.url,
                        "chart": "demo",
                        "version": "~1.1",
                        "values": {"greeting": greeting},
                    }
                },
                "placement": {"clusters": ["beijing-1"]},
            },
        )

    def run_once() -> None:
        done = reconciler(
            "run", "--once", "--repo", str(repo.root), "--state-dir", str(state),
            "--kubeconfig", str(kubeconfig), "--instance", app, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def deployed() -> dict[str, str] | None:
        return config_data(api_clients["beijing-1"], namespace, f"{app}-config")

    write_app("one")
    first = repo.commit("v1")
    run_once()
    assert deployed() == {"chartVersion": "1.1.0", "greeting": "one", "marker": ""}
    assert recorded(state, first) == [(app, f"{chart_repo.url} demo", "1.1.0")]
    assert chart_repo.requests == ["/index.yaml", "/demo-1.1.0.tgz"]

    # A newer 1.1.x appears: the same revision still renders what was recorded for it,
    # from the cache, without asking the repository.
    package(write_chart(tmp_path / "src", "demo", "1.1.5"), chart_repo.root, tmp_path / "h")
    chart_repo.index(tmp_path / "h")
    run_once()
    assert deployed() == {"chartVersion": "1.1.0", "greeting": "one", "marker": ""}
    assert chart_repo.requests == ["/index.yaml", "/demo-1.1.0.tgz"]

    # A new commit resolves the range afresh.
    write_app("two")
    second = repo.commit("v2")
    run_once()
    assert deployed() == {"chartVersion": "1.1.5", "greeting": "two", "marker": ""}
    assert recorded(state, second) == [(app, f"{chart_repo.url} demo", "1.1.5")]

    # The repository goes away: the best cached chart the range allows still deploys, and is
    # not recorded as the revision's chart (a later run asks the repository again).
    chart_repo.stop()
    write_app("three")
    third = repo.commit("v3")
    run_once()
    assert deployed() == {"chartVersion": "1.1.5", "greeting": "three", "marker": ""}
    assert recorded(state, third) == []


def chart_app(repo: ConfigRepo, name: str, namespace: str, url: str, version: str) -> None:
    repo.app_spec(
        name,
        {
            "namespace": namespace,
            "source": {"helm": {"repo": url, "chart": "demo", "version": version}},
            "placement": {"clusters": ["beijing-1"]},
        },
    )


def test_charts_whose_repository_failed_at_the_commit_are_resolved_once_it_answers(
    tmp_path: Path,
    kubeconfig: Path,
    api_clients: dict[str, client.ApiClient],
    chart_repo: HelmRepoServer,
) -> None:
    exact, ranged = unique("exact"), unique("ranged")
    namespace, state = unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(("beijing-1",))
    cache = ChartCache(tmp_path / "charts")
    api = api_clients["beijing-1"]

    def chart_version(app: str) -> str | None:
        return (config_data(api, namespace, f"{app}-config") or {}).get("chartVersion")

    with running_daemon(
        repo,
        state,
        kubeconfig,
        charts=lambda: ChartResolver(cache, timeout=5.0),
        chart_retry_max=2.0,  # polls every second: asked again after 1s, 2s, 2s...
    ):
        chart_app(repo, ranged, namespace, chart_repo.url, "1.0.0")
        first = repo.commit("ranged at 1.0.0")
        eventually(lambda: chart_version(ranged) == "1.0.0", 60, "1.0.0 deployed (and cached)")
        assert recorded(state, first) == [(ranged, f"{chart_repo.url} demo", "1.0.0")]

        # The repository answers 503: nothing cached for the exact version (the app fails,
        # saying it is retried), the range renders the cached 1.0.0. Neither is recorded.
        chart_repo.fail(503)
        chart_app(repo, exact, namespace, chart_repo.url, "1.1.0")
        chart_app(repo, ranged, namespace, chart_repo.url, "^1.0")
        second = repo.commit("exact 1.1.0, ranged ^1.0")
        eventually(
            lambda: (
                statuses(state, exact).get("beijing-1", (None, None))[0] is State.INVALID_CONFIG
            ),
            60,
            "the exact chart failing",
        )
        message = status_row_message(state, exact, "beijing-1")
        assert "HTTP 503 (and no cached version matches)" in message, message
        assert "resolved again on later polls until the source answers" in message, message
        eventually(lambda: statuses(state, ranged) == {"beijing-1": (State.SYNCED, second)}, 60)
        assert chart_version(ranged) == "1.0.0"
        assert recorded(state, second) == []
        asked = len(chart_repo.requests)
        eventually(lambda: len(chart_repo.requests) > asked + 1, 30, "the repository asked again")

        # It answers again: both apps get their chart at the same commit, now recorded.
        chart_repo.fail(None)
        eventually(lambda: chart_version(exact) == "1.1.0", 60, "the exact chart deployed")
        eventually(lambda: chart_version(ranged) == "1.1.0", 60, "the range resolved afresh")
        eventually(lambda: statuses(state, exact) == {"beijing-1": (State.SYNCED, second)}, 60)
        assert sorted(recorded(state, second)) == sorted(
            [
                (exact, f"{chart_repo.url} demo", "1.1.0"),
                (ranged, f"{chart_repo.url} demo", "1.1.0"),
            ]
        )
        # Resolved: the repository is not asked again for this commit.
        asked = len(chart_repo.requests)
        time.sleep(4.0)
        assert len(chart_repo.requests) == asked
