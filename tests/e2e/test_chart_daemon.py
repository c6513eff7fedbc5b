"""The daemon with a chart from a Helm repository: the resolved chart is recorded per revision,
a restart renders the same chart without asking the repository, a new commit resolves the range
afresh, and an unreachable repository with the chart cached still deploys."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.chartservers import HelmRepoServer, helm_repo, package, write_chart
from tests.e2e.daemon_rig import API, ConfigRepo, config_data, reconciler, unique


@pytest.fixture
def chart_repo(tmp_path: Path) -> Iterator[HelmRepoServer]:
    with helm_repo(tmp_path / "served") as server:
        for version in ("1.0.0", "1.1.0", "2.0.0"):
            package(write_chart(tmp_path / "src", "demo", version), server.root, tmp_path / "h")
        server.index(tmp_path / "h")
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
        repo.write(
            f"apps/{app}/app.yaml",
            {
                "apiVersion": API,
                "kind": "App",
                "metadata": {"name": app},
                "spec": {
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

    # The repository goes away: the best cached chart the range allows still deploys.
    chart_repo.stop()
    write_app("three")
    third = repo.commit("v3")
    run_once()
    assert deployed() == {"chartVersion": "1.1.5", "greeting": "three", "marker": ""}
    assert recorded(state, third) == [(app, f"{chart_repo.url} demo", "1.1.5")]
