"""Progressive rollouts on five clusters that run workloads (controllers + kwok).

The daemon runs as a `reconciler run` subprocess (so it can be SIGKILLed), each test with its
own instance and namespace; a sampler reads the rollout from the store as the CLI would, and
every claim is checked on what it saw and on the live Deployments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.rollout.codec import state_from_data
from reconciler.rollout.model import IN_FLIGHT, ClusterPhase, RolloutPhase, RolloutState
from reconciler.store.db import Store
from tests.e2e.conftest import FLEET
from tests.e2e.daemon_rig import ConfigRepo, eventually, unique
from tests.e2e.workload_waits import FAILING_IMAGE, deployment

V1 = "registry.example/hello:1.0"
V2 = "registry.example/hello:2.0"
V3 = "registry.example/hello:3.0"
LABELS = {
    "fleet-1": {"ring": "canary"},
    "fleet-2": {"ring": "early"},
    "fleet-3": {"ring": "early"},
    "fleet-4": {"ring": "late"},
    "fleet-5": {"ring": "late"},
}
EARLY = {"selector": {"matchLabels": {"ring": "early"}}}
LATE = {"selector": {"matchLabels": {"ring": "late"}}}


def write_app(repo: ConfigRepo, app: str, namespace: str, image: str, rollout: Any) -> None:
    repo.write(f"apps/{app}/manifests/deployment.yaml", deployment(app, replicas=2, image=image))
    repo.write(
        f"apps/{app}/app.yaml",
        {
            "apiVersion": "reconciler.io/v1alpha1",
            "kind": "App",
            "metadata": {"name": app},
            "spec": {
                "namespace": namespace,
                "source": {"manifests": "manifests/"},
                "placement": {"clusters": list(FLEET)},
                "rollout": rollout,
            },
        },
    )


def images(clients: dict[str, client.ApiClient], app: str, namespace: str) -> dict[str, str]:
    """cluster -> the live Deployment's image ("" when it does not exist)."""
    out = {}
    for name in FLEET:
        try:
            live = client.AppsV1Api(clients[name]).read_namespaced_deployment(app, namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            out[name] = ""
            continue
        out[name] = live.spec.template.spec.containers[0].image
    return out


def everywhere(image: str) -> dict[str, str]:
    return dict.fromkeys(FLEET, image)


class Daemon:
    """`reconciler run` as a subprocess, restartable, killed at the end whatever happens."""

    def __init__(self, repo: ConfigRepo, state: Path, kubeconfig: Path, instance: str) -> None:
        self.args = [
            sys.executable, "-m", "reconciler", "run", "--repo", str(repo.root),
            "--state-dir", str(state), "--kubeconfig", str(kubeconfig), "--instance", instance,
            "--listen", "127.0.0.1:0", "--interval", "1s", "--drift-interval", "5s",
            "--health-interval", "1s", "--request-timeout", "3s", "--cluster-timeout", "20s",
        ]  # fmt: skip
        self.state = state
        self.log = state.parent / f"{instance}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as err:
            self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=err)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@contextmanager
def daemon(repo: ConfigRepo, state: Path, kubeconfig: Path, instance: str) -> Iterator[Daemon]:
    running = Daemon(repo, state, kubeconfig, instance)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def rollouts(state: Path, app: str) -> list[RolloutState]:
    """Every rollout of ``app``, oldest first, read as the CLI reads them."""
    if not (state / "state.db").exists():
        return []
    with Store.open_readonly(state) as store:
        return [state_from_data(r.data) for r in reversed(store.list_rollouts(app))]


def latest(state: Path, app: str) -> RolloutState | None:
    found = rollouts(state, app)
    return found[-1] if found else None


def phase_is(state: Path, app: str, *phases: RolloutPhase) -> bool:
    current = latest(state, app)
    return current is not None and current.phase in phases


class Sampler:
    """Reads an app's newest rollout from the store every 0.2 s in a thread."""

    def __init__(self, state: Path, app: str) -> None:
        self.state, self.app = state, app
        self.samples: list[RolloutState] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                current = latest(self.state, self.app)
            except Exception:  # the daemon is writing its first schema: try again
                current = None
            if current is not None and (not self.samples or self.samples[-1] != current):
                self.samples.append(current)
            self._stop.wait(0.2)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_good_image_goes_stage_by_stage_gated_and_survives_sigkill(
    tmp_path: Path, fleet_kubeconfig: Path, fleet_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, state = unique("good"), unique("ns"), tmp_path / "state"
    strategy = {
        "canary": {"clusters": ["fleet-1"], "minHealthyTime": "3s"},
        "stages": [
            {"name": "early", "target": EARLY, "maxConcurrent": 1, "interval": "2s"},
            {"name": "late", "target": LATE, "approval": "manual"},
        ],
        "progressDeadline": "2m",
    }
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(FLEET, LABELS)
    write_app(repo, app, namespace, V1, strategy)
    repo.commit("v1")

    with daemon(repo, state, fleet_kubeconfig, app) as running:
        # A first deploy goes everywhere at once.
        eventually(lambda: images(fleet_clients, app, namespace) == everywhere(V1), timeout=120)
        assert rollouts(state, app) == []

        write_app(repo, app, namespace, V2, strategy)
        v2 = repo.commit("v2")
        with Sampler(state, app) as sampler:
            # SIGKILL while stage early is in flight; a new daemon resumes there.
            eventually(
                lambda: (
                    (r := latest(state, app)) is not None
                    and r.cluster("fleet-2").phase in IN_FLIGHT
                ),
                timeout=120,
                what="fleet-2 in flight",
            )
            killed_at = latest(state, app)
            running.kill()
            running.start()
            eventually(
                lambda: phase_is(state, app, RolloutPhase.WAITING_APPROVAL),
                timeout=180,
                what="stage late waiting for approval",
            )
            waiting = images(fleet_clients, app, namespace)
            assert waiting == {**everywhere(V2), "fleet-4": V1, "fleet-5": V1}
            time.sleep(4)
            assert phase_is(state, app, RolloutPhase.WAITING_APPROVAL)
            assert images(fleet_clients, app, namespace) == waiting
            asked = time.time()
            approved = cli("rollout", "approve", app, "--state-dir", str(state), "--user", "ops")
            assert approved.returncode == 0, approved.stderr
            answered = time.time()
            eventually(
                lambda: phase_is(state, app, RolloutPhase.SUCCEEDED), timeout=180, what="done"
            )
        assert images(fleet_clients, app, namespace) == everywhere(V2)

    done = latest(state, app)
    assert done is not None and done.revision == v2
    samples = sampler.samples
    assert killed_at is not None and samples
    # Never more than maxConcurrent clusters of a stage in flight at once.
    for sample in samples:
        for index, stage in enumerate(sample.plan.stages):
            busy = [c for c in sample.clusters if c.stage == index and c.phase in IN_FLIGHT]
            assert len(busy) <= stage.max_concurrent, (stage.name, busy)
    # Stage by stage, in order; no stage skipped or repeated across the SIGKILL.
    assert [s.stage for s in samples] == sorted(s.stage for s in samples)
    started = {c.cluster: c.started_at for c in done.clusters}
    assert all(t is not None for t in started.values())
    order = sorted(FLEET, key=lambda c: started[c] or 0.0)
    assert order[:3] == ["fleet-1", "fleet-2", "fleet-3"]
    assert started["fleet-4"] == started["fleet-5"]  # one batch: maxConcurrent 100%
    for cluster in ("fleet-1", "fleet-2"):
        assert killed_at.cluster(cluster).started_at == started[cluster]  # never re-applied
    for sample in samples:
        for c in sample.clusters:
            if c.started_at is not None:
                assert c.started_at == started[c.cluster]
    # Soak and interval.
    canary = done.cluster("fleet-1")
    assert canary.healthy_since is not None and canary.finished_at is not None
    assert canary.finished_at - canary.healthy_since >= 3
    fleet2, fleet3 = done.cluster("fleet-2"), done.cluster("fleet-3")
    assert fleet2.finished_at is not None and fleet3.started_at is not None
    assert fleet3.started_at >= fleet2.finished_at + 2
    # The approval, with who and when.
    approval = done.approved("late")
    assert approval is not None and approval.user == "ops"
    assert asked <= approval.at <= answered  # recorded when the command ran
    assert (started["fleet-4"] or 0) >= approval.at


def test_a_failing_image_halts_at_the_canary_or_rolls_it_back(
    tmp_path: Path, fleet_kubeconfig: Path, fleet_clients: dict[str, client.ApiClient]
) -> None:
    halt, back, state = unique("halt"), unique("back"), tmp_path / "state"
    namespace = unique("ns")

    def strategy(on_failure: str) -> dict[str, Any]:
        return {
            "canary": {"clusters": ["fleet-1"]},
            "stages": [{"name": "rest", "target": {"clusters": list(FLEET[1:])}}],
            "progressDeadline": "20s",
            "onFailure": on_failure,
        }

    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(FLEET, LABELS)
    write_app(repo, halt, namespace, V1, strategy("halt"))
    write_app(repo, back, namespace, V1, strategy("rollback"))
    repo.commit("v1")
    with daemon(repo, state, fleet_kubeconfig, halt):
        for app in (halt, back):
            eventually(lambda a=app: images(fleet_clients, a, namespace) == everywhere(V1), 120)
        write_app(repo, halt, namespace, FAILING_IMAGE, strategy("halt"))
        write_app(repo, back, namespace, FAILING_IMAGE, strategy("rollback"))
        repo.commit("a failing image")
        eventually(lambda: phase_is(state, halt, RolloutPhase.HALTED), timeout=120, what="halt")
        eventually(lambda: phase_is(state, back, RolloutPhase.ROLLED_BACK), 120, "rolled back")
        eventually(
            lambda: images(fleet_clients, back, namespace) == everywhere(V1),
            timeout=60,
            what="the canary's old image back",
        )
        time.sleep(3)
        assert images(fleet_clients, halt, namespace) == {
            **everywhere(V1),
            "fleet-1": FAILING_IMAGE,
        }
    halted = latest(state, halt)
    assert halted is not None
    assert halted.cluster("fleet-1").phase == ClusterPhase.FAILED
    reason = halted.cluster("fleet-1").reason
    assert "after the progress deadline" in reason or reason.startswith("Degraded"), reason
    assert all(halted.cluster(c).phase == ClusterPhase.PENDING for c in FLEET[1:])
    rolled = latest(state, back)
    assert rolled is not None and rolled.cluster("fleet-1").phase == ClusterPhase.ROLLED_BACK
    status = cli("rollout", "status", halt, "--state-dir", str(state))
    assert status.returncode == 0 and "Halted" in status.stdout


@pytest.fixture
def breakable_kubeconfig(tmp_path: Path, fleet_kubeconfig: Path) -> Path:
    """A copy of the fleet's kubeconfig the test may point at a dead port."""
    copy = tmp_path / "kubeconfig"
    copy.write_text(fleet_kubeconfig.read_text())
    os.chmod(copy, 0o600)
    return copy


def break_cluster(kubeconfig: Path, cluster: str) -> None:
    """Point ``cluster`` at a closed loopback port (the daemon reloads a changed kubeconfig)."""
    config = yaml.safe_load(kubeconfig.read_text())
    for entry in config["clusters"]:
        if entry["name"] == cluster:
            entry["cluster"]["server"] = "https://127.0.0.1:1"
    kubeconfig.write_text(yaml.safe_dump(config))


def test_a_newer_commit_supersedes_and_an_unreachable_cluster_fails_after_the_deadline(
    tmp_path: Path, breakable_kubeconfig: Path, fleet_clients: dict[str, client.ApiClient]
) -> None:
    app, namespace, state = unique("newer"), unique("ns"), tmp_path / "state"
    strategy = {
        "canary": {"clusters": ["fleet-1"]},
        "stages": [
            {"name": "early", "target": EARLY, "approval": "manual"},
            {"name": "late", "target": LATE, "maxFailures": 1, "progressDeadline": "15s"},
        ],
    }
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(FLEET, LABELS)
    write_app(repo, app, namespace, V1, strategy)
    repo.commit("v1")
    with daemon(repo, state, breakable_kubeconfig, app):
        eventually(lambda: images(fleet_clients, app, namespace) == everywhere(V1), timeout=120)
        write_app(repo, app, namespace, V2, strategy)
        v2 = repo.commit("v2")
        eventually(lambda: phase_is(state, app, RolloutPhase.WAITING_APPROVAL), 120, "approval")
        write_app(repo, app, namespace, V3, strategy)
        v3 = repo.commit("v3")
        eventually(
            lambda: (
                (r := latest(state, app)) is not None
                and r.revision == v3
                and r.phase == RolloutPhase.WAITING_APPROVAL
            ),
            timeout=120,
            what="v3 waiting at the same gate",
        )
        assert images(fleet_clients, app, namespace) == {**everywhere(V1), "fleet-1": V3}
        old, new = rollouts(state, app)
        assert (old.revision, old.phase) == (v2, RolloutPhase.SUPERSEDED)
        assert new.cluster("fleet-1").base == v2  # from the stage it had reached: the canary
        assert new.cluster("fleet-2").base != v2

        # fleet-5 becomes unreachable: it fails after the deadline, fleet-4 does not wait.
        break_cluster(breakable_kubeconfig, "fleet-5")
        approved = cli("rollout", "approve", app, "--stage", "early", "--state-dir", str(state))
        assert approved.returncode == 0, approved.stderr
        eventually(lambda: images(fleet_clients, app, namespace)["fleet-4"] == V3, 120, "fleet-4")
        eventually(lambda: phase_is(state, app, RolloutPhase.SUCCEEDED), 120, "done")
    done = latest(state, app)
    assert done is not None
    fleet5 = done.cluster("fleet-5")
    assert fleet5.phase == ClusterPhase.FAILED and "unreachable" in fleet5.reason, fleet5
    assert fleet5.finished_at is not None and fleet5.started_at is not None
    assert fleet5.finished_at - fleet5.started_at >= 15
    assert done.cluster("fleet-4").phase == ClusterPhase.SUCCEEDED
    assert images(fleet_clients, app, namespace)["fleet-5"] == V1
