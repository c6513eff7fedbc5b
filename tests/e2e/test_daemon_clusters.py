"""A stopped API server is unreachable while the other clusters proceed, and it recovers."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.devenv import controlplane
from reconciler.store.rows import State
from tests.e2e.daemon_rig import (
    ConfigRepo,
    eventually,
    running_daemon,
    status_row_message,
    statuses,
    synced_everywhere,
    unique,
)


@pytest.fixture
def edge_clusters(tmp_path: Path) -> Iterator[controlplane.DevEnvState]:
    """A control plane of its own: this test stops one of its API servers."""
    directory = tmp_path / "edge-controlplane"
    state = controlplane.start(
        directory, ["edge-a", "edge-b"], controlplane.Launch(die_with_parent=True)
    )
    try:
        yield state
    finally:
        for cluster in state.clusters:
            os.kill(cluster.pid, signal.SIGCONT)
        controlplane.stop(directory)


def test_a_stopped_cluster_is_unreachable_while_the_others_proceed_and_it_recovers(
    tmp_path: Path, edge_clusters: controlplane.DevEnvState
) -> None:
    app, namespace, state = unique("edge"), unique("ns"), tmp_path / "state"
    kubeconfig = Path(edge_clusters.kubeconfig)
    edges = ("edge-a", "edge-b")
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(edges)
    repo.app(app, namespace, {"clusters": list(edges)}, {"v": "1"})
    first = repo.commit("v1")
    edge_b = next(c for c in edge_clusters.clusters if c.name == "edge-b")

    with running_daemon(repo, state, kubeconfig, request_timeout=1.0):
        eventually(synced_everywhere(state, app, edges, first))

        os.kill(edge_b.pid, signal.SIGSTOP)
        try:
            repo.app(app, namespace, {"clusters": list(edges)}, {"v": "2"})
            second = repo.commit("v2")
            started = time.monotonic()
            eventually(lambda: statuses(state, app).get("edge-a") == (State.SYNCED, second))
            assert time.monotonic() - started < 5, "edge-a waited for the stopped edge-b"
            eventually(lambda: statuses(state, app)["edge-b"][0] is State.UNREACHABLE)
            assert "timed out" in status_row_message(state, app, "edge-b")
        finally:
            os.kill(edge_b.pid, signal.SIGCONT)

        eventually(synced_everywhere(state, app, edges, second), timeout=30)
