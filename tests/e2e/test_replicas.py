"""Several `reconciler run` replicas sharing a fleet of 30 clusters through Leases on a real
management cluster: an even split, a SIGKILLed replica's clusters taken over within the lease
duration plus a pass, a joining replica taking its share, every commit reaching every cluster,
and never two replicas working one cluster at once (checked on the per-cluster Lease history,
watched throughout, and on every replica's pass log).

Waits are bounds on waiting, generous for a loaded machine (starting one `reconciler run` took
up to a minute on 2 cores under a load of 30); the takeover time is printed, not asserted.

Thirty contexts name the three devenv API servers (ten each); each cluster's objects carry its
name, so they never collide. Short leases (3 s, renewed every 1 s) keep the test quick.
"""

from __future__ import annotations

import copy
import itertools
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch

from reconciler.daemon.shards import owner_of
from tests.e2e.conftest import CLUSTERS as SERVERS
from tests.e2e.daemon_rig import API, ConfigRepo, config_data, events_of, eventually

# Four `reconciler run` processes: starting them alone took minutes at a load of 30 on 2 cores.
pytestmark = pytest.mark.timeout(900)

MANAGEMENT = "beijing-1"
EDGE = [f"edge-{n:02d}" for n in range(30)]
DURATION, RENEW = 3.0, 1.0


def server_of(cluster: str) -> str:
    return SERVERS[int(cluster.removeprefix("edge-")) % len(SERVERS)]


def fleet_kubeconfig(base: Path, out: Path) -> Path:
    """``base`` plus one context per edge cluster, each naming one of the devenv servers."""
    config: dict[str, Any] = yaml.safe_load(base.read_text())
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    for name in EDGE:
        config["contexts"].append(
            {"name": name, "context": copy.deepcopy(contexts[server_of(name)])}
        )
    out.write_text(yaml.safe_dump(config))
    return out


def fleet_repo(root: Path, namespace: str) -> ConfigRepo:
    repo = ConfigRepo(root)
    for name in EDGE:
        repo.write(
            f"clusters/{name}.yaml",
            {
                "apiVersion": API,
                "kind": "Cluster",
                "metadata": {"name": name, "labels": {"fleet": "edge"}},
            },
        )
    repo.write(
        "apps/edge/app.yaml",
        {
            "apiVersion": API,
            "kind": "App",
            "metadata": {"name": "edge"},
            "spec": {
                "namespace": namespace,
                "source": {"manifests": "manifests/"},
                "placement": {"selector": {"matchLabels": {"fleet": "edge"}}},
            },
        },
    )
    return repo


def release(repo: ConfigRepo, version: str) -> str:
    repo.write(
        "apps/edge/manifests/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: edge-${cluster.name}\n"
        f"data:\n  version: '{version}'\n",
    )
    return repo.commit(f"edge {version}")


def released_fleet(tmp_path: Path, kubeconfig: Path) -> tuple[str, str, Path, ConfigRepo]:
    """A fresh replica instance name and edge namespace, the fleet's kubeconfig, and the config
    repo with release 1 committed."""
    instance, namespace = f"sh{uuid.uuid4().hex[:6]}", f"edge-{uuid.uuid4().hex[:8]}"
    config = fleet_kubeconfig(kubeconfig, tmp_path / "fleet.kubeconfig")
    repo = fleet_repo(tmp_path / "repo", namespace)
    release(repo, "1")
    return instance, namespace, config, repo


@dataclass
class Replica:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    killed_at: float | None = None

    def events(self) -> list[dict[str, Any]]:
        return events_of(self.log)


@dataclass
class LeaseHistory:
    """Every write to the namespace's Leases, in order, from a watch started before any
    replica (name, holder, renewTime, resourceVersion)."""

    writes: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def holders(self, prefix: str) -> dict[str, list[str | None]]:
        out: dict[str, list[str | None]] = {}
        for name, holder, _, _ in self.writes:
            if name.startswith(prefix):
                seq = out.setdefault(name.removeprefix(prefix), [])
                if not seq or seq[-1] != holder:
                    seq.append(holder)
        return out


def watch_leases(api: client.ApiClient, namespace: str) -> tuple[LeaseHistory, threading.Thread]:
    history = LeaseHistory()
    coordination = client.CoordinationV1Api(api)
    listed = coordination.list_namespaced_lease(namespace)
    ready = threading.Event()

    def follow() -> None:
        version = listed.metadata.resource_version
        while not history.stop.is_set():
            stream = watch.Watch().stream(
                coordination.list_namespaced_lease,
                namespace,
                resource_version=version,
                timeout_seconds=2,
                allow_watch_bookmarks=True,
            )
            ready.set()
            for event in stream:
                lease = event["object"]
                version = lease.metadata.resource_version
                if event["type"] in ("ADDED", "MODIFIED"):
                    renew = lease.spec.renew_time.isoformat() if lease.spec.renew_time else None
                    history.writes.append(
                        (lease.metadata.name, lease.spec.holder_identity, renew, version)
                    )

    thread = threading.Thread(target=follow, name="lease-history", daemon=True)
    thread.start()
    ready.wait(10)
    return history, thread


@pytest.fixture
def lease_namespace(api_clients: dict[str, client.ApiClient]) -> Iterator[str]:
    name = f"shards-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_clients[MANAGEMENT])
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def start(
    name: str, repo: ConfigRepo, tmp_path: Path, kubeconfig: Path, namespace: str, instance: str
) -> Replica:
    log = tmp_path / f"{name}.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(repo.root),
             "--state-dir", str(tmp_path / f"state-{name}"), "--kubeconfig", str(kubeconfig),
             "--instance", instance, "--listen", "127.0.0.1:0", "--interval", "1s",
             "--drift-interval", "30s", "--request-timeout", "10s", "--log-level", "debug",
             "--shard-lease-namespace", namespace, "--management-context", MANAGEMENT,
             "--replica-id", name, "--shard-lease-duration", f"{DURATION:g}s",
             "--shard-renew-period", f"{RENEW:g}s"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    return Replica(name, process, log)


def versions(api_clients: dict[str, client.ApiClient], namespace: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for cluster in EDGE:
        data = config_data(api_clients[server_of(cluster)], namespace, f"edge-{cluster}")
        out[cluster] = (data or {}).get("version")
    return out


def everywhere(
    api_clients: dict[str, client.ApiClient], namespace: str, version: str, clusters: list[str]
) -> bool:
    found = versions(api_clients, namespace)
    return all(found[c] == version for c in clusters)


def holders(api: client.ApiClient, namespace: str, instance: str) -> dict[str, str | None]:
    leases = client.CoordinationV1Api(api).list_namespaced_lease(
        namespace, label_selector="reconciler.io/lease=cluster"
    )
    prefix = f"{instance}.cluster."
    return {
        lease.metadata.name.removeprefix(prefix): lease.spec.holder_identity
        for lease in leases.items
    }


def at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def passes(replica: Replica) -> dict[str, list[tuple[float, float]]]:
    """Each cluster's passes by this replica, as (started, finished) wall times; a pass in
    flight when the replica was killed ends at the kill."""
    open_at: dict[str, float] = {}
    out: dict[str, list[tuple[float, float]]] = {}
    for event in replica.events():
        if event.get("event") == "pass started":
            open_at[event["cluster"]] = at(event)
        elif event.get("event") == "pass finished" and event["cluster"] in open_at:
            out.setdefault(event["cluster"], []).append((open_at.pop(event["cluster"]), at(event)))
    end = replica.killed_at if replica.killed_at is not None else time.time()
    for cluster, started in open_at.items():
        out.setdefault(cluster, []).append((started, end))
    return out


def test_replicas_share_the_fleet_take_over_from_a_dead_one_and_never_overlap(
    tmp_path: Path,
    kubeconfig: Path,
    api_clients: dict[str, client.ApiClient],
    lease_namespace: str,
) -> None:
    instance, namespace, config, repo = released_fleet(tmp_path, kubeconfig)
    management = api_clients[MANAGEMENT]
    history, watcher = watch_leases(management, lease_namespace)
    replicas = [start(f"r{n}", repo, tmp_path, config, lease_namespace, instance) for n in range(3)]
    try:
        # 1. Three replicas split the fleet evenly; the first commit reaches every cluster.
        eventually(lambda: everywhere(api_clients, namespace, "1", EDGE), 300, "v1 everywhere")
        expected = {c: owner_of(c, ["r0", "r1", "r2"]) for c in EDGE}
        eventually(lambda: holders(management, lease_namespace, instance) == expected, 60)
        spread = Counter(expected.values())
        print(f"\nspread over 3 replicas, 30 clusters: {dict(sorted(spread.items()))}")
        assert len(spread) == 3 and all(5 <= n <= 15 for n in spread.values()), spread

        # 2. SIGKILL one: the others take its clusters once its Lease expires.
        dead = replicas[1]
        orphans = sorted(c for c, owner in expected.items() if owner == dead.name)
        dead.process.send_signal(signal.SIGKILL)
        dead.killed_at = time.time()
        killed = time.monotonic()
        dead.process.wait(10)
        release(repo, "2")
        eventually(lambda: everywhere(api_clients, namespace, "2", orphans), 120, "v2 on orphans")
        takeover = time.monotonic() - killed
        print(f"takeover of {len(orphans)} clusters after SIGKILL: {takeover:.1f}s "
              f"(lease {DURATION:g}s, renew {RENEW:g}s)")  # fmt: skip
        eventually(lambda: everywhere(api_clients, namespace, "2", EDGE), 120, "v2 everywhere")
        survivors = {c: owner_of(c, ["r0", "r2"]) for c in EDGE}
        eventually(lambda: holders(management, lease_namespace, instance) == survivors, 60)

        # 3. A new replica takes its share (given back by the holders), and a commit reaches
        #    every cluster again.
        replicas.append(start("r3", repo, tmp_path, config, lease_namespace, instance))
        started = time.monotonic()
        joined = {c: owner_of(c, ["r0", "r2", "r3"]) for c in EDGE}
        eventually(lambda: holders(management, lease_namespace, instance) == joined, 300)
        share = sorted(c for c, owner in joined.items() if owner == "r3")
        print(f"r3 joined and held its {len(share)} clusters {time.monotonic() - started:.1f}s "
              f"after its process started: {share}")  # fmt: skip
        release(repo, "3")
        eventually(lambda: everywhere(api_clients, namespace, "3", EDGE), 120, "v3 everywhere")
        assert any(c in passes(replicas[3]) for c in share)
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                replica.process.wait(90)  # giving Leases back takes a while on a loaded machine
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(10)
        history.stop.set()
        watcher.join(5)
        for server in SERVERS:
            client.CoreV1Api(api_clients[server]).delete_namespace(namespace)

    # 4. Never two at once. (a) The Lease history: a cluster Lease went from one replica to
    #    another without a release only once the first one's session had gone unrenewed for
    #    a lease duration (stamps from this machine's clock). Normally that is only the
    #    SIGKILLed replica; a replica starved on a loaded machine may lose its clusters too.
    renewed: dict[str, datetime] = {}
    holder: dict[str, str | None] = {}
    direct: list[tuple[str, str, str]] = []
    for name, who, stamp, _ in history.writes:
        if name.startswith(f"{instance}.replica.") and who is not None and stamp:
            renewed[who] = datetime.fromisoformat(stamp)
        elif name.startswith(f"{instance}.cluster."):
            before = holder.get(name)
            if before is not None and who is not None and who != before:
                waited = (datetime.fromisoformat(stamp or "") - renewed[before]).total_seconds()
                assert waited >= DURATION, f"{name}: {before} -> {who} {waited:.2f}s after renewal"
                direct.append((name, before, who))
            holder[name] = who
    takeovers = {f"{instance}.cluster.{c}" for c in orphans}
    assert takeovers <= {name for name, before, _ in direct if before == dead.name}
    #    (b) Every replica's passes on one cluster never overlap another replica's.
    timeline: dict[str, list[tuple[float, float, str]]] = {}
    for replica in replicas:
        for cluster, spans in passes(replica).items():
            timeline.setdefault(cluster, []).extend((s, e, replica.name) for s, e in spans)
    assert set(timeline) == set(EDGE)
    for cluster, spans in timeline.items():
        spans.sort()
        for (_, end, who), (start_, _, other) in itertools.pairwise(spans):
            assert who == other or end <= start_, f"{cluster}: {who} and {other} overlap"
    assert all(r.process.returncode in (0, -signal.SIGKILL) for r in replicas), [
        (r.name, r.process.returncode) for r in replicas
    ]


def test_a_replica_that_cannot_load_a_revision_takes_no_share(
    tmp_path: Path,
    kubeconfig: Path,
    api_clients: dict[str, client.ApiClient],
    lease_namespace: str,
) -> None:
    instance, namespace, config, repo = released_fleet(tmp_path, kubeconfig)
    management = api_clients[MANAGEMENT]
    # Its repo cannot be read (git unreachable, say): it never loads a revision.
    unreadable = ConfigRepo(tmp_path / "unreadable")
    replicas = [start("r0", repo, tmp_path, config, lease_namespace, instance)]
    replicas.append(start("broken", unreadable, tmp_path, config, lease_namespace, instance))
    broken = replicas[1]
    cannot_read = "cannot read the config repo"
    try:
        eventually(
            lambda: any(e.get("event") == cannot_read for e in broken.events()),
            300,
            "the broken replica tried to read its repo",
        )
        eventually(lambda: everywhere(api_clients, namespace, "1", EDGE), 300, "v1 everywhere")
        eventually(
            lambda: holders(management, lease_namespace, instance) == dict.fromkeys(EDGE, "r0"),
            60,
        )
        sessions = client.CoordinationV1Api(management).list_namespaced_lease(
            lease_namespace, label_selector="reconciler.io/lease=replica"
        )
        assert [lease.spec.holder_identity for lease in sessions.items] == ["r0"]
        assert broken.process.poll() is None  # still running, still trying to load
    finally:
        for replica in replicas:
            replica.process.send_signal(signal.SIGTERM)
        for replica in replicas:
            try:
                replica.process.wait(90)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(10)
        for server in SERVERS:
            client.CoreV1Api(api_clients[server]).delete_namespace(namespace)
