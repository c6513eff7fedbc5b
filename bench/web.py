"""Benchmark the fleet page's server side at fleet scale: one snapshot of the store, and the
page's answers, for N clusters x M apps (every app on every cluster).

    .venv/bin/python bench/web.py [--clusters 1000] [--apps 50]

Fills a store in a temp dir (a few drifted and failed targets), serves it with the real app
and server on loopback, then prints: the snapshot read time, the time and size of /api/page
(grouped columns; the first request includes the read), of /api/page filtered to one label
value (cluster cells), of /api/status, and how long /healthz takes while a /api/status is
being built. Not a timed test.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from reconciler.fields import FieldChange
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow
from reconciler.web.app import create_app
from reconciler.web.model import ClusterInfo, Fleet
from reconciler.web.server import HttpServer
from reconciler.web.snapshot import SnapshotCache

REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east", "sa-east")


def fill(state: Path, clusters: list[ClusterInfo], apps: int) -> None:
    now = datetime.now(UTC)
    sha = "1bf2028cdf11" + "0" * 28
    with Store.open(state) as store:
        store.record_revision(sha, now, True, None)
        store.record_fetch_success("/srv/repo", "main", sha, now)
        for a in range(apps):
            for i, cluster in enumerate(clusters):
                failed = (a * 7 + i) % 997 == 0
                state_ = State.FAILED if failed else State.SYNCED
                store.set_status(
                    StatusRow(
                        f"app-{a:02}", cluster.name, state_, "boom" if failed else "", sha, now
                    )
                )
        for i in range(0, len(clusters), 50):
            store.record_drift(
                "app-00",
                clusters[i].name,
                "Deployment/demo/app-00",
                "modified",
                [FieldChange("spec.replicas", 2, 5, "kubectl-scale", now)],
                sha,
                now,
            )


def timed_get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - started, len(body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--apps", type=int, default=50)
    args = parser.parse_args()
    clusters = [
        ClusterInfo(f"edge-{i:04}", {"region": REGIONS[i % len(REGIONS)], "tier": str(i % 3)})
        for i in range(args.clusters)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        started = time.perf_counter()
        fill(state, clusters, args.apps)
        print(f"filled {args.clusters * args.apps} targets in {time.perf_counter() - started:.1f}s")
        fleet = Fleet(tuple(clusters), "1")
        with Store.open_readonly(state) as store:
            probe = SnapshotCache(store, lambda: fleet, max_age=0)
            started = time.perf_counter()
            probe.get()
            print(f"snapshot read (status + open drift): {time.perf_counter() - started:.3f}s")
            stopping = threading.Event()
            cache = SnapshotCache(store, lambda: fleet)  # the first request reads it
            app = create_app(cache, CollectorRegistry(), ready=lambda: True, stopping=stopping)
            server = HttpServer("127.0.0.1:0", app, stopping=stopping).start()
            base = f"http://127.0.0.1:{server.port}"
            try:
                timed_get(f"{base}/healthz")
                for name, path in (
                    ("page (grouped)", "/api/page"),
                    ("page, one region", "/api/page?label=region=eu-west"),
                    ("status JSON", "/api/status"),
                ):
                    seconds, size = timed_get(base + path)
                    print(f"{name:18} {seconds:.3f}s  {size / 1024:8.1f} KiB")
                slow = threading.Thread(target=timed_get, args=(f"{base}/api/status",))
                slow.start()
                time.sleep(0.05)
                seconds, _ = timed_get(f"{base}/healthz")
                slow.join()
                print(f"/healthz during a /api/status build: {seconds * 1000:.1f} ms")
            finally:
                server.stop()


if __name__ == "__main__":
    main()
