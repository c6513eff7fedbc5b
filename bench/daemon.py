"""Benchmark: the daemon's commit-to-applied latency (watch mode) and its idle cost.

Starts a control plane of its own (3 real clusters), a local Git config repo with 3 apps on
every cluster, and `reconciler run` as a subprocess watching that repo.

- Latency: commit a change to one app, then poll all 3 clusters (official client, every 10 ms)
  until each serves the new value; time from `git commit` returning to the last cluster.
- Idle: with nothing to do but poll (default --interval 30s) and check drift (every
  --drift-interval, 10s here so passes do happen), the daemon's CPU time (utime + stime from
  /proc) and memory (VmRSS, VmHWM) over --idle seconds.

    .venv/bin/python bench/daemon.py [--commits 10] [--idle 30] [--drift-interval 10s]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from reconciler.devenv import controlplane

CLUSTERS = ["bench-1", "bench-2", "bench-3"]
APPS = ["alpha", "beta", "gamma"]
API = "reconciler.io/v1alpha1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.test"]
    subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True)


def write_app(repo: Path, app: str, version: int) -> None:
    write(
        repo / "apps" / app / "app.yaml",
        {
            "apiVersion": API,
            "kind": "App",
            "metadata": {"name": app},
            "spec": {
                "namespace": f"bench-{app}",
                "source": {"manifests": "manifests/"},
                "placement": {"clusters": CLUSTERS},
            },
        },
    )
    labels = {"app": app}
    # Two documents: the ConfigMap whose version moves, and a Deployment that does not.
    text = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": app},
            "data": {"version": str(version)},
        }
    )
    text += "---\n" + yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": app},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": app, "image": "nginx:1.27"}]},
                },
            },
        }
    )
    manifests = repo / "apps" / app / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / "objects.yaml").write_text(text)


def make_repo(repo: Path) -> None:
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for name in CLUSTERS:
        write(
            repo / "clusters" / f"{name}.yaml",
            {"apiVersion": API, "kind": "Cluster", "metadata": {"name": name, "labels": {}}},
        )
    for app in APPS:
        write_app(repo, app, 0)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")


def wait_version(core: client.CoreV1Api, app: str, version: str, timeout: float) -> float:
    """Poll one cluster until the app's ConfigMap has ``version``; returns when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = core.read_namespaced_config_map(app, f"bench-{app}")
            if (found.data or {}).get("version") == version:
                return time.monotonic()
        except client.ApiException:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"{app} version {version} not applied within {timeout}s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    parser.add_argument("--drift-interval", default="10s")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="reconciler-bench-daemon-") as tmp:
        root = Path(tmp)
        print("starting 3 clusters ...", file=sys.stderr)
        plane = controlplane.start(root / "cp", CLUSTERS, controlplane.Launch(die_with_parent=True))
        repo = root / "repo"
        make_repo(repo)
        cores = {
            name: client.CoreV1Api(
                config.new_client_from_config(config_file=plane.kubeconfig, context=name)
            )
            for name in CLUSTERS
        }
        log = (root / "daemon.log").open("w")
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "run",
                "--repo",
                str(repo),
                "--state-dir",
                str(root / "state"),
                "--kubeconfig",
                plane.kubeconfig,
                "--listen",
                "127.0.0.1:0",
                "--drift-interval",
                args.drift_interval,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            for name in CLUSTERS:
                for app in APPS:
                    wait_version(cores[name], app, "0", timeout=60)
            time.sleep(1.0)  # let the first passes settle

            latencies = []
            for i in range(1, args.commits + 1):
                app = APPS[i % len(APPS)]
                write_app(repo, app, i)
                git(repo, "commit", "-q", "-am", f"{app} v{i}")
                committed = time.monotonic()
                with ThreadPoolExecutor(len(CLUSTERS)) as pool:
                    waits = [pool.submit(wait_version, cores[n], app, str(i), 30) for n in CLUSTERS]
                    seen = [w.result() for w in waits]
                latencies.append(max(seen) - committed)
                time.sleep(0.5)

            time.sleep(2.0)  # quiet down after the last commit
            cpu_before, started = cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(args.idle)
            cpu_used, elapsed = cpu_seconds(daemon.pid) - cpu_before, time.monotonic() - started
            memory = memory_kib(daemon.pid)
        finally:
            daemon.terminate()
            daemon.wait(timeout=15)
            log.close()
            controlplane.stop(root / "cp")

    ordered = sorted(latencies)
    p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
    print(f"commit-to-applied on 3 clusters, watch mode, {len(latencies)} commits:")
    print(
        f"  median {statistics.median(ordered) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms (target < 2000 ms)"
    )
    rss, peak = memory.get("VmRSS", 0) / 1024, memory.get("VmHWM", 0) / 1024
    print(
        f"idle daemon, 3 clusters x 3 apps, drift check every {args.drift_interval}, "
        f"{elapsed:.0f}s: CPU {cpu_used:.2f}s ({100 * cpu_used / elapsed:.2f}% of one core), "
        f"RSS {rss:.1f} MiB (peak {peak:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
