"""Running and observing a daemon against real kube-apiservers and real Git repositories made in
tmp_path: a config repo, a daemon in a thread or as a `reconciler run` subprocess, polling.
"""

from __future__ import annotations

import json
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

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.charts.resolver import ChartResolver
from reconciler.daemon.loop import Daemon
from reconciler.daemon.schedule import Backoff, Settings
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
        return self.app_spec(
            name,
            {
                "namespace": namespace,
                "source": {"manifests": "manifests/"},
                "placement": placement,
                "sync": {"prune": True, "selfHeal": self_heal},
            },
        )

    def app_spec(self, name: str, spec: dict[str, Any]) -> Path:
        """Write the App ``name`` with ``spec`` as its spec."""
        return self.write(
            f"apps/{name}/app.yaml",
            {"apiVersion": API, "kind": "App", "metadata": {"name": name}, "spec": spec},
        )


@contextmanager
def running_daemon(
    repo: ConfigRepo,
    state: Path,
    kubeconfig: Path,
    *,
    instance: str | None = None,
    request_timeout: float = 5.0,
    watch: bool = False,
    drift_interval: float = FAST.drift_interval,
    charts: Callable[[], ChartResolver] | None = None,
    chart_retry_max: float = FAST.chart_retry_max,
) -> Iterator[Daemon]:
    """A daemon in a background thread of this process, stopped (and checked) on exit.

    Its own inventory instance by default, so it never prunes what other tests applied.
    ``watch``: its clients keep live state current through watches. ``charts``: the
    resolver of each revision's remote charts (as ``run`` makes it).
    """
    store = Store.open(state)
    clients = Clients(str(kubeconfig), timeout=request_timeout, watch=watch)
    source = GitSource(str(repo.root), None, state / "source")
    settings = replace(
        FAST,
        instance=instance or unique("test"),
        drift_interval=drift_interval,
        chart_retry_max=chart_retry_max,
    )
    daemon = Daemon(source, store, clients, settings=settings, charts=charts)
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
