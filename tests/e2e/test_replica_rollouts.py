"""Three `reconciler run` replicas share three real clusters through Leases on a management
cluster (one of the devenv API servers): `reconciler status` reads every replica's published
status in one place, and a staged rollout whose stages are worked by different replicas advances
across them; an approval given once works, and killing the replica that drives the rollout lets
another one continue from exactly where it was.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.cli.main import cli
from reconciler.daemon.shards import owner_of
from reconciler.kube.client import ClusterClient
from reconciler.kube.management import SharedObjects
from reconciler.published.rollout import SharedRollout, decode
from reconciler.rollout.model import ClusterPhase, RolloutPhase
from tests.e2e.conftest import CLUSTERS
from tests.e2e.daemon_rig import ConfigRepo, events_of, eventually, unique

MANAGEMENT = "beijing-1"
LEASE = ["--shard-lease-duration", "4s", "--shard-renew-period", "1s"]


class Replica:
    """`reconciler run` sharing the fleet, as a subprocess (so it can be SIGKILLed)."""

    def __init__(
        self, ident: str, repo: ConfigRepo, tmp: Path, kubeconfig: Path, ns: str, instance: str
    ) -> None:
        self.ident = ident
        self.log = tmp / f"{ident}.log"
        self.args = [
            sys.executable, "-m", "reconciler", "run", "--repo", str(repo.root),
            "--state-dir", str(tmp / ident), "--kubeconfig", str(kubeconfig),
            "--instance", instance, "--listen", "127.0.0.1:0", "--interval", "1s",
            "--drift-interval", "5s", "--health-interval", "1s", "--request-timeout", "3s",
            "--shard-lease-namespace", ns, "--management-context", MANAGEMENT,
            "--replica-id", ident, *LEASE,
        ]  # fmt: skip
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


def choose_replicas(app: str) -> tuple[list[str], dict[str, str], str]:
    """Replica names for which the first stage's cluster and the second stage's first cluster
    belong to different replicas, the driver of ``app`` works neither the first stage (it reads
    that cluster's health from another replica's published status) nor nothing (killing it
    moves a cluster of the second stage)."""
    first, second, third = CLUSTERS[1], CLUSTERS[2], CLUSTERS[0]
    for attempt in range(10_000):
        names = [f"r{attempt}-{n}" for n in ("a", "b", "c")]
        owners = {c: owner_of(c, names) for c in CLUSTERS}
        driver = owner_of(app, names)
        assert driver is not None
        if (
            owners[first] != owners[second]
            and driver != owners[first]
            and driver in (owners[second], owners[third])
        ):
            return names, {c: str(o) for c, o in owners.items()}, driver
    raise AssertionError("no replica names found")


def write_app(repo: ConfigRepo, app: str, namespace: str, version: str) -> None:
    repo.write(
        f"apps/{app}/manifests/config.yaml",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": app},
            "data": {"v": version},
        },
    )
    repo.write(
        f"apps/{app}/app.yaml",
        {
            "apiVersion": "reconciler.io/v1alpha1",
            "kind": "App",
            "metadata": {"name": app},
            "spec": {
                "namespace": namespace,
                "source": {"manifests": "manifests/"},
                "placement": {"clusters": list(CLUSTERS)},
                "rollout": {
                    "stages": [
                        {"name": "one", "target": {"clusters": [CLUSTERS[1]]}},
                        {
                            "name": "two",
                            "target": {"clusters": [CLUSTERS[2], CLUSTERS[0]]},
                            "approval": "manual",
                        },
                    ],
                    "progressDeadline": "2m",
                },
            },
        },
    )


def live_versions(
    api_clients: dict[str, client.ApiClient], app: str, namespace: str
) -> dict[str, str]:
    out = {}
    for name in CLUSTERS:
        try:
            live = client.CoreV1Api(api_clients[name]).read_namespaced_config_map(app, namespace)
        except ApiException as err:
            if err.status != 404:
                raise
            out[name] = ""
            continue
        out[name] = (live.data or {}).get("v", "")
    return out


def metrics_of(replica: Replica) -> str:
    """The replica's /metrics (its port is in its log's "listening" line)."""
    port = next(e["port"] for e in events_of(replica.log) if e.get("event") == "listening")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_replicas_share_status_and_a_staged_rollout_survives_killing_its_driver(
    tmp_path: Path, kubeconfig: Path, namespace: str, api_clients: dict[str, client.ApiClient]
) -> None:
    app, app_ns, instance = unique("web"), unique("ns"), unique("shard")
    names, owners, driver = choose_replicas(app)
    flags = [
        "--kubeconfig", str(kubeconfig), "--management-context", MANAGEMENT,
        "--shard-lease-namespace", namespace, "--instance", instance,
    ]  # fmt: skip
    management = ClusterClient("management", context=MANAGEMENT, kubeconfig=str(kubeconfig))
    shared = SharedObjects(management, namespace, instance)

    def rollout() -> SharedRollout | None:
        found = shared.rollout(app)
        return decode(found.data) if found is not None else None

    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(CLUSTERS)
    write_app(repo, app, app_ns, "1")
    v1 = repo.commit("v1")
    replicas = {n: Replica(n, repo, tmp_path, kubeconfig, namespace, instance) for n in names}
    started = time.monotonic()
    with ExitStack() as stack:
        for replica in replicas.values():
            replica.start()
            stack.callback(replica.stop)

        # Every target, from every replica, in one place; each published by its owner.
        def published() -> dict[tuple[str, str], tuple[str, str | None, str]] | None:
            result = run_cli("status", "-o", "json", *flags)
            if result.exit_code != 0:
                return None
            targets = json.loads(result.output)["targets"]
            got = {
                (t["app"], t["cluster"]): (t["state"], t["revision"], t["replica"]) for t in targets
            }
            want = {(app, c): ("Synced", v1, owners[c]) for c in CLUSTERS}
            return got if got == want else None

        # Bounds on waiting, not on speed: three interpreters start at once on a loaded machine.
        eventually(published, timeout=180, what="every target Synced at v1, from its owner")
        assert len(set(owners.values())) >= 2  # the table really is put together from several
        wide = run_cli("status", "-o", "wide", *flags)
        # Each replica's own state above the table (how its fetches go, the newest revision).
        for name in names:
            assert f"Replica {name}:\n  Source {repo.root}" in wide.output, wide.output
        assert f"Revision {v1[:12]}" in wide.output
        table_head = next(ln for ln in wide.output.splitlines() if ln.startswith("APP"))
        assert "REPLICA" in table_head
        assert live_versions(api_clients, app, app_ns) == dict.fromkeys(CLUSTERS, "1")

        # v2: stage one (one cluster) then stage two waits for an approval.
        write_app(repo, app, app_ns, "2")
        v2 = repo.commit("v2")

        def waiting() -> SharedRollout | None:
            shared_rollout = rollout()
            state = shared_rollout.state if shared_rollout else None
            if state is None or state.revision != v2:
                return None
            return shared_rollout if state.phase == RolloutPhase.WAITING_APPROVAL else None

        before = eventually(waiting, timeout=90, what="stage one done, waiting for approval")
        assert before.driver == driver
        assert live_versions(api_clients, app, app_ns) == {
            CLUSTERS[1]: "2", CLUSTERS[2]: "1", CLUSTERS[0]: "1"
        }  # fmt: skip
        canary = client.CoreV1Api(api_clients[CLUSTERS[1]]).read_namespaced_config_map(app, app_ns)
        assert before.state is not None
        one = before.state.cluster(CLUSTERS[1])
        assert one.phase == ClusterPhase.SUCCEEDED

        shown = json.loads(run_cli("rollout", "status", app, "-o", "json", *flags).output)
        assert [r["phase"] for r in shown["rollouts"]] == ["WaitingApproval"]

        # Metrics say who drives the rollout and who owns which cluster.
        exposed = metrics_of(replicas[driver])
        assert f'reconciler_shard_rollout_driver{{app="{app}",replica="{driver}"}} 1.0' in exposed
        owner = owners[CLUSTERS[1]]
        assert f'cluster="{CLUSTERS[1]}",replica="{owner}"}} 1.0' in metrics_of(replicas[owner])

        # The driver dies; the approval is given once, before anyone took over.
        replicas[driver].kill()
        approved = run_cli("rollout", "approve", app, "--user", "alice", *flags)
        assert approved.exit_code == 0, approved.output

        def done() -> SharedRollout | None:
            shared_rollout = rollout()
            state = shared_rollout.state if shared_rollout else None
            if state is None or state.phase != RolloutPhase.SUCCEEDED:
                return None
            return shared_rollout

        after = eventually(done, timeout=120, what="another replica finishes the rollout")
        assert after.driver not in (None, driver)
        assert after.state is not None and after.state.revision == v2
        assert [(a.stage, a.user) for a in after.state.approvals] == [("two", "alice")]
        assert after.commands == ()
        # Continued from the exact state: stage one was not run again, nothing re-applied there.
        assert after.state.cluster(CLUSTERS[1]) == one
        again = client.CoreV1Api(api_clients[CLUSTERS[1]]).read_namespaced_config_map(app, app_ns)
        assert again.metadata.resource_version == canary.metadata.resource_version
        eventually(
            lambda: live_versions(api_clients, app, app_ns) == dict.fromkeys(CLUSTERS, "2"),
            timeout=60,
            what="every cluster on v2, also the one the killed replica worked",
        )

        # A rollback pin given once reaches the replica working that cluster; released, the
        # cluster follows the rollout again.
        pinned = run_cli("rollback", app, "--to", v1[:10], "--cluster", CLUSTERS[2], *flags)
        assert pinned.exit_code == 0, pinned.output
        eventually(
            lambda: (
                live_versions(api_clients, app, app_ns)
                == {CLUSTERS[1]: "2", CLUSTERS[2]: "1", CLUSTERS[0]: "2"}
            ),
            timeout=60,
            what="the pinned cluster back on v1",
        )
        listed = run_cli("status", *flags)
        assert f"pinned: {app} on {CLUSTERS[2]}" in listed.output, listed.output
        released = run_cli("rollback", app, "--release", *flags)
        assert released.exit_code == 0, released.output
        eventually(
            lambda: live_versions(api_clients, app, app_ns) == dict.fromkeys(CLUSTERS, "2"),
            timeout=60,
            what="released: every cluster on v2 again",
        )
        print(
            f"replicas {names}, driver {driver}, owners {owners}: {time.monotonic() - started:.1f}s"
        )
