"""Health and ``reconciler wait`` against real kube-apiservers (no controllers run on these:
CRDs become Established by the API server itself, custom resources carry the status the test
gives them, Deployments stay Progressing)."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.health import Health
from reconciler.store.db import Store
from tests.e2e.daemon_rig import API, ConfigRepo, eventually, running_daemon, unique

CLUSTER = "beijing-1"


@contextmanager
def daemon_lock(state: Path) -> Iterator[None]:
    """What ``reconciler run`` holds while it runs (the in-process daemon does not)."""
    state.mkdir(parents=True, exist_ok=True)
    with (state / "daemon.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


def wait(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "wait", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def widget_app(repo: ConfigRepo, app: str, namespace: str, group: str, phase: str) -> None:
    crd: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    # No status subresource: the manifest's status is stored as given.
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "blue"},
        # The diff ignores status: a spec change makes the apply send the new status too.
        "spec": {"size": 3 if phase == "Ready" else 4},
        "status": {"phase": phase, "message": f"widget is {phase.lower()}"},
    }
    repo.write(f"apps/{app}/manifests/crd.yaml", crd)
    repo.write(f"apps/{app}/manifests/widget.yaml", widget)
    repo.write(
        f"apps/{app}/app.yaml",
        {
            "apiVersion": API,
            "kind": "App",
            "metadata": {"name": app},
            "spec": {
                "namespace": namespace,
                "source": {"manifests": "manifests/"},
                "placement": {"clusters": [CLUSTER]},
                "health": [
                    {
                        "kind": "Widget",
                        "group": group,
                        "healthy": "object.status.phase == 'Ready'",
                        "degraded": "object.status.phase == 'Failed'",
                        "message": "object.status.message",
                    }
                ],
            },
        },
    )


def health_of(state: Path, app: str) -> Any:
    with Store.open_readonly(state) as store:
        rows = store.list_health(app=app, cluster=CLUSTER)
    return rows[0] if rows else None


def test_a_cel_rule_decides_a_custom_resource_and_wait_exits_0_then_2(
    tmp_path: Path, kubeconfig: Path, namespace: str
) -> None:
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters((CLUSTER,))
    app, group = unique("widgets"), f"t{uuid.uuid4().hex[:8]}.example.com"
    widget_app(repo, app, namespace, group, "Ready")
    first = repo.commit("a ready widget")
    state = tmp_path / "state"
    with daemon_lock(state), running_daemon(repo, state, kubeconfig):
        done = wait("--app", app, "--state-dir", str(state), "--revision", first[:10])
        assert done.returncode == 0, done.stderr
        assert (
            done.stdout.splitlines()[-1]
            == f"{app} is healthy at {first[:10]} on 1 cluster(s): {CLUSTER}"
        )
        row = health_of(state, app)
        judged = {str(o.ref): (o.health, o.reason) for o in row.health.objects}
        assert judged == {
            f"CustomResourceDefinition.apiextensions.k8s.io/widgets.{group}": (
                Health.HEALTHY,
                "Established",
            ),
            f"Widget.{group}/{namespace}/blue": (Health.HEALTHY, "widget is ready"),
        }

        widget_app(repo, app, namespace, group, "Failed")
        second = repo.commit("the widget fails")
        failed = wait("--app", app, "--state-dir", str(state), "--revision", second)
        assert failed.returncode == 2
        assert failed.stderr == (
            f"error: {app} on cluster {CLUSTER}: Degraded: Widget.{group}/{namespace}/blue"
            " widget is failed\n"
        )
        # Synced it is, though: sync and health are separate.
        synced = wait("--app", app, "--for", "synced", "--state-dir", str(state))
        assert synced.returncode == 0, synced.stderr
        history = []
        with Store.open_readonly(state) as store:
            history = [(h.previous, h.health) for h in store.health_history(app=app)]
        assert history[0] == (Health.HEALTHY, Health.DEGRADED)


def test_a_deployment_nothing_runs_stays_progressing_and_wait_times_out_with_exit_1(
    tmp_path: Path, kubeconfig: Path, namespace: str
) -> None:
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters((CLUSTER,))
    app = unique("web")
    repo.write(
        f"apps/{app}/manifests/deploy.yaml",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
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
                "placement": {"clusters": [CLUSTER]},
            },
        },
    )
    repo.commit("a deployment")
    state = tmp_path / "state"
    with daemon_lock(state), running_daemon(repo, state, kubeconfig):
        row = eventually(lambda: health_of(state, app), what="health recorded")
        assert str(row.health) == (
            f"Progressing: Deployment.apps/{namespace}/web waiting for the controller to "
            "report status"
        )
        late = wait("--app", app, "--state-dir", str(state), "--timeout", "2s")
        assert late.returncode == 1
        assert late.stderr.splitlines() == [
            f"timed out after 2s: {app} is not healthy on 1 of 1 cluster(s)",
            f"  {app} on cluster {CLUSTER}: Progressing: Deployment.apps/{namespace}/web waiting "
            "for the controller to report status",
        ]
        assert wait("--app", app, "--for", "synced", "--state-dir", str(state)).returncode == 0
        status = subprocess.run(
            [sys.executable, "-m", "reconciler", "status", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        line = next(line for line in status.splitlines() if line.startswith(app))
        assert line.split() == [app, CLUSTER, "Synced", "Progressing", "0/3", line.split()[-1]]
