"""Requests a pass sends, with and without judging health, and what a health re-check costs.

Counts every request the kube client sends (a counting wrapper around ``ClusterClient._request``)
for one app of a few kinds on a real kube-apiserver:

- the pass as it was before health (plan + apply), first sync and no-change sync;
- the same pass as the daemon runs it now (``engine.reconcile``: plan + apply + health judged on
  what the pass read and wrote);
- a health re-check between passes (``sync.observe.check_target``: the plan's reads alone);
- for comparison, a naive health read: one GET per object.

    .venv/bin/python bench/health.py [--configmaps 20] [--deployments 5] [--services 5]

One run (30 objects; the first "before" sync also creates reconciler-system, one PATCH more):

    before (plan + apply), first sync               39 (GET 6, PATCH 33)
    before (plan + apply), no-change sync           34 (GET 4, PATCH 30)
    after (plan + apply + health), first sync       38 (GET 6, PATCH 32)
    after (plan + apply + health), no-change sync   34 (GET 4, PATCH 30)
    health re-check (reads only)                     3 (GET 3)
    naive health read (GET each)                    30 (GET 30)
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.config.schema import SyncPolicy
from reconciler.devenv import controlplane
from reconciler.health import target_health
from reconciler.kube.client import ClusterClient
from reconciler.sync.apply import apply_plan
from reconciler.sync.model import live_after
from reconciler.sync.observe import check_target
from reconciler.sync.plan import plan_target

CLUSTER = "bench-health"
APP = "bench"


class Requests:
    """Counts requests by method while active (thread-safe: the sync works concurrently)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        original: Callable[..., Any] = ClusterClient._request
        counts: Counter[str] = Counter()

        def counted(client: ClusterClient, method: str, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                counts[method] += 1
            return original(client, method, *args, **kwargs)

        ClusterClient._request = counted  # type: ignore[method-assign]
        try:
            yield counts
        finally:
            ClusterClient._request = original  # type: ignore[method-assign]


def objects(
    app: str, namespace: str, configmaps: int, deployments: int, services: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(configmaps):
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{i}", "namespace": namespace},
                "data": {"i": str(i)},
            }
        )
    for i in range(deployments):
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"web-{i}", "namespace": namespace},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": f"web-{i}"}},
                    "template": {
                        "metadata": {"labels": {"app": f"web-{i}"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                    },
                },
            }
        )
    for i in range(services):
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"web-{i}", "namespace": namespace},
                "spec": {"selector": {"app": f"web-{i}"}, "ports": [{"port": 80}]},
            }
        )
    for obj in out:
        obj["metadata"]["labels"] = {"reconciler.io/app": app}
    return out


def fmt(counts: Counter[str]) -> str:
    total = sum(counts.values())
    return f"{total:3d} ({', '.join(f'{m} {n}' for m, n in sorted(counts.items()))})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configmaps", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=5)
    parser.add_argument("--services", type=int, default=5)
    args = parser.parse_args()
    requests = Requests()
    policy = SyncPolicy()
    with tempfile.TemporaryDirectory() as tmp:
        state = controlplane.start(Path(tmp), [CLUSTER], controlplane.Launch(die_with_parent=True))
        try:
            cluster = ClusterClient(CLUSTER, kubeconfig=state.kubeconfig)
            cluster.ping()
            for kind in (("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service")):
                cluster.resource(*kind)  # discovery warm, as in a running daemon
            rows = []
            for label, namespace, with_health in (
                ("before (plan + apply)", "before", False),
                ("after (plan + apply + health)", "after", True),
            ):
                app = f"{APP}-{namespace}"
                desired = objects(app, namespace, args.configmaps, args.deployments, args.services)
                for attempt in ("first sync", "no-change sync"):
                    with requests.counting() as counts:
                        plan = plan_target(cluster, app, desired, policy, "r1")
                        result = apply_plan(cluster, plan, policy)
                        if with_health:
                            health = target_health(live_after(plan, result))
                    assert result.ok, result.failed
                    rows.append((f"{label}, {attempt}", counts))
                if with_health:
                    print(f"health after the pass: {health}")
            with requests.counting() as counts:
                recheck = check_target(cluster, desired, ())
            rows.append(("health re-check (reads only)", counts))
            with requests.counting() as counts:
                for obj in desired:
                    meta = obj["metadata"]
                    resource = cluster.resource(obj["apiVersion"], obj["kind"])
                    cluster.get(resource, meta["namespace"], meta["name"])
            rows.append(("naive health read (GET each)", counts))
            print(f"health re-check: {recheck}")
            print(
                f"\n{len(desired)} objects: {args.configmaps} ConfigMaps, {args.deployments} "
                f"Deployments, {args.services} Services in one namespace\n"
            )
            for label, counts in rows:
                print(f"{label:46s} {fmt(counts)}")
        finally:
            controlplane.stop(Path(tmp))


if __name__ == "__main__":
    main()
