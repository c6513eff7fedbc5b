"""Real local Kubernetes API servers: one etcd, N kube-apiservers on loopback.

Each "cluster" is a kube-apiserver with its own etcd prefix, port, serving certificate,
service-account keys and admin token. One kubeconfig holds a context per cluster name.
With ``workloads`` each cluster also runs kube-controller-manager, kube-scheduler and kwok
(see ``workloads``), so what is applied to it really runs. The state file ``devenv.json``
records every PID we started, so ``stop`` kills exactly those, and ``up`` restarts only what
died, with its data, certificates and port. This module decides what starts, restarts and
stops, and in which order; ``components`` says how each one runs, ``processes`` supervises
them and ``readiness`` waits for them.
"""

from __future__ import annotations

import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.devenv import binaries, certs, workloads
from reconciler.devenv.components import (
    cluster_kubeconfig,
    pki_dir,
    spawn_apiserver,
    spawn_etcd,
    worker_log,
    write_kubeconfig,
)
from reconciler.devenv.processes import (
    alive,
    check_port_free,
    free_port,
    is_ours,
    rss_bytes,
    running_as,
    spawn,
    terminate,
)
from reconciler.devenv.readiness import readyz, wait_apiservers, wait_etcd, wait_workloads
from reconciler.devenv.state import STATE_FILE, ClusterInfo, DevEnvError, DevEnvState, default_dir

__all__ = [
    "DEFAULT_CLUSTERS",
    "UP",
    "ClusterInfo",
    "DevEnvError",
    "DevEnvState",
    "Launch",
    "UpResult",
    "default_dir",
    "rss_bytes",
    "running",
    "start",
    "stop",
    "up",
]

DEFAULT_CLUSTERS = ("beijing-1", "beijing-2", "us-west-1")


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Launch:
    """How local clusters are started (``start``) or brought back (``up``)."""

    base_port: int | None = None  # consecutive ports from here; None: free ports
    workloads: bool = False  # controllers, scheduler and kwok nodes: pods run
    timeout: float = 90.0  # seconds until every cluster is ready
    die_with_parent: bool = False  # the processes end with this one (tests)
    progress: Progress = _quiet  # told what is built or waited for


def start(
    directory: Path, names: Sequence[str] = DEFAULT_CLUSTERS, launch: Launch = Launch()
) -> DevEnvState:
    """Start one etcd and one kube-apiserver per name; return once every /readyz is ok.

    With ``launch.workloads`` every cluster also gets kube-controller-manager, kube-scheduler
    and kwok with its fake nodes, and this returns once each cluster can run pods.
    On any failure everything started so far is stopped and a DevEnvError names what failed
    and where its log is.
    """
    names = list(names)
    if not names:
        raise DevEnvError("no cluster names given")
    if len(set(names)) != len(names):
        raise DevEnvError(f"duplicate cluster names in {','.join(names)}")
    etcd_bin = binaries.ensure("etcd", launch.progress)
    apiserver_bin = binaries.ensure("kube-apiserver", launch.progress)
    worker_bins = _worker_binaries(launch.progress) if launch.workloads else {}

    directory.mkdir(parents=True, exist_ok=True)
    if launch.base_port is not None:
        ports = [launch.base_port + i for i in range(len(names))]
        for name, port in zip(names, ports, strict=True):
            check_port_free(port, f"cluster {name}")
    else:
        ports = [free_port() for _ in names]

    for stale in ("etcd-data", "pki"):
        shutil.rmtree(directory / stale, ignore_errors=True)
    pki = directory / "pki"
    pki.mkdir(mode=0o700)
    ca = certs.make_ca(pki)
    token = secrets.token_hex(24)
    (pki / "tokens.csv").write_text(f'{token},reconciler-devenv-admin,admin,"system:masters"\n')
    (pki / "tokens.csv").chmod(0o600)

    etcd_log = directory / "etcd.log"
    etcd_log.write_text("")
    state = DevEnvState(
        directory=str(directory),
        kubeconfig=str(directory / "kubeconfig"),
        ca=str(ca.cert),
        token=token,
        etcd_pid=0,
        etcd_port=free_port(),
        etcd_log=str(etcd_log),
        etcd_peer_port=free_port(),
        workloads=launch.workloads,
    )
    etcd = spawn_etcd(state, etcd_bin, launch.die_with_parent)
    state.etcd_pid = etcd.pid
    state.save()
    deadline = time.monotonic() + launch.timeout
    try:
        wait_etcd(state.etcd_port, etcd, etcd_log, deadline)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, port in zip(names, ports, strict=True):
            cluster_dir = pki / name
            cluster_dir.mkdir()
            certs.make_serving_cert(ca, cluster_dir, name)
            certs.make_service_account_keys(cluster_dir)
            log = directory / f"kube-apiserver-{name}.log"
            log.write_text("")
            info = ClusterInfo(name=name, port=port, pid=0, log=str(log))
            proc = spawn_apiserver(state, info, apiserver_bin, launch.die_with_parent)
            info.pid = proc.pid
            state.clusters.append(info)
            state.save()
            procs[name] = proc
        write_kubeconfig(state)
        wait_apiservers(state, procs, deadline, launch.timeout)
        if launch.workloads:
            _start_workers(state, worker_bins, launch.die_with_parent)
            wait_workloads(state, deadline, launch.timeout)
    except BaseException:
        stop(directory)
        raise
    return state


def _worker_binaries(progress: Progress) -> dict[str, Path]:
    return {name: binaries.ensure(name, progress) for name in workloads.WORKERS}


def _start_workers(
    state: DevEnvState, worker_bins: dict[str, Path], die_with_parent: bool
) -> list[str]:
    """Start each cluster's missing workers; returns what it did ("started kwok of east")."""
    config = Path(state.directory) / "kwok.yaml"
    config.write_text(workloads.kwok_config())
    started = []
    for info in state.clusters:
        missing = [w for w in workloads.WORKERS if not running_as(info.workers.get(w, 0), w)]
        if not missing:
            continue
        kubeconfig = cluster_kubeconfig(state, info)
        commands = workloads.commands(
            worker_bins, kubeconfig, pki_dir(state) / info.name, Path(state.ca), config
        )
        for worker in missing:
            proc = spawn(commands[worker], worker_log(state, info.name, worker), die_with_parent)
            verb = "restarted" if worker in info.workers else "started"
            info.workers[worker] = proc.pid
            state.save()
            started.append(f"{verb} {worker} of {info.name}")
    return started


def _stop_workers(state: DevEnvState, info: ClusterInfo, grace: float = 10.0) -> list[int]:
    stopped = terminate(list(info.workers.values()), grace)
    info.workers = {}
    state.save()
    return stopped


def stop(directory: Path, grace: float = 10.0) -> list[int]:
    """Stop every process recorded in ``directory``; returns the PIDs that were stopped.

    Controllers and kwok go first, then the API servers (an apiserver whose etcd is gone
    hangs in shutdown), then etcd.
    """
    state = DevEnvState.load(directory)
    if state is None:
        return []
    stopped = terminate([pid for c in state.clusters for pid in c.workers.values()], grace)
    stopped += terminate([c.pid for c in state.clusters], grace)
    stopped += terminate([state.etcd_pid], grace)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return stopped


def running(directory: Path) -> DevEnvState | None:
    """The recorded control plane if etcd and every apiserver are alive and /readyz answers."""
    state = DevEnvState.load(directory)
    if state is None:
        return None
    control_plane = [c.pid for c in state.clusters] + [state.etcd_pid]
    if not all(alive(pid) and is_ours(pid) for pid in control_plane):
        return None
    ctx = ssl.create_default_context(cafile=state.ca)
    if not all(readyz(c.server, ctx, state.token) for c in state.clusters):
        return None
    return state


@dataclass
class UpResult:
    state: DevEnvState
    fresh: bool  # everything was started anew (no state, or other names/ports)
    restarted: list[str]  # what `up` did: "restarted kube-apiserver of west", ...


UP = Launch(workloads=True, timeout=120.0)  # what `reconciler dev up` starts by default


def up(directory: Path, names: Sequence[str] = DEFAULT_CLUSTERS, launch: Launch = UP) -> UpResult:
    """Idempotent start for ``reconciler dev up``.

    Clusters already recorded with the same names keep running with their objects; whatever
    of them died (etcd, an apiserver, a controller, kwok) is restarted with its data,
    certificates and port. ``launch.workloads`` adds or removes the controllers and kwok.
    """
    base_port = launch.base_port
    names = list(names)
    state = DevEnvState.load(directory)
    if state is not None:
        have = [c.name for c in state.clusters]
        wanted_ports = None if base_port is None else [base_port + i for i in range(len(names))]
        same = have == names and wanted_ports in (None, [c.port for c in state.clusters])
        if not same and any(alive(pid) and is_ours(pid) for pid in state.pids()):
            raise DevEnvError(
                f"local clusters already running with {','.join(have)}; "
                "run `reconciler dev down` first to change them"
            )
        if same and _restartable(state):
            restarted = _repair(state, launch)
            return UpResult(state, False, restarted)
    stop(directory)  # stale or unusable state: start anew
    return UpResult(start(directory, names, launch), True, [])


def _restartable(state: DevEnvState) -> bool:
    """Whether the recorded clusters' data, certificates and ports are all still known."""
    pki = pki_dir(state)
    files = [Path(state.ca), pki / "ca.key", pki / "tokens.csv"]
    for c in state.clusters:
        files += [pki / c.name / f for f in ("serving.crt", "serving.key", "sa.pub", "sa.key")]
    data = Path(state.directory) / "etcd-data"
    return state.etcd_peer_port > 0 and data.is_dir() and all(f.is_file() for f in files)


def _repair(state: DevEnvState, launch: Launch) -> list[str]:
    """Restart what died of a recorded control plane; returns what was (re)started.

    Never stops a healthy cluster: on failure the error names what could not come back.
    """
    restarted: list[str] = []
    deadline = time.monotonic() + launch.timeout
    if not running_as(state.etcd_pid, "etcd"):
        check_port_free(state.etcd_port, "etcd")
        check_port_free(state.etcd_peer_port, "etcd peers")
        etcd = spawn_etcd(state, binaries.ensure("etcd", launch.progress), launch.die_with_parent)
        state.etcd_pid = etcd.pid
        state.save()
        restarted.append("restarted etcd")
        wait_etcd(state.etcd_port, etcd, Path(state.etcd_log), deadline)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for info in state.clusters:
        if running_as(info.pid, "kube-apiserver"):
            continue
        terminate(list(info.workers.values()), grace=10.0)  # they come back with it
        check_port_free(info.port, f"cluster {info.name}")
        apiserver_bin = binaries.ensure("kube-apiserver", launch.progress)
        proc = spawn_apiserver(state, info, apiserver_bin, launch.die_with_parent)
        info.pid = proc.pid
        state.save()
        procs[info.name] = proc
        restarted.append(f"restarted kube-apiserver of {info.name}")
    write_kubeconfig(state)
    wait_apiservers(state, procs, deadline, launch.timeout)
    if launch.workloads:
        restarted += _start_workers(
            state, _worker_binaries(launch.progress), launch.die_with_parent
        )
    else:
        for info in state.clusters:
            _stop_workers(state, info)
    state.workloads = launch.workloads
    state.save()
    if launch.workloads:
        wait_workloads(state, deadline, launch.timeout)
    return restarted
