"""The daemon against real kube-apiservers and real Git repositories made in tmp_path.

Each test has its own apps, namespaces, repo and state dir. Daemons run in a thread of the
test process (fast intervals) or as a `reconciler run` subprocess where the process itself is
under test (signals, restart, --once).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.cli.main import cli
from reconciler.daemon.loop import Daemon
from reconciler.daemon.schedule import Backoff, Settings
from reconciler.devenv import controlplane
from reconciler.kube.pool import Clients
from reconciler.source import GitSource
from reconciler.store.db import Store
from reconciler.store.rows import DriftRow, State

T = TypeVar("T")
CLUSTERS = ("beijing-1", "beijing-2", "us-west-1")
FAST = Settings(
    interval=1.0,
    drift_interval=1.0,
    jitter=0.1,
    backoff=Backoff(initial=0.5, factor=2.0, maximum=2.0),
    cluster_timeout=30.0,
    shutdown_grace=3.0,
)
API = "reconciler.io/v1alpha1"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---- a real Git config repo -------------------------------------------------------------------


class ConfigRepo:
    """A Git repository in a temp dir holding a config repo; ``commit`` returns the sha."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        identity = ["-c", "user.name=test", "-c", "user.email=test@example.test"]
        return subprocess.run(
            ["git", "-C", str(self.root), *identity, *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def write(self, rel: str, doc: dict[str, Any] | str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
        return path

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def clusters(
        self, names: tuple[str, ...] = CLUSTERS, labels: dict[str, dict[str, str]] | None = None
    ) -> None:
        for name in names:
            self.write(
                f"clusters/{name}.yaml",
                {
                    "apiVersion": API,
                    "kind": "Cluster",
                    "metadata": {"name": name, "labels": (labels or {}).get(name, {})},
                },
            )

    def app(
        self,
        name: str,
        namespace: str,
        placement: dict[str, Any],
        data: dict[str, str],
        *,
        self_heal: bool = True,
    ) -> Path:
        self.write(
            f"apps/{name}/manifests/config.yaml",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data},
        )
        return self.write(
            f"apps/{name}/app.yaml",
            {
                "apiVersion": API,
                "kind": "App",
                "metadata": {"name": name},
                "spec": {
                    "namespace": namespace,
                    "source": {"manifests": "manifests/"},
                    "placement": placement,
                    "sync": {"prune": True, "selfHeal": self_heal},
                },
            },
        )


# ---- running and observing a daemon -------------------------------------------------------------


@contextmanager
def running_daemon(
    repo: ConfigRepo,
    state: Path,
    kubeconfig: Path,
    *,
    instance: str | None = None,
    request_timeout: float = 5.0,
) -> Iterator[Daemon]:
    """A daemon in a background thread of this process, stopped (and checked) on exit.

    Its own inventory instance by default, so it never prunes what other tests applied.
    """
    store = Store.open(state)
    clients = Clients(str(kubeconfig), timeout=request_timeout)
    source = GitSource(str(repo.root), None, state / "source")
    settings = replace(FAST, instance=instance or unique("test"))
    daemon = Daemon(source, store, clients, settings=settings)
    thread = threading.Thread(target=daemon.run, name="daemon-under-test", daemon=True)
    thread.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        thread.join(timeout=15)
        alive = thread.is_alive()
        daemon.close()
        store.close()
        clients.close()
        assert not alive, "the daemon did not stop within 15s"


def eventually(check: Callable[[], T], timeout: float = 20.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what or check}; last: {value!r}")
        time.sleep(0.1)


def statuses(state: Path, app: str) -> dict[str, tuple[State, str | None]]:
    """cluster -> (state, revision) of ``app``, read as the CLI reads it."""
    with Store.open_readonly(state) as store:
        return {r.cluster: (r.state, r.revision) for r in store.list_status() if r.app == app}


def status_row_message(state: Path, app: str, cluster: str) -> str:
    with Store.open_readonly(state) as store:
        return next(r.message for r in store.list_status() if (r.app, r.cluster) == (app, cluster))


def drift_records(state: Path, app: str) -> list[DriftRow]:
    with Store.open_readonly(state) as store:
        return store.list_drift(app=app)


def config_data(api: client.ApiClient, namespace: str, name: str) -> dict[str, str] | None:
    try:
        found = client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return dict(found.data or {})


def synced_everywhere(
    state: Path, app: str, clusters: tuple[str, ...], sha: str
) -> Callable[[], bool]:
    return lambda: statuses(state, app) == {c: (State.SYNCED, sha) for c in clusters}


def reconciler(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ---- tests ----------------------------------------------------------------------------------


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


def test_an_edit_on_a_cluster_becomes_drift_with_manager_and_field_and_self_heal_corrects_it(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    healed, kept, namespace = unique("healed"), unique("kept"), unique("ns")
    state = tmp_path / "state"
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    on_b2 = {"clusters": ["beijing-2"]}
    repo.app(healed, namespace, on_b2, {"mode": "git"}, self_heal=True)
    repo.app(kept, namespace, on_b2, {"mode": "git"}, self_heal=False)
    sha = repo.commit("two apps")
    core = client.CoreV1Api(api_clients["beijing-2"])

    with running_daemon(repo, state, kubeconfig):
        for app in (healed, kept):
            eventually(synced_everywhere(state, app, ("beijing-2",), sha))
            core.patch_namespaced_config_map(
                app, namespace, {"data": {"mode": "edited"}}, field_manager="kubectl-edit"
            )
        edited_at = time.monotonic()

        corrected = eventually(
            lambda: [r for r in drift_records(state, healed) if not r.open],
            timeout=FAST.drift_interval + 5,
        )
        assert config_data(api_clients["beijing-2"], namespace, healed) == {"mode": "git"}
        (open_drift,) = eventually(
            lambda: drift_records(state, kept), timeout=FAST.drift_interval + 5
        )
        assert time.monotonic() - edited_at < FAST.drift_interval + 5
        for record in (corrected[0], open_drift):
            assert (record.cluster, record.kind, record.revision) == ("beijing-2", "modified", sha)
            (field,) = record.fields
            assert (field.path, field.git, field.live) == ("data.mode", "git", "edited")
            assert field.manager == "kubectl-edit"
            assert field.time is not None
        assert open_drift.open
        assert open_drift.object == f"ConfigMap/{namespace}/{kept}"

        time.sleep(FAST.drift_interval * 2)  # later checks neither heal it nor record it again
        assert config_data(api_clients["beijing-2"], namespace, kept) == {"mode": "edited"}
        assert [r.id for r in drift_records(state, kept)] == [open_drift.id]
        assert statuses(state, kept) == {"beijing-2": (State.DRIFTED, sha)}
        assert "modified by kubectl-edit" in status_row_message(state, kept, "beijing-2")
        assert statuses(state, healed) == {"beijing-2": (State.SYNCED, sha)}

    listed = CliRunner().invoke(cli, ["drift", "--state-dir", str(state), "--app", kept])
    assert listed.exit_code == 1
    assert "kubectl-edit" in listed.stdout
    healed_only = CliRunner().invoke(cli, ["drift", "--state-dir", str(state), "--app", healed])
    assert healed_only.exit_code == 0


@pytest.fixture
def edge_clusters(tmp_path: Path) -> Iterator[controlplane.DevEnvState]:
    """A control plane of its own: this test stops one of its API servers."""
    directory = tmp_path / "edge-controlplane"
    state = controlplane.start(directory, ["edge-a", "edge-b"], die_with_parent=True)
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


def events_of(log: Path) -> list[dict[str, Any]]:
    """The JSON log lines written so far (a line being written is skipped)."""
    events = []
    for line in log.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


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
    assert message.startswith(f"revision {bad[:12]} invalid: apps/{app}/app.yaml:")
    assert f"{good[:12]} stays applied" in message
    assert "meanwhile Drifted" in message  # the last good revision was drift-checked again
    assert [(r.id, r.open) for r in drift_records(state, app)] == [(drift.id, True)]
    assert config_data(api_clients["beijing-1"], namespace, app) == {"v": "edited"}
