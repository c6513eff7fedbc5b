"""The daemon follows commits on real clusters: applied where placed, moved by a label change, a
broken commit skipped while the previous revision stays applied."""

from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner
from kubernetes import client

from reconciler.cli.main import cli
from reconciler.store.rows import State
from tests.e2e.daemon_rig import (
    CLUSTERS,
    FAST,
    ConfigRepo,
    config_data,
    eventually,
    running_daemon,
    statuses,
    synced_everywhere,
    unique,
)


def test_a_commit_is_applied_on_every_placed_cluster_and_nowhere_else(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, state = unique("greeter"), unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    placement = {"clusters": ["beijing-1", "us-west-1"]}
    repo.app(app, namespace, placement, {"greeting": "hello"})
    first = repo.commit("greeter: hello")

    with running_daemon(repo, state, kubeconfig):
        eventually(synced_everywhere(state, app, ("beijing-1", "us-west-1"), first))
        for cluster in ("beijing-1", "us-west-1"):
            assert config_data(api_clients[cluster], namespace, app) == {"greeting": "hello"}
        assert config_data(api_clients["beijing-2"], namespace, app) is None

        repo.app(app, namespace, placement, {"greeting": "bonjour"})
        second = repo.commit("greeter: bonjour")
        eventually(synced_everywhere(state, app, ("beijing-1", "us-west-1"), second))
        for cluster in ("beijing-1", "us-west-1"):
            assert config_data(api_clients[cluster], namespace, app) == {"greeting": "bonjour"}
        assert config_data(api_clients["beijing-2"], namespace, app) is None


def test_a_label_change_on_a_cluster_moves_the_app_there(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, state = unique("mover"), unique("ns"), tmp_path / "state"
    key = unique("canary")
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(labels={"beijing-1": {key: "yes"}})
    repo.app(app, namespace, {"selector": {"matchLabels": {key: "yes"}}}, {"where": "canary"})
    first = repo.commit("canary on beijing-1")

    with running_daemon(repo, state, kubeconfig):
        eventually(synced_everywhere(state, app, ("beijing-1",), first))
        assert config_data(api_clients["beijing-1"], namespace, app) == {"where": "canary"}

        repo.clusters(labels={"beijing-2": {key: "yes"}})
        second = repo.commit("canary moves to beijing-2")
        eventually(synced_everywhere(state, app, ("beijing-2",), second))
        assert config_data(api_clients["beijing-2"], namespace, app) == {"where": "canary"}
        eventually(lambda: config_data(api_clients["beijing-1"], namespace, app) is None)
        assert config_data(api_clients["us-west-1"], namespace, app) is None


def test_a_broken_commit_keeps_the_previous_revision_and_the_next_good_commit_applies(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, state = unique("steady"), unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    placement = {"clusters": list(CLUSTERS)}
    repo.app(app, namespace, placement, {"version": "1"})
    good = repo.commit("v1")

    with running_daemon(repo, state, kubeconfig):
        eventually(synced_everywhere(state, app, CLUSTERS, good))

        app_file = repo.app(app, namespace, placement, {"version": "2"})
        app_file.write_text(app_file.read_text().replace("placement:", "placment:"))
        line = app_file.read_text().splitlines().index("  placment:") + 1
        bad = repo.commit("v2, with a typo")
        eventually(
            lambda: statuses(state, app) == {c: (State.INVALID_CONFIG, good) for c in CLUSTERS}
        )
        result = CliRunner().invoke(cli, ["status", "--state-dir", str(state)])
        assert result.exit_code == 0
        located = f"apps/{app}/app.yaml:{line}: spec.placment: unknown field 'placment'"
        assert located in result.stdout
        assert f"Revision {bad[:12]}" in result.stdout
        assert f"{good[:12]} stays applied" in result.stdout
        time.sleep(FAST.drift_interval * 2)  # passes keep running: on the last good revision
        for cluster in CLUSTERS:
            assert config_data(api_clients[cluster], namespace, app) == {"version": "1"}

        repo.app(app, namespace, placement, {"version": "3"})
        fixed = repo.commit("v3, typo fixed")
        eventually(synced_everywhere(state, app, CLUSTERS, fixed))
        for cluster in CLUSTERS:
            assert config_data(api_clients[cluster], namespace, app) == {"version": "3"}
