"""Benchmark: one daemon for N clusters (issue #13), against real API servers it starts itself.

For each N (``--clusters 10,100,300,1000``): a light control plane of its own (``--apiservers``
kube-apiservers sharing one etcd, reconciler/devenv), a kubeconfig with N contexts spread over
them (contexts reaching the same API server are different Cluster entries, each owning its own
namespaces), a local Git config repo with 5 apps of 5 objects each (ConfigMap x2, Secret,
ServiceAccount, headless Service) placed on every cluster, each (cluster, app) in a namespace
of its own, and ``reconciler run`` as a subprocess. Measured:

- first convergence: daemon start until every target is Synced at the first commit (store);
- no-change round: after convergence, the drift round (every cluster passes once more with
  nothing to change): its duration (first to last pass, daemon metrics) and the requests the
  API servers served meanwhile (``apiserver_request_total``, summed over the API servers, by
  verb; from the snapshot after convergence, so idle traffic such as watches is included);
- no-op commit: a commit that changes no object (README.md) until every target runs it: every
  cluster passes at once with nothing to change (its duration and requests);
- one-app commit: ``git commit`` of a change to one app until every cluster serves it (one
  labelled LIST per API server, polled);
- drift: an object edited by another field manager until the store holds the open drift;
- the daemon process: peak RSS (VmHWM), peak open fds (and per cluster), peak threads, CPU
  seconds (utime + stime), sampled from /proc every 0.5 s; errors: targets not Synced and
  error log events.

    .venv/bin/python bench/scale.py [--clusters 10,100] [--apiservers 3] [--json]
        [--drift-interval 60s] [--profile DIR]   (py-spy record of the daemon, if installed)

Long runs (N=1000 takes several minutes) belong in the background: ``nohup ... &``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.devenv import controlplane
from reconciler.store.db import Store
from reconciler.store.rows import State

API = "reconciler.io/v1alpha1"
APPS = [f"app-{i}" for i in range(5)]
OBJECTS_PER_APP = 5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_BACKGROUND = {"leases", "endpoints"}  # what the API servers do for themselves, every few seconds
_PASSES = re.compile(
    r'^reconciler_reconcile_duration_seconds_(count|sum)\{cluster="([^"]+)"\} (\S+)$'
)


# -- the setup --------------------------------------------------------------------------------


def write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.test"]
    done = subprocess.run(
        ["git", "-C", str(repo), *identity, *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def cluster_names(n: int) -> list[str]:
    return [f"c{i:04d}" for i in range(n)]


def write_kubeconfig(base: Path, out: Path, names: list[str], apiservers: list[str]) -> None:
    """N contexts, each its own cluster entry reaching API server ``i % len(apiservers)``."""
    config: dict[str, Any] = yaml.safe_load(base.read_text())
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    clusters = {c["name"]: c["cluster"] for c in config["clusters"]}
    config["clusters"], config["contexts"] = [], []
    for i, name in enumerate(names):
        like = contexts[apiservers[i % len(apiservers)]]
        config["clusters"].append({"name": name, "cluster": clusters[like["cluster"]]})
        config["contexts"].append(
            {"name": name, "context": {"cluster": name, "user": like["user"]}}
        )
    config["current-context"] = names[0]
    out.write_text(yaml.safe_dump(config))


def app_objects(app: str, version: int) -> list[dict[str, Any]]:
    namespace = "${cluster.name}-" + app
    meta = {"namespace": namespace, "labels": {"bench": app}}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", **meta},
            "data": {"version": str(version), "cluster": "${cluster.name}"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "static", **meta},
            "data": {"greeting": "hello"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "credentials", **meta},
            "stringData": {"password": "not-a-secret"},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": app, **meta}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": app, **meta},
            "spec": {
                "clusterIP": "None",  # headless: no service IP to allocate per cluster
                "selector": {"app": app},
                "ports": [{"name": "http", "port": 80}],
            },
        },
    ]


def write_app(repo: Path, app: str, version: int) -> None:
    write(
        repo / "apps" / app / "app.yaml",
        {
            "apiVersion": API,
            "kind": "App",
            "metadata": {"name": app},
            "spec": {
                "source": {"manifests": "manifests/"},
                "placement": {"selector": {"matchLabels": {"fleet": "bench"}}},
                "sync": {"prune": True, "selfHeal": True},
            },
        },
    )
    manifests = repo / "apps" / app / "manifests" / "objects.yaml"
    manifests.parent.mkdir(parents=True, exist_ok=True)
    manifests.write_text(yaml.safe_dump_all(app_objects(app, version), sort_keys=False))


def make_repo(repo: Path, names: list[str]) -> str:
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for name in names:
        write(
            repo / "clusters" / f"{name}.yaml",
            {
                "apiVersion": API,
                "kind": "Cluster",
                "metadata": {"name": name, "labels": {"fleet": "bench"}},
            },
        )
    for app in APPS:
        write_app(repo, app, 0)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return git(repo, "rev-parse", "HEAD")


# -- what the API servers served --------------------------------------------------------------


class ApiServers:
    """``apiserver_request_total`` of every API server, and labelled LISTs for the latency."""

    def __init__(self, plane: controlplane.DevEnvState) -> None:
        self.ports = [c.port for c in plane.clusters]
        self.token = plane.token
        self.ctx = ssl.create_default_context(cafile=plane.ca)

    def _get(self, port: int, path: str) -> bytes:
        request = urllib.request.Request(
            f"https://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, context=self.ctx, timeout=60) as answer:
            body: bytes = answer.read()
            return body

    def requests(self) -> Counter[str]:
        """Requests served so far, summed over the API servers, by verb (dry runs apart)."""
        total: Counter[str] = Counter()
        for port in self.ports:
            for line in self._get(port, "/metrics").decode().splitlines():
                match = _SAMPLE.match(line)
                if match is None:
                    continue
                labels = dict(_LABEL.findall(match["labels"]))
                verb = labels.get("verb", "?")
                if labels.get("dry_run"):
                    verb += " (dry run)"
                if (
                    labels.get("resource") in _BACKGROUND
                    or labels.get("subresource") == "openapi/v3"
                ):
                    verb = "background"  # the API server's own leases and endpoints
                total[verb] += int(float(match["value"]))
        return total

    def configmaps(self, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for port in self.ports:
            body = self._get(port, f"/api/v1/configmaps?labelSelector={selector}")
            items += json.loads(body)["items"]
        return items

    def patch_configmap(self, port: int, namespace: str, name: str, data: dict[str, str]) -> None:
        request = urllib.request.Request(
            f"https://127.0.0.1:{port}/api/v1/namespaces/{namespace}/configmaps/{name}"
            "?fieldManager=kubectl-edit",
            data=json.dumps({"data": data}).encode(),
            method="PATCH",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/merge-patch+json",
            },
        )
        with urllib.request.urlopen(request, context=self.ctx, timeout=60) as answer:
            answer.read()


def delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in sorted(after) if after[k] - before[k] > 0}


def requests_of(counts: dict[str, int]) -> int:
    """The daemon's requests (the API servers' own background traffic left out)."""
    return sum(v for k, v in counts.items() if k != "background")


# -- the daemon process ------------------------------------------------------------------------


@dataclass
class Peaks:
    rss_mib: float = 0.0
    fds: int = 0
    threads: int = 0
    apiserver_sockets: int = 0  # TCP connections to the API servers


def sockets_to(pid: int, ports: set[int]) -> int:
    """The process's TCP connections whose remote port is one of ``ports``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                remote_port = int(cols[2].rsplit(":", 1)[1], 16) if len(cols) > 9 else -1
                if remote_port in ports and cols[9] in inodes:
                    count += 1
    return count


class Sampler:
    """Peak open fds and threads of a process (RSS peak is the kernel's VmHWM)."""

    def __init__(self, pid: int, ports: set[int]) -> None:
        self.pid = pid
        self.ports = ports
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{self.pid}/status").read_text()
            values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            self.peaks.rss_mib = int(values["VmHWM"].split()[0]) / 1024
            self.peaks.threads = max(self.peaks.threads, int(values["Threads"]))
            self.peaks.fds = max(self.peaks.fds, len(os.listdir(f"/proc/{self.pid}/fd")))
            sockets = sockets_to(self.pid, self.ports)
            self.peaks.apiserver_sockets = max(self.peaks.apiserver_sockets, sockets)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> float:
    """Poll until ``check``; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s")
        time.sleep(every)


def daemon_port(log: Path) -> int | None:
    with contextlib.suppress(OSError):
        for line in log.read_text().splitlines():
            if '"port"' in line:
                with contextlib.suppress(ValueError):
                    port = json.loads(line).get("port")
                    if isinstance(port, int):
                        return port
    return None


def pass_counts(port: int) -> dict[str, tuple[float, float]]:
    """Per cluster: (passes, seconds spent in them) from the daemon's /metrics (asked again
    while a busy daemon answers 503: its page gives up on answers slower than 10 s)."""
    for attempt in range(10):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as answer:
                text = answer.read().decode()
            break
        except (urllib.error.URLError, TimeoutError):
            if attempt == 9:
                raise
            time.sleep(1.0)
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = _PASSES.match(line)
        if match:
            pair = out.setdefault(match[2], [0.0, 0.0])
            pair[0 if match[1] == "count" else 1] = float(match[3])
    return {k: (v[0], v[1]) for k, v in out.items()}


def passes_of(counts: dict[str, tuple[float, float]], cluster: str) -> float:
    return counts.get(cluster, (0.0, 0.0))[0]


def error_events(log: Path) -> list[str]:
    errors = []
    with contextlib.suppress(OSError):
        for line in log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("level") in ("error", "critical"):
                    errors.append(str(event.get("event")))
    return errors


# -- one N --------------------------------------------------------------------------------------


@dataclass
class Result:
    clusters: int
    apiservers: int
    targets: int
    objects: int
    first_convergence_s: float = 0.0
    first_convergence_requests: dict[str, int] = field(default_factory=dict)
    no_change_round_s: float = 0.0
    no_change_pass_mean_s: float = 0.0
    no_change_requests: dict[str, int] = field(default_factory=dict)
    no_change_requests_total: int = 0
    requests_per_target: float = 0.0
    requests_per_object: float = 0.0
    noop_commit_s: float = 0.0
    noop_commit_requests: dict[str, int] = field(default_factory=dict)
    commit_to_applied_s: float = 0.0
    drift_to_detected_s: float = 0.0
    peak_rss_mib: float = 0.0
    peak_fds: int = 0
    fds_per_cluster: float = 0.0
    peak_threads: int = 0
    peak_apiserver_sockets: int = 0
    cpu_seconds: float = 0.0
    cpu_seconds_first_convergence: float = 0.0
    not_synced: int = 0
    error_events: list[str] = field(default_factory=list)


def statuses(state: Path) -> dict[tuple[str, str], tuple[State, str | None]]:
    if not (state / "state.db").exists():
        return {}
    try:
        with Store.open_readonly(state) as store:
            return {(r.app, r.cluster): (r.state, r.revision) for r in store.list_status()}
    except Exception:  # the daemon is creating its store
        return {}


def converged_at(
    found: dict[tuple[str, str], tuple[State, str | None]], targets: int, sha: str
) -> bool:
    return len(found) == targets and all(v == (State.SYNCED, sha) for v in found.values())


def open_drift(state: Path, app: str, cluster: str) -> bool:
    with Store.open_readonly(state) as store:
        return bool(store.list_drift(app=app, cluster=cluster))


@contextlib.contextmanager
def running(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("w") as err:
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield process
    finally:
        for child in (
            Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            if process.poll() is None
            else []
        ):
            with contextlib.suppress(OSError):
                os.kill(int(child), signal.SIGTERM)  # the daemon under py-spy
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def bench(n: int, args: argparse.Namespace, root: Path) -> Result:
    names = cluster_names(n)
    apiservers = [f"api-{i}" for i in range(args.apiservers)]
    result = Result(n, len(apiservers), n * len(APPS), n * len(APPS) * OBJECTS_PER_APP)

    def say(message: str) -> None:
        if not args.quiet:
            print(f"[N={n}] {message}", file=sys.stderr, flush=True)

    say(f"starting {len(apiservers)} API servers ...")
    plane = controlplane.start(
        root / "cp", apiservers, controlplane.Launch(die_with_parent=True, timeout=180)
    )
    try:
        servers = ApiServers(plane)
        kubeconfig = root / "kubeconfig"
        write_kubeconfig(Path(plane.kubeconfig), kubeconfig, names, apiservers)
        repo, state, log = root / "repo", root / "state", root / "daemon.log"
        first = make_repo(repo, names)
        cmd = [
            sys.executable, "-m", "reconciler", "run", "--repo", str(repo),
            "--state-dir", str(state), "--kubeconfig", str(kubeconfig),
            "--listen", "127.0.0.1:0", "--drift-interval", args.drift_interval,
            "--interval", "10s",
        ]  # fmt: skip
        if args.profile:
            out = Path(args.profile) / f"daemon-{n}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            spy = [
                shutil.which("py-spy", path=_PATH) or "py-spy",
                "record",
                "--format",
                "raw",
                "--rate",
                "50",
                "-o",
                str(out),
            ]
            cmd = [*spy, "--", *cmd]
        before = servers.requests()
        started = time.monotonic()
        with running(cmd, log) as process:
            pid = process.pid
            if args.profile:  # py-spy's child is the daemon
                time.sleep(2.0)
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                pid = int(children[0]) if children else pid
            with Sampler(pid, set(servers.ports)) as sampler:
                say("waiting for first convergence ...")
                wait_for(
                    lambda: converged_at(statuses(state), result.targets, first),
                    args.timeout,
                    "first convergence",
                    every=1.0,
                )
                result.first_convergence_s = time.monotonic() - started
                result.cpu_seconds_first_convergence = sampler.cpu_seconds()
                converged = servers.requests()
                result.first_convergence_requests = delta(converged, before)
                say(
                    f"converged in {result.first_convergence_s:.1f}s; waiting for a drift round ..."
                )

                port = daemon_port(log)
                assert port is not None, "the daemon did not say its port"
                counts0 = pass_counts(port)
                requests0 = servers.requests()
                first_pass: list[float] = []

                def round_done() -> bool:
                    counts = pass_counts(port)
                    more = [
                        c for c in names if counts.get(c, (0, 0))[0] > counts0.get(c, (0, 0))[0]
                    ]
                    if more and not first_pass:
                        first_pass.append(time.monotonic())
                    return len(more) == n

                done_at = wait_for(round_done, args.timeout, "a no-change round", every=0.5)
                after = servers.requests()
                counts1 = pass_counts(port)
                result.no_change_round_s = done_at - (first_pass[0] if first_pass else done_at)
                passes = sum(counts1[c][0] - counts0.get(c, (0, 0))[0] for c in names)
                seconds = sum(counts1[c][1] - counts0.get(c, (0, 0))[1] for c in names)
                result.no_change_pass_mean_s = seconds / passes if passes else 0.0
                result.no_change_requests = delta(after, requests0)
                total = requests_of(result.no_change_requests)
                result.no_change_requests_total = total
                result.requests_per_target = total / result.targets
                result.requests_per_object = total / result.objects
                say(f"no-change round {result.no_change_round_s:.1f}s, {total} requests")

                # A commit that changes no object: every cluster passes at once, nothing to do.
                (repo / "README.md").write_text("A commit that changes no object.\n")
                git(repo, "add", "-A")
                git(repo, "commit", "-q", "-m", "docs only")
                noop = git(repo, "rev-parse", "HEAD")
                requests1, committed = servers.requests(), time.monotonic()
                result.noop_commit_s = (
                    wait_for(
                        lambda: converged_at(statuses(state), result.targets, noop),
                        args.timeout,
                        "the no-op commit",
                    )
                    - committed
                )
                result.noop_commit_requests = delta(servers.requests(), requests1)
                noop_total = requests_of(result.noop_commit_requests)
                say(f"no-op commit passed in {result.noop_commit_s:.1f}s, {noop_total} requests")

                # One app changes: committed until every cluster serves it.
                write_app(repo, APPS[0], 1)
                git(repo, "commit", "-q", "-am", f"{APPS[0]} v1")
                committed = time.monotonic()

                def applied() -> bool:
                    items = servers.configmaps(f"bench={APPS[0]}")
                    fresh = [
                        i for i in items
                        if i["metadata"]["name"] == "settings" and i["data"].get("version") == "1"
                    ]  # fmt: skip
                    return len(fresh) >= n

                result.commit_to_applied_s = (
                    wait_for(applied, args.timeout, "the one-app commit", every=0.5) - committed
                )
                say(f"one-app commit applied everywhere in {result.commit_to_applied_s:.1f}s")

                # Drift: another field manager edits one object of the first cluster.
                victim, app = names[0], APPS[1]
                servers.patch_configmap(
                    servers.ports[0], f"{victim}-{app}", "static", {"greeting": "edited"}
                )
                edited = time.monotonic()
                result.drift_to_detected_s = (
                    wait_for(lambda: open_drift(state, app, victim), args.timeout, "drift", 0.2)
                    - edited
                )
                say(f"drift detected in {result.drift_to_detected_s:.1f}s")
                result.cpu_seconds = sampler.cpu_seconds()
            if pid != process.pid:  # py-spy writes its profile once the daemon is gone
                os.kill(pid, signal.SIGTERM)
                process.wait(timeout=120)
            peaks = sampler.peaks
            result.peak_rss_mib = round(peaks.rss_mib, 1)
            result.peak_fds = peaks.fds
            result.fds_per_cluster = round(peaks.fds / n, 2)
            result.peak_threads = peaks.threads
            result.peak_apiserver_sockets = peaks.apiserver_sockets
            final = statuses(state)
            result.not_synced = sum(1 for s, _ in final.values() if s is not State.SYNCED)
            result.error_events = error_events(log)
        if args.keep:
            shutil.copy(log, Path(args.keep) / f"daemon-{n}.log")
    finally:
        controlplane.stop(root / "cp")
    return result


# -- the report ----------------------------------------------------------------------------------


ROWS: list[tuple[str, Callable[[Result], str]]] = [
    ("targets (apps x clusters)", lambda r: str(r.targets)),
    ("objects", lambda r: str(r.objects)),
    ("first convergence (s)", lambda r: f"{r.first_convergence_s:.1f}"),
    ("first convergence: requests", lambda r: str(requests_of(r.first_convergence_requests))),
    ("no-change drift round: first to last pass (s)", lambda r: f"{r.no_change_round_s:.1f}"),
    ("no-change: mean pass per cluster (s)", lambda r: f"{r.no_change_pass_mean_s:.3f}"),
    ("no-change: requests", lambda r: str(r.no_change_requests_total)),
    ("no-change: by verb", lambda r: verbs(r.no_change_requests)),
    ("no-change: requests per target", lambda r: f"{r.requests_per_target:.2f}"),
    ("no-change: requests per object", lambda r: f"{r.requests_per_object:.3f}"),
    ("no-op commit: every cluster passed (s)", lambda r: f"{r.noop_commit_s:.1f}"),
    ("no-op commit: requests", lambda r: str(requests_of(r.noop_commit_requests))),
    ("no-op commit: by verb", lambda r: verbs(r.noop_commit_requests)),
    (
        "no-op commit: requests per object",
        lambda r: f"{requests_of(r.noop_commit_requests) / r.objects:.3f}",
    ),
    ("one-app commit applied everywhere (s)", lambda r: f"{r.commit_to_applied_s:.1f}"),
    ("drift detected (s)", lambda r: f"{r.drift_to_detected_s:.1f}"),
    ("peak RSS (MiB)", lambda r: f"{r.peak_rss_mib:.0f}"),
    ("peak open fds", lambda r: str(r.peak_fds)),
    ("peak open fds per cluster", lambda r: f"{r.fds_per_cluster:.2f}"),
    ("peak TCP connections to the API servers", lambda r: str(r.peak_apiserver_sockets)),
    ("peak threads", lambda r: str(r.peak_threads)),
    ("CPU seconds (total)", lambda r: f"{r.cpu_seconds:.1f}"),
    ("CPU seconds to first convergence", lambda r: f"{r.cpu_seconds_first_convergence:.1f}"),
    ("targets not Synced at the end", lambda r: str(r.not_synced)),
    ("error log events", lambda r: str(len(r.error_events))),
]


def verbs(counts: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in counts.items() if k != "background")


def growth(results: list[Result], cell: Callable[[Result], str]) -> str:
    """How a figure grows with N, smallest N to largest: the exponent b of N^b."""
    if len(results) < 2 or results[0].clusters == results[-1].clusters:
        return ""
    try:
        low, high = float(cell(results[0])), float(cell(results[-1]))
    except ValueError:
        return ""
    if low <= 0 or high <= 0:
        return ""
    b = math.log(high / low) / math.log(results[-1].clusters / results[0].clusters)
    return f"N^{b:.2f}"


def table(results: list[Result], markdown: bool = False) -> str:
    header = ["N clusters", *[str(r.clusters) for r in results], "grows as"]
    rows = [header] + [
        [name, *[cell(r) for r in results], growth(results, cell)] for name, cell in ROWS
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.strip() for c in row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clusters", default="10,100", help="comma-separated Ns (10,100,300,1000)")
    parser.add_argument("--apiservers", type=int, default=3)
    parser.add_argument("--drift-interval", default="60s")
    parser.add_argument("--timeout", type=float, default=900.0, help="per phase, seconds")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--markdown", action="store_true", help="the table in Markdown")
    parser.add_argument(
        "--from-json", metavar="FILE", nargs="+", help="print the table of earlier --json runs"
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy flame graph of the daemon")
    parser.add_argument("--keep", metavar="DIR", help="copy each daemon log here")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    # A background job ignores SIGINT: stop on SIGTERM too, through the cleanups (the daemon,
    # then the control plane).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.profile and shutil.which("py-spy", path=_PATH) is None:
        parser.error("--profile needs py-spy on PATH (pip install py-spy)")
    if args.from_json:
        loaded = [Result(**r) for f in args.from_json for r in json.loads(Path(f).read_text())]
        print(table(sorted(loaded, key=lambda r: r.clusters), markdown=args.markdown))
        return
    results = []
    for n in [int(x) for x in args.clusters.split(",") if x.strip()]:
        with tempfile.TemporaryDirectory(prefix=f"reconciler-bench-scale-{n}-") as tmp:
            results.append(bench(n, args, Path(tmp)))
        if args.profile and (Path(args.profile) / f"daemon-{n}.txt").exists():
            print(profile_summary(Path(args.profile) / f"daemon-{n}.txt"), file=sys.stderr)
        if not args.json:
            print(table(results[-1:]), flush=True)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print()
        print(table(results, markdown=args.markdown))


def profile_summary(path: Path, top: int = 30) -> str:
    """The functions of the package holding most samples (inclusive), from py-spy's raw
    (collapsed) stacks."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        frames = {f for f in stack.split(";") if "reconciler/" in f or "kubernetes/" in f}
        for frame in frames:
            inclusive[re.sub(r":\d+\)$", ")", frame)] += int(count)
    lines = [f"{path.name}: {total} samples"]
    lines += [f"{100 * c / max(1, total):5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
