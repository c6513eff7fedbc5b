"""Real local Kubernetes API servers: one etcd, N kube-apiservers on loopback.

Each "cluster" is a kube-apiserver with its own etcd prefix, port, serving certificate,
service-account keys and admin token. One kubeconfig holds a context per cluster name.
With ``workloads`` each cluster also runs kube-controller-manager, kube-scheduler and kwok
(see ``workloads``), so what is applied to it really runs. The state file ``devenv.json``
records every PID we started, so ``stop`` kills exactly those, and ``up`` restarts only what
died, with its data, certificates and port.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from reconciler.devenv import binaries, certs, workloads
from reconciler.errors import ReconcilerError
from reconciler.toolchain import cache_root

DEFAULT_CLUSTERS = ("beijing-1", "beijing-2", "us-west-1")
STATE_FILE = "devenv.json"


class DevEnvError(ReconcilerError):
    """The local control plane could not be started or stopped."""


@dataclass
class ClusterInfo:
    name: str
    port: int
    pid: int
    log: str
    workers: dict[str, int] = field(default_factory=dict)  # kwok, controllers: binary -> PID

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@dataclass
class DevEnvState:
    directory: str
    kubeconfig: str
    ca: str
    token: str
    etcd_pid: int
    etcd_port: int
    etcd_log: str
    etcd_peer_port: int = 0
    workloads: bool = False
    clusters: list[ClusterInfo] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.directory) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.touch(mode=0o600)  # it holds the admin token
        tmp.chmod(0o600)
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, directory: Path) -> DevEnvState | None:
        path = directory / STATE_FILE
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        raw["clusters"] = [ClusterInfo(**c) for c in raw["clusters"]]
        return cls(**raw)

    def pids(self) -> list[int]:
        workers = [pid for c in self.clusters for pid in c.workers.values()]
        return workers + [c.pid for c in self.clusters] + [self.etcd_pid]


def default_dir() -> Path:
    return cache_root() / "devenv"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As Go's listeners do: connections of a killed server in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            raise DevEnvError(
                f"port 127.0.0.1:{port} for {what} is in use ({err.strerror})"
            ) from err


def _die_with_parent() -> None:
    """Run in the child: the kernel sends SIGKILL when the parent dies (no orphans on ^C/kill)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _spawn(args: list[str], log: Path, die_with_parent: bool) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # ^C in the user's shell goes to us, we stop them in order
            preexec_fn=_die_with_parent if die_with_parent else None,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as dead.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


_OURS = ("etcd", "kube-apiserver", *workloads.WORKERS)


def _is_ours(pid: int, binary_names: tuple[str, ...] = _OURS) -> bool:
    """Guard against PID reuse: only signal a PID whose command is one of our binaries."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return Path(cmd).name in binary_names


def _log_tail(log: Path, lines: int = 200) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    for line in reversed(text):
        lowered = line.lower()
        if "address already in use" in lowered:
            return "address already in use"
        if "error" in lowered or "fatal" in lowered:
            return line.strip()[:300]
    return text[-1].strip()[:300] if text else ""


def _readyz(url: str, ctx: ssl.SSLContext, token: str) -> bool:
    request = urllib.request.Request(url + "/readyz", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _wait_etcd(port: int, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevEnvError(
                f"etcd exited with code {proc.returncode}: {_log_tail(log)} (log: {log})"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise DevEnvError(f"etcd did not become healthy in time (log: {log})")


def _write_kubeconfig(state: DevEnvState) -> None:
    ca_b64 = base64.b64encode(Path(state.ca).read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": c.name, "cluster": {"server": c.server, "certificate-authority-data": ca_b64}}
            for c in state.clusters
        ],
        "users": [{"name": "reconciler-devenv-admin", "user": {"token": state.token}}],
        "contexts": [
            {"name": c.name, "context": {"cluster": c.name, "user": "reconciler-devenv-admin"}}
            for c in state.clusters
        ],
        "current-context": state.clusters[0].name if state.clusters else "",
        "preferences": {},
    }
    path = Path(state.kubeconfig)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def _pki(state: DevEnvState) -> Path:
    return Path(state.directory) / "pki"


def _spawn_etcd(
    state: DevEnvState, etcd_bin: Path, die_with_parent: bool
) -> subprocess.Popen[bytes]:
    directory = Path(state.directory)
    peer = f"http://127.0.0.1:{state.etcd_peer_port}"
    return _spawn(
        [
            str(etcd_bin),
            "--name=devenv",
            f"--data-dir={directory / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{state.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{state.etcd_port}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=devenv={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        Path(state.etcd_log),
        die_with_parent,
    )


def _spawn_apiserver(
    state: DevEnvState, info: ClusterInfo, apiserver_bin: Path, die_with_parent: bool
) -> subprocess.Popen[bytes]:
    pki = _pki(state)
    cluster_dir = pki / info.name
    return _spawn(
        [
            str(apiserver_bin),
            f"--etcd-servers=http://127.0.0.1:{state.etcd_port}",
            f"--etcd-prefix=/clusters/{info.name}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={info.port}",
            f"--cert-dir={cluster_dir}",
            f"--tls-cert-file={cluster_dir / 'serving.crt'}",
            f"--tls-private-key-file={cluster_dir / 'serving.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer=https://{info.name}.devenv.reconciler.local",
            f"--service-account-key-file={cluster_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={cluster_dir / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # Pods need no service-account tokens: no kubelet runs their containers (kwok
            # only plays their status), and light clusters have no token controller at all.
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
        ],
        Path(info.log),
        die_with_parent,
    )


def start(
    directory: Path,
    names: list[str] | tuple[str, ...] = DEFAULT_CLUSTERS,
    *,
    base_port: int | None = None,
    die_with_parent: bool = False,
    timeout: float = 90.0,
    progress: Progress = _quiet,
    workloads: bool = False,
) -> DevEnvState:
    """Start one etcd and one kube-apiserver per name; return once every /readyz is ok.

    With ``workloads`` every cluster also gets kube-controller-manager, kube-scheduler and
    kwok with its fake nodes, and this returns once each cluster can run pods.
    On any failure everything started so far is stopped and a DevEnvError names what failed
    and where its log is.
    """
    names = list(names)
    if not names:
        raise DevEnvError("no cluster names given")
    if len(set(names)) != len(names):
        raise DevEnvError(f"duplicate cluster names in {','.join(names)}")
    etcd_bin = binaries.ensure("etcd", progress)
    apiserver_bin = binaries.ensure("kube-apiserver", progress)
    worker_bins = _worker_binaries(progress) if workloads else {}

    directory.mkdir(parents=True, exist_ok=True)
    if base_port is not None:
        ports = [base_port + i for i in range(len(names))]
        for name, port in zip(names, ports, strict=True):
            _check_port_free(port, f"cluster {name}")
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
        workloads=workloads,
    )
    etcd = _spawn_etcd(state, etcd_bin, die_with_parent)
    state.etcd_pid = etcd.pid
    state.save()
    deadline = time.monotonic() + timeout
    try:
        _wait_etcd(state.etcd_port, etcd, etcd_log, deadline)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, port in zip(names, ports, strict=True):
            cluster_dir = pki / name
            cluster_dir.mkdir()
            certs.make_serving_cert(ca, cluster_dir, name)
            certs.make_service_account_keys(cluster_dir)
            log = directory / f"kube-apiserver-{name}.log"
            log.write_text("")
            info = ClusterInfo(name=name, port=port, pid=0, log=str(log))
            proc = _spawn_apiserver(state, info, apiserver_bin, die_with_parent)
            info.pid = proc.pid
            state.clusters.append(info)
            state.save()
            procs[name] = proc
        _write_kubeconfig(state)
        _wait_apiservers(state, procs, deadline, timeout)
        if workloads:
            _start_workers(state, worker_bins, die_with_parent)
            _wait_workloads(state, deadline, timeout)
    except BaseException:
        stop(directory)
        raise
    return state


def _wait_apiservers(
    state: DevEnvState,
    procs: dict[str, subprocess.Popen[bytes]],
    deadline: float,
    timeout: float,
) -> None:
    """Wait for every cluster's /readyz; ``procs`` are the apiservers we just spawned."""
    ctx = ssl.create_default_context(cafile=state.ca)
    pending = {info.name: info for info in state.clusters}
    while pending:
        for info in list(pending.values()):
            proc = procs.get(info.name)
            code = proc.poll() if proc is not None else None
            if proc is None and not _alive(info.pid):
                code = -1
            if code is not None:
                raise DevEnvError(
                    f"kube-apiserver for cluster {info.name} exited with code "
                    f"{code}: {_log_tail(Path(info.log))} (log: {info.log})"
                )
            if _readyz(info.server, ctx, state.token):
                del pending[info.name]
        if pending and time.monotonic() > deadline:
            waiting = ", ".join(pending)
            logs = ", ".join(i.log for i in pending.values())
            raise DevEnvError(
                f"kube-apiserver for {waiting} not ready after {timeout:.0f}s (log: {logs})"
            )
        if pending:
            time.sleep(0.2)


def _worker_binaries(progress: Progress) -> dict[str, Path]:
    return {name: binaries.ensure(name, progress) for name in workloads.WORKERS}


def _worker_log(state: DevEnvState, cluster: str, worker: str) -> Path:
    return Path(state.directory) / f"{worker}-{cluster}.log"


def _cluster_kubeconfig(state: DevEnvState, info: ClusterInfo) -> Path:
    """A kubeconfig with just this cluster, for its controllers and kwok."""
    ca_b64 = base64.b64encode(Path(state.ca).read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": info.name,
                "cluster": {"server": info.server, "certificate-authority-data": ca_b64},
            }
        ],
        "users": [{"name": "admin", "user": {"token": state.token}}],
        "contexts": [{"name": info.name, "context": {"cluster": info.name, "user": "admin"}}],
        "current-context": info.name,
    }
    path = _pki(state) / info.name / "kubeconfig"
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(path)
    return path


def _start_workers(
    state: DevEnvState, worker_bins: dict[str, Path], die_with_parent: bool
) -> list[str]:
    """Start each cluster's missing workers; returns what it did ("started kwok of east")."""
    config = Path(state.directory) / "kwok.yaml"
    config.write_text(workloads.kwok_config())
    started = []
    for info in state.clusters:
        missing = [w for w in workloads.WORKERS if not _running_as(info.workers.get(w, 0), w)]
        if not missing:
            continue
        kubeconfig = _cluster_kubeconfig(state, info)
        commands = workloads.commands(
            worker_bins, kubeconfig, _pki(state) / info.name, Path(state.ca), config
        )
        for worker in missing:
            proc = _spawn(commands[worker], _worker_log(state, info.name, worker), die_with_parent)
            verb = "restarted" if worker in info.workers else "started"
            info.workers[worker] = proc.pid
            state.save()
            started.append(f"{verb} {worker} of {info.name}")
    return started


def _running_as(pid: int, binary: str) -> bool:
    return pid > 0 and _alive(pid) and _is_ours(pid, (binary,))


def _wait_workloads(state: DevEnvState, deadline: float, timeout: float) -> None:
    """Register the fake nodes, then wait until every cluster can run pods."""
    ctx = ssl.create_default_context(cafile=state.ca)
    apis = {c.name: workloads.Api(c.server, state.token, ctx) for c in state.clusters}
    for info in state.clusters:
        try:
            workloads.register_nodes(apis[info.name], info.name)
        except OSError as err:
            raise DevEnvError(f"cluster {info.name}: {err}") from err
    pending = dict.fromkeys(apis, "not checked")
    while pending:
        for info in state.clusters:
            if info.name not in pending:
                continue
            for worker, pid in info.workers.items():
                if not _running_as(pid, worker):
                    log = _worker_log(state, info.name, worker)
                    raise DevEnvError(
                        f"{worker} for cluster {info.name} exited: {_log_tail(log)} (log: {log})"
                    )
            reason = workloads.not_ready(apis[info.name])
            if reason:
                pending[info.name] = reason
            else:
                del pending[info.name]
        if pending and time.monotonic() > deadline:
            waiting = "; ".join(f"{name}: {reason}" for name, reason in pending.items())
            raise DevEnvError(
                f"clusters cannot run workloads after {timeout:.0f}s ({waiting}; logs in "
                f"{state.directory})"
            )
        if pending:
            time.sleep(0.2)


def _stop_workers(state: DevEnvState, info: ClusterInfo, grace: float = 10.0) -> list[int]:
    stopped = _terminate(list(info.workers.values()), grace)
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
    stopped = _terminate([pid for c in state.clusters for pid in c.workers.values()], grace)
    stopped += _terminate([c.pid for c in state.clusters], grace)
    stopped += _terminate([state.etcd_pid], grace)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return stopped


def _terminate(pids: list[int], grace: float) -> list[int]:
    """SIGTERM our live processes among ``pids``, SIGKILL what is left after ``grace``."""
    targets = [pid for pid in pids if _alive(pid) and _is_ours(pid)]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in targets:
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap(pid)
    return targets


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def running(directory: Path) -> DevEnvState | None:
    """The recorded control plane if etcd and every apiserver are alive and /readyz answers."""
    state = DevEnvState.load(directory)
    if state is None:
        return None
    control_plane = [c.pid for c in state.clusters] + [state.etcd_pid]
    if not all(_alive(pid) and _is_ours(pid) for pid in control_plane):
        return None
    ctx = ssl.create_default_context(cafile=state.ca)
    if not all(_readyz(c.server, ctx, state.token) for c in state.clusters):
        return None
    return state


@dataclass
class UpResult:
    state: DevEnvState
    fresh: bool  # everything was started anew (no state, or other names/ports)
    restarted: list[str]  # what `up` did: "restarted kube-apiserver of west", ...


def up(
    directory: Path,
    names: list[str] | tuple[str, ...] = DEFAULT_CLUSTERS,
    *,
    base_port: int | None = None,
    workloads: bool = True,
    timeout: float = 120.0,
    die_with_parent: bool = False,
    progress: Progress = _quiet,
) -> UpResult:
    """Idempotent start for ``reconciler dev up``.

    Clusters already recorded with the same names keep running with their objects; whatever
    of them died (etcd, an apiserver, a controller, kwok) is restarted with its data,
    certificates and port. ``workloads`` adds or removes the controllers and kwok.
    """
    names = list(names)
    state = DevEnvState.load(directory)
    if state is not None:
        have = [c.name for c in state.clusters]
        wanted_ports = None if base_port is None else [base_port + i for i in range(len(names))]
        same = have == names and wanted_ports in (None, [c.port for c in state.clusters])
        if not same and any(_alive(pid) and _is_ours(pid) for pid in state.pids()):
            raise DevEnvError(
                f"local clusters already running with {','.join(have)}; "
                "run `reconciler dev down` first to change them"
            )
        if same and _restartable(state):
            restarted = _repair(state, workloads, timeout, die_with_parent, progress)
            return UpResult(state, False, restarted)
    stop(directory)  # stale or unusable state: start anew
    state = start(
        directory,
        names,
        base_port=base_port,
        progress=progress,
        workloads=workloads,
        timeout=timeout,
        die_with_parent=die_with_parent,
    )
    return UpResult(state, True, [])


def _restartable(state: DevEnvState) -> bool:
    """Whether the recorded clusters' data, certificates and ports are all still known."""
    pki = _pki(state)
    files = [Path(state.ca), pki / "ca.key", pki / "tokens.csv"]
    for c in state.clusters:
        files += [pki / c.name / f for f in ("serving.crt", "serving.key", "sa.pub", "sa.key")]
    data = Path(state.directory) / "etcd-data"
    return state.etcd_peer_port > 0 and data.is_dir() and all(f.is_file() for f in files)


def _repair(
    state: DevEnvState,
    with_workloads: bool,
    timeout: float,
    die_with_parent: bool,
    progress: Progress,
) -> list[str]:
    """Restart what died of a recorded control plane; returns what was (re)started.

    Never stops a healthy cluster: on failure the error names what could not come back.
    """
    restarted: list[str] = []
    deadline = time.monotonic() + timeout
    if not _running_as(state.etcd_pid, "etcd"):
        _check_port_free(state.etcd_port, "etcd")
        _check_port_free(state.etcd_peer_port, "etcd peers")
        etcd = _spawn_etcd(state, binaries.ensure("etcd", progress), die_with_parent)
        state.etcd_pid = etcd.pid
        state.save()
        restarted.append("restarted etcd")
        _wait_etcd(state.etcd_port, etcd, Path(state.etcd_log), deadline)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for info in state.clusters:
        if _running_as(info.pid, "kube-apiserver"):
            continue
        _terminate(list(info.workers.values()), grace=10.0)  # they come back with it
        _check_port_free(info.port, f"cluster {info.name}")
        apiserver_bin = binaries.ensure("kube-apiserver", progress)
        proc = _spawn_apiserver(state, info, apiserver_bin, die_with_parent)
        info.pid = proc.pid
        state.save()
        procs[info.name] = proc
        restarted.append(f"restarted kube-apiserver of {info.name}")
    _write_kubeconfig(state)
    _wait_apiservers(state, procs, deadline, timeout)
    if with_workloads:
        restarted += _start_workers(state, _worker_binaries(progress), die_with_parent)
    else:
        for info in state.clusters:
            _stop_workers(state, info)
    state.workloads = with_workloads
    state.save()
    if with_workloads:
        _wait_workloads(state, deadline, timeout)
    return restarted


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (for reporting)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
