"""Benchmark: what clusters that run workloads cost, next to light (API-server-only) clusters.

In one run, alternating light and full starts of the same N clusters (binaries cached, i.e. a
warm start): wall time of `controlplane.start` until it returns (light: every /readyz ok; full:
also every cluster's fake nodes Ready and its controller manager working), then after --settle
seconds the resident memory (VmRSS from /proc) of every process, per binary. Each light round
then also adds the workloads to its running clusters (`controlplane.up`): that step's time is
what full clusters add to a start, measured against the same API servers, so less exposed to
a noisy machine than the difference of two separate starts.

    .venv/bin/python bench/devenv.py [--clusters 3] [--rounds 3] [--settle 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from reconciler.devenv import controlplane


def _rss_by_binary(state: controlplane.DevEnvState) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    found["etcd"].append(controlplane.rss_bytes(state.etcd_pid))
    for cluster in state.clusters:
        found["kube-apiserver"].append(controlplane.rss_bytes(cluster.pid))
        for worker, pid in cluster.workers.items():
            found[worker].append(controlplane.rss_bytes(pid))
    return found


def _one(
    names: list[str], workloads: bool, settle: float
) -> tuple[float, float, dict[str, list[int]]]:
    """(start time, time to add the workloads afterwards or 0, RSS per binary)."""
    with tempfile.TemporaryDirectory(prefix="bench-devenv-") as tmp:
        began = time.perf_counter()
        state = controlplane.start(
            Path(tmp),
            names,
            controlplane.Launch(die_with_parent=True, workloads=workloads, timeout=300),
        )
        took = time.perf_counter() - began
        try:
            time.sleep(settle)
            rss = _rss_by_binary(state)
            added = 0.0
            if not workloads:
                began = time.perf_counter()
                controlplane.up(
                    Path(tmp),
                    names,
                    controlplane.Launch(workloads=True, die_with_parent=True, timeout=300),
                )
                added = time.perf_counter() - began
            return took, added, rss
        finally:
            controlplane.stop(Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=20.0)
    args = parser.parse_args()
    names = [f"bench-{i + 1}" for i in range(args.clusters)]
    _one(names[:1], True, 0)  # builds or warms the binaries' page cache; not counted
    times: dict[bool, list[float]] = {False: [], True: []}
    adding: list[float] = []
    memory: dict[bool, dict[str, list[int]]] = {False: defaultdict(list), True: defaultdict(list)}
    for _ in range(args.rounds):
        for workloads in (False, True):
            took, added, rss = _one(names, workloads, args.settle)
            times[workloads].append(took)
            if not workloads:
                adding.append(added)
            for binary, values in rss.items():
                memory[workloads][binary] += values
    mib = 1024 * 1024
    print(f"{args.clusters} clusters, {args.rounds} rounds, RSS after {args.settle:.0f}s settle")
    for workloads in (False, True):
        label = "full (controllers + kwok)" if workloads else "light (API servers only)"
        runs = ", ".join(f"{t:.1f}" for t in times[workloads])
        print(f"  {label}: start median {statistics.median(times[workloads]):.1f} s ({runs})")
    added = 0.0
    for binary, values in sorted(memory[True].items()):
        per_process = statistics.median(values) / mib
        print(f"  {binary}: median RSS {per_process:.0f} MiB per process")
        if binary not in ("etcd", "kube-apiserver"):
            added += per_process
    print(f"  added per cluster (controller manager + scheduler + kwok): {added:.0f} MiB")
    light, full = statistics.median(times[False]), statistics.median(times[True])
    print(f"  start time full / light: {full / light:.2f}x ({full - light:+.1f} s)")
    runs = ", ".join(f"{t:.1f}" for t in adding)
    median = statistics.median(adding)
    print(f"  adding the workloads to running light clusters: median {median:.1f} s ({runs})")


if __name__ == "__main__":
    main()
