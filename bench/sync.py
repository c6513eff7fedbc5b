"""Benchmark: first apply and no-change sync of 1,000 objects across 3 real clusters.

Next to it, in the same run, a raw loop that sends the same server-side applies with the same
concurrency through a minimal client (urllib3, no discovery, no plan, no inventory). Prints
wall times and the ratios; the no-change sync must send zero write requests.

    .venv/bin/python bench/sync.py [--objects 1000] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import ssl
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import urllib3
import yaml

from reconciler.config.schema import SyncPolicy
from reconciler.devenv import controlplane
from reconciler.kube.client import ClusterClient
from reconciler.sync.apply import apply_plan
from reconciler.sync.isolated import run_isolated
from reconciler.sync.model import OBJECT_WORKERS
from reconciler.sync.plan import plan_target

CLUSTERS = ["bench-1", "bench-2", "bench-3"]


def objects(namespace: str, count: int, app: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"cm-{i:04d}",
                "namespace": namespace,
                "labels": {"reconciler.io/app": app},
            },
            "data": {"index": str(i), "payload": "x" * 200},
        }
        for i in range(count)
    ]


def raw_apply(
    state: controlplane.DevEnvState, namespace: str, per_cluster: int, workers: int
) -> float:
    """The floor: one SSA PATCH per object, nothing else."""
    ctx = ssl.create_default_context(cafile=state.ca)
    headers = {
        "Authorization": f"Bearer {state.token}",
        "Content-Type": "application/apply-patch+yaml",
        "Accept": "application/json",
    }

    def per_cluster_loop(info: controlplane.ClusterInfo) -> None:
        pool = urllib3.HTTPSConnectionPool(
            "127.0.0.1", info.port, maxsize=workers, ssl_context=ctx, assert_hostname=False
        )
        # Namespace first, as any client must.
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        pool.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}?fieldManager=raw&force=true",
            body=json.dumps(ns),
            headers=headers,
        )

        def one(obj: dict[str, Any]) -> None:
            name = obj["metadata"]["name"]
            response = pool.request(
                "PATCH",
                f"/api/v1/namespaces/{namespace}/configmaps/{name}?fieldManager=raw&force=false",
                body=json.dumps(obj),
                headers=headers,
            )
            assert response.status in (200, 201), response.data

        with ThreadPoolExecutor(workers) as executor:
            list(executor.map(one, objects(namespace, per_cluster, "raw")))

    start = time.perf_counter()
    with ThreadPoolExecutor(len(state.clusters)) as executor:
        list(executor.map(per_cluster_loop, state.clusters))
    return time.perf_counter() - start


def reconciler_sync(
    clusters: dict[str, ClusterClient], namespace: str, per_cluster: int
) -> tuple[float, int, int]:
    """plan + apply on every cluster concurrently; returns (seconds, writes, applied)."""
    policy = SyncPolicy()
    app = f"bench-{namespace}"
    desired = objects(namespace, per_cluster, app)

    def work(name: str) -> tuple[int, int]:
        cluster = clusters[name]
        plan = plan_target(cluster, app, desired, policy, "r1")
        result = apply_plan(cluster, plan, policy)
        assert result.ok, result.failed
        return result.writes, len(result.created) + len(result.configured)

    start = time.perf_counter()
    outcomes = run_isolated(list(clusters), work)
    elapsed = time.perf_counter() - start
    for outcome in outcomes:
        assert outcome.error is None, outcome.error
    writes = sum(o.value[0] for o in outcomes if o.value)
    applied = sum(o.value[1] for o in outcomes if o.value)
    return elapsed, writes, applied


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=OBJECT_WORKERS)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    per_cluster = args.objects // len(CLUSTERS)

    with tempfile.TemporaryDirectory() as tmp:
        state = controlplane.start(Path(tmp), CLUSTERS, controlplane.Launch(die_with_parent=True))
        try:
            kubeconfig = yaml.safe_load(Path(state.kubeconfig).read_text())
            assert kubeconfig["contexts"]
            clusters = {n: ClusterClient(n, kubeconfig=state.kubeconfig) for n in CLUSTERS}
            for c in clusters.values():  # warm discovery and connections, as a daemon would be
                c.ping()
                c.resource("v1", "ConfigMap")
            rows = []
            for round_ in range(args.rounds):
                raw = raw_apply(state, f"raw-{round_}", per_cluster, args.workers)
                namespace = f"rec-{round_}"
                first, writes_first, applied = reconciler_sync(clusters, namespace, per_cluster)
                again, writes_again, _ = reconciler_sync(clusters, namespace, per_cluster)
                rows.append((raw, first, again, writes_first, writes_again, applied))
                print(
                    f"round {round_ + 1}: raw loop {raw:.2f}s | "
                    f"reconciler first apply {first:.2f}s "
                    f"({first / raw:.2f}x, {writes_first} writes, {applied} objects) | "
                    f"no-change sync {again:.2f}s ({again / raw:.2f}x, {writes_again} writes)"
                )
            best = min(rows, key=lambda r: r[1] / r[0])
            median = sorted(rows, key=lambda r: r[1] / r[0])[len(rows) // 2]
            print(
                f"\n{per_cluster * len(CLUSTERS)} objects on {len(CLUSTERS)} clusters, "
                f"{args.workers} workers per cluster"
            )
            ratio, best_ratio = median[1] / median[0], best[1] / best[0]
            print(f"first apply / raw loop: median {ratio:.2f}x (best {best_ratio:.2f}x)")
            print(f"no-change sync / raw loop: median {median[2] / median[0]:.2f}x")
            print(f"no-change sync writes: {max(r[4] for r in rows)}")
        finally:
            controlplane.stop(Path(tmp))


if __name__ == "__main__":
    main()
