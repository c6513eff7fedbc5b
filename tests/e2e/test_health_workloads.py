"""Health on clusters that run workloads (controllers + kwok fake nodes, the ``fleet``): the
daemon judges a Deployment Healthy 3/3, a failing image Degraded within its progress deadline,
a finished Job Healthy, and ``reconciler wait`` exits accordingly."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.health import Health
from reconciler.store.db import Store
from tests.e2e.daemon_rig import API, ConfigRepo, eventually, running_daemon, unique
from tests.e2e.workload_waits import FAILING_IMAGE, IMAGE

CLUSTERS = ("fleet-1", "fleet-2")


@contextmanager
def daemon_lock(state: Path) -> Iterator[None]:
    """What ``reconciler run`` holds while it runs (the in-process daemon does not)."""
    state.mkdir(parents=True, exist_ok=True)
    with (state / "daemon.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


def wait(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "wait", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def deployment(name: str, image: str, replicas: int = 3, deadline: int = 600) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "work", "image": IMAGE}],
                }
            },
        },
    }


def app_of(repo: ConfigRepo, app: str, namespace: str, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        repo.write(
            f"apps/{app}/manifests/{obj['kind'].lower()}-{obj['metadata']['name']}.yaml", obj
        )
    repo.write(
        f"apps/{app}/app.yaml",
        {
            "apiVersion": API,
            "kind": "App",
            "metadata": {"name": app},
            "spec": {
                "namespace": namespace,
                "source": {"manifests": "manifests/"},
                "placement": {"clusters": list(CLUSTERS)},
            },
        },
    )


def health_rows(state: Path, app: str) -> dict[str, Any]:
    with Store.open_readonly(state) as store:
        return {r.cluster: r.health for r in store.list_health(app=app)}


def test_a_deployment_turns_healthy_3_of_3_and_a_job_completes_and_wait_exits_0(
    tmp_path: Path, fleet_kubeconfig: Path, fleet_namespace: str
) -> None:
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(CLUSTERS)
    app = unique("web")
    app_of(repo, app, fleet_namespace, [deployment("web", IMAGE), job("migrate")])
    sha = repo.commit("a deployment and a job")
    state = tmp_path / "state"
    with daemon_lock(state), running_daemon(repo, state, fleet_kubeconfig):
        done = wait("--app", app, "--state-dir", str(state), "--revision", sha, "--timeout", "90s")
        assert done.returncode == 0, done.stdout + done.stderr
        for cluster, health in health_rows(state, app).items():
            judged = {str(o.ref): (o.health, o.reason) for o in health.objects}
            assert judged == {
                f"Deployment.apps/{fleet_namespace}/web": (Health.HEALTHY, "3/3 available"),
                f"Job.batch/{fleet_namespace}/migrate": (Health.HEALTHY, "complete, 1/1 succeeded"),
            }, cluster
            assert health.ready_text == "3/3"


def test_a_failing_image_turns_degraded_within_the_progress_deadline_and_wait_exits_2(
    tmp_path: Path, fleet_kubeconfig: Path, fleet_namespace: str
) -> None:
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(CLUSTERS)
    app = unique("broken")
    app_of(repo, app, fleet_namespace, [deployment("web", FAILING_IMAGE, deadline=10)])
    sha = repo.commit("an image that never starts")
    state = tmp_path / "state"
    with daemon_lock(state), running_daemon(repo, state, fleet_kubeconfig):
        first = eventually(lambda: health_rows(state, app), what="health recorded")
        assert {h.health for h in first.values()} == {Health.PROGRESSING}
        failed = wait(
            "--app", app, "--state-dir", str(state), "--revision", sha, "--timeout", "60s"
        )
        assert failed.returncode == 2, failed.stdout + failed.stderr
        reason = (
            f"Degraded: Deployment.apps/{fleet_namespace}/web 0/3 available "
            "(ProgressDeadlineExceeded)"
        )
        # wait stops when a target fails: whichever cluster's controller got there first (or
        # both, in the same read: then one line naming both)
        [line] = failed.stderr.splitlines()
        where = line.removeprefix(f"error: {app} on ").partition(":")[0]
        failing = where.removeprefix("cluster ").removeprefix("clusters ").split(", ")
        assert line == f"error: {app} on {where}: {reason}"
        assert failing and set(failing) <= set(CLUSTERS)
        cluster = failing[0]
        # Synced all the same: what Git says is what runs, it just does not work.
        assert wait("--app", app, "--for", "synced", "--state-dir", str(state)).returncode == 0
        with Store.open_readonly(state) as store:
            changes = [
                (h.previous, h.health) for h in store.health_history(app=app, cluster=cluster)
            ]
        assert changes == [(Health.PROGRESSING, Health.DEGRADED), (None, Health.PROGRESSING)]
