"""``reconciler apply`` next to ``kubectl apply --server-side``: 300 objects, one real cluster.

    .venv/bin/python bench/cli_apply.py [--rounds 5] [--namespaces 3]

One light local cluster (an API server, no controllers). Every round, interleaved (which tool
goes first alternates): (a) first apply of the same 300 objects — a realistic mix of Namespaces,
ConfigMaps, Secrets, Services, Deployments, ServiceAccounts, Roles and RoleBindings across
a few namespaces — each tool into fresh namespaces of its own; (b) the no-change apply of the
same objects again. Both run as fresh processes, as a user types them; kubectl keeps its
discovery cache between runs (as on a workstation) and a warm-up round fills it, as it fills
Python's byte-code cache (``PYTHONDONTWRITEBYTECODE`` is dropped: an install has its .pyc files).

Prints the median, min and max wall time and CPU time (user + system, of the process and its
children) of each, the ratios ours / kubectl, and the requests each run made, by verb, from the
API server's own ``apiserver_request_total`` (dry-run requests counted apart; what the server
does by itself meanwhile is left out). Issue #18's targets: no-change ≤ 1.2x kubectl, first
apply ≤ 1.0x. Not a timed test.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import urllib3
import yaml

from reconciler.devenv import binaries, controlplane

BIN = Path(sys.executable).parent
CLUSTER = "bench-1"
_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
# What the API server asks of itself meanwhile (leader leases, Service IPs and the `kubernetes`
# Service's endpoints) and the bench's own reads of /metrics: not the tools' requests.
_BACKGROUND = {"leases", "ipaddresses", "endpoints", "endpointslices"}
_PROBES = {"/metrics", "/readyz", "/livez", "/healthz"}


def namespace_objects(namespace: str) -> list[dict[str, Any]]:
    """99 objects of one namespace, shaped as real apps write them (plus the Namespace)."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    ]

    def meta(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "namespace": namespace, "labels": {"app": name}, **extra}

    for i in range(15):
        app = f"svc-{i:02d}"
        objects.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(app)})
        objects.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta(app),
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"app": app}},
                    "template": {
                        "metadata": {"labels": {"app": app}},
                        "spec": {
                            "serviceAccountName": app,
                            "containers": [
                                {
                                    "name": "main",
                                    "image": f"registry.example.com/team/{app}:1.{i}.0",
                                    "ports": [{"name": "http", "containerPort": 8080}],
                                    "env": [
                                        {"name": "LOG_LEVEL", "value": "info"},
                                        {"name": "CONFIG", "value": f"/etc/{app}/config.yaml"},
                                    ],
                                    "resources": {
                                        "requests": {"cpu": "100m", "memory": "128Mi"},
                                        "limits": {"memory": "256Mi"},
                                    },
                                    "readinessProbe": {
                                        "httpGet": {"path": "/readyz", "port": "http"},
                                        "periodSeconds": 5,
                                    },
                                    "volumeMounts": [
                                        {"name": "config", "mountPath": f"/etc/{app}"}
                                    ],
                                }
                            ],
                            "volumes": [{"name": "config", "configMap": {"name": f"{app}-config"}}],
                        },
                    },
                },
            }
        )
    for i in range(10):
        app = f"svc-{i:02d}"
        spec: dict[str, Any] = {
            "selector": {"app": app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        }
        if i >= 5:  # headless: a light cluster's service IP range is small (/24)
            spec["clusterIP"] = "None"
        objects.append({"apiVersion": "v1", "kind": "Service", "metadata": meta(app), "spec": spec})
    for i in range(30):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(f"svc-{i:02d}-config"),
                "data": {
                    "config.yaml": f"listen: :8080\nname: svc-{i:02d}\nfeatures: [a, b, c]\n",
                    "LOG_FORMAT": "json",
                },
            }
        )
    for i in range(5):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta(f"svc-{i:02d}-credentials"),
                "type": "Opaque",
                "stringData": {"username": f"user{i}", "password": "not-a-real-one"},
            }
        )
    for i in range(12):
        name = f"reader-{i:02d}"
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta(name),
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps", "secrets"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            }
        )
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta(name),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": name,
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": f"svc-{i:02d}", "namespace": namespace}
                ],
            }
        )
    return objects


def write_objects(directory: Path, prefix: str, namespaces: int) -> int:
    """The objects in ``directory`` (Namespaces in the first file); returns how many."""
    directory.mkdir(parents=True)
    names = [f"{prefix}-{chr(ord('a') + i)}" for i in range(namespaces)]
    per_namespace = [namespace_objects(n) for n in names]
    spaces = [objs[0] for objs in per_namespace]
    (directory / "00-namespaces.yaml").write_text(yaml.safe_dump_all(spaces))
    for name, objs in zip(names, per_namespace, strict=True):
        (directory / f"10-{name}.yaml").write_text(yaml.safe_dump_all(objs[1:]))
    return sum(len(objs) for objs in per_namespace)


def write_repo(repo: Path, app: str, prefix: str, namespaces: int) -> int:
    """A config repo (a Git checkout, as users run apply in) with one cluster and one app
    holding the objects."""
    (repo / "clusters").mkdir(parents=True)
    (repo / "clusters" / f"{CLUSTER}.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "reconciler.io/v1alpha1",
                "kind": "Cluster",
                "metadata": {"name": CLUSTER, "labels": {"env": "bench"}},
            }
        )
    )
    app_dir = repo / "apps" / app
    count = write_objects(app_dir / "manifests", prefix, namespaces)
    (app_dir / "app.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "reconciler.io/v1alpha1",
                "kind": "App",
                "metadata": {"name": app},
                "spec": {
                    "namespace": f"{prefix}-a",
                    "source": {"manifests": "manifests/"},
                    "placement": {"clusters": [CLUSTER]},
                },
            }
        )
    )
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], [*identity, "commit", "-qm", "r"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    return count


class Requests:
    """The API server's request counter, read before and after a run."""

    def __init__(self, state: controlplane.DevEnvState) -> None:
        port = state.clusters[0].port
        context = ssl.create_default_context(cafile=state.ca)
        self._pool = urllib3.HTTPSConnectionPool(
            "127.0.0.1", port, ssl_context=context, assert_hostname=False
        )
        self._headers = {"Authorization": f"Bearer {state.token}"}

    def read(self) -> Counter[str]:
        response = self._pool.request("GET", "/metrics", headers=self._headers)
        assert response.status == 200, response.status
        counts: Counter[str] = Counter()
        for line in response.data.decode().splitlines():
            match = _SAMPLE.match(line)
            if match is None:
                continue
            labels = dict(_LABEL.findall(match.group(1)))
            if labels.get("resource") in _BACKGROUND or labels.get("subresource") in _PROBES:
                continue
            verb = labels.get("verb", "?")
            if labels.get("dry_run"):
                verb += " (dry-run)"
            counts[verb] += int(float(match.group(2)))
        return counts

    def during(self, argv: list[str], env: dict[str, str]) -> tuple[float, float, Counter[str]]:
        """Wall time and CPU time (user + system) of ``argv``, and the requests the server
        counted meanwhile."""
        before = self.read()
        cpu = _children_cpu()
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        took = time.perf_counter() - start
        cpu = _children_cpu() - cpu
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}):\n{done.stderr}")
        return took, cpu, self.read() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times):6.2f} s  (min {min(times):.2f}, max {max(times):.2f})"


def requests_text(counts: Counter[str]) -> str:
    total = sum(counts.values())
    return f"{total} requests: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--namespaces", type=int, default=3)
    args = parser.parse_args()
    kubectl = str(binaries.ensure("kubectl"))
    reconciler = str(BIN / "reconciler")

    with tempfile.TemporaryDirectory(prefix="bench-cli-apply-") as tmp_name:
        tmp = Path(tmp_name)
        state = controlplane.start(
            tmp / "devenv", [CLUSTER], controlplane.Launch(die_with_parent=True)
        )
        try:
            env = {**os.environ, "KUBECONFIG": state.kubeconfig, "NO_COLOR": "1"}
            env.pop("RECONCILER_STATE_DIR", None)
            # As installed: byte code cached (the warm-up round writes it where it may).
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            counter = Requests(state)
            runs: dict[tuple[str, str], list[float]] = {}
            cpus: dict[tuple[str, str], list[float]] = {}
            requests: dict[tuple[str, str], Counter[str]] = {}
            count = 0

            def ours(round_: int) -> list[str]:
                app = f"bench-{round_}"
                repo = tmp / f"repo-{round_}"
                if not repo.exists():
                    nonlocal count
                    count = write_repo(repo, app, f"rec-{round_}", args.namespaces)
                return [reconciler, "apply", str(repo), "--app", app]

            def theirs(round_: int) -> list[str]:
                manifests = tmp / f"kubectl-{round_}"
                if not manifests.exists():
                    write_objects(manifests, f"kc-{round_}", args.namespaces)
                return [
                    kubectl,
                    "apply",
                    "--server-side",
                    "-f",
                    str(manifests),
                    "--cache-dir",
                    str(tmp / "kubectl-cache"),
                ]

            tools = {"reconciler": ours, "kubectl": theirs}
            for round_ in range(args.rounds + 1):  # round 0 warms caches; not counted
                order = list(tools) if round_ % 2 else list(reversed(tools))
                for phase in ("first apply", "no-change apply"):
                    for tool in order:
                        took, cpu, counts = counter.during(tools[tool](round_), env)
                        if round_ == 0:
                            continue
                        runs.setdefault((tool, phase), []).append(took)
                        cpus.setdefault((tool, phase), []).append(cpu)
                        requests[(tool, phase)] = counts
                if round_:
                    line = ", ".join(
                        f"{tool} {phase} {runs[(tool, phase)][-1]:.2f}s"
                        for phase in ("first apply", "no-change apply")
                        for tool in tools
                    )
                    print(f"round {round_}: {line}", flush=True)

            print(f"\n{count} objects, one light cluster, {args.rounds} interleaved rounds")
            for phase in ("first apply", "no-change apply"):
                print(f"{phase}:")
                for tool in tools:
                    print(f"  {tool:10} {summary(runs[(tool, phase)])}")
                    print(f"  {'':10} CPU {summary(cpus[(tool, phase)])}")
                    print(f"  {'':10} {requests_text(requests[(tool, phase)])} (last round)")
                ratio = statistics.median(runs[("reconciler", phase)]) / statistics.median(
                    runs[("kubectl", phase)]
                )
                cpu_ratio = statistics.median(cpus[("reconciler", phase)]) / statistics.median(
                    cpus[("kubectl", phase)]
                )
                print(
                    f"  ratio reconciler / kubectl: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU "
                    "(of the medians)"
                )
        finally:
            controlplane.stop(tmp / "devenv")


if __name__ == "__main__":
    main()
