"""`reconciler run` as a process: SIGTERM stops it cleanly, --once exits 0, a restart continues
from its state."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client

from reconciler.store.db import Store
from reconciler.store.rows import State
from tests.e2e.daemon_rig import (
    CLUSTERS,
    ConfigRepo,
    config_data,
    drift_records,
    events_of,
    eventually,
    http_status,
    reconciler,
    running_daemon,
    status_row_message,
    statuses,
    synced_everywhere,
    unique,
)


def test_sigterm_stops_a_running_daemon_cleanly_within_seconds(
    tmp_path: Path, kubeconfig: Path
) -> None:
    app, namespace, state = unique("term"), unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    repo.app(app, namespace, {"clusters": ["us-west-1"]}, {"v": "1"})
    sha = repo.commit("v1")
    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(repo.root),
             "--state-dir", str(state), "--kubeconfig", str(kubeconfig), "--instance", app,
             "--listen", "127.0.0.1:0", "--interval", "1s", "--drift-interval", "1s"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    try:
        port = eventually(lambda: next((e["port"] for e in events_of(log) if "port" in e), None))
        eventually(lambda: http_status(port, "/readyz") == 200)
        eventually(synced_everywhere(state, app, ("us-west-1",), sha))

        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
    assert any(e["event"] == "daemon stopped" for e in events_of(log))
    conn = sqlite3.connect(state / "state.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_once_applies_every_target_and_exits_0(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, state = unique("cron"), unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    repo.app(app, namespace, {"clusters": list(CLUSTERS)}, {"v": "1"})
    sha = repo.commit("v1")

    done = reconciler(
        "run", "--once", "--repo", str(repo.root), "--state-dir", str(state),
        "--kubeconfig", str(kubeconfig), "--instance", app,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert statuses(state, app) == {c: (State.SYNCED, sha) for c in CLUSTERS}
    for cluster in CLUSTERS:
        assert config_data(api_clients[cluster], namespace, app) == {"v": "1"}


def test_a_restarted_daemon_continues_from_its_state(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, state = unique("restart"), unique("ns"), tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    placement = {"clusters": ["beijing-1"]}
    repo.app(app, namespace, placement, {"v": "1"}, self_heal=False)
    good = repo.commit("v1")
    with running_daemon(repo, state, kubeconfig, instance=app):
        eventually(synced_everywhere(state, app, ("beijing-1",), good))
        client.CoreV1Api(api_clients["beijing-1"]).patch_namespaced_config_map(
            app, namespace, {"data": {"v": "edited"}}, field_manager="kubectl-edit"
        )
        (drift,) = eventually(lambda: drift_records(state, app))
    # While it is down, a broken commit lands.
    app_file = repo.app(app, namespace, placement, {"v": "2"}, self_heal=False)
    app_file.write_text(app_file.read_text().replace("namespace:", "namepsace:"))
    bad = repo.commit("v2, broken")

    again = reconciler(
        "run", "--once", "--repo", str(repo.root), "--state-dir", str(state),
        "--kubeconfig", str(kubeconfig), "--instance", app,
    )  # fmt: skip

    assert again.returncode == 2, again.stderr  # the head revision is invalid
    assert statuses(state, app) == {"beijing-1": (State.INVALID_CONFIG, good)}
    message = status_row_message(state, app, "beijing-1")
    assert message.startswith(f"apps/{app}/app.yaml:")  # only this app's own file is broken
    with Store.open_readonly(state) as store:
        assert store.last_revision() is not None
        assert store.last_revision().sha == bad  # type: ignore[union-attr]
    assert f"{good[:12]} stays applied" in message
    assert "meanwhile Drifted" in message  # the last good revision was drift-checked again
    assert [(r.id, r.open) for r in drift_records(state, app)] == [(drift.id, True)]
    assert config_data(api_clients["beijing-1"], namespace, app) == {"v": "edited"}
