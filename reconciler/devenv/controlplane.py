"""Real local Kubernetes API servers: one etcd, N kube-apiservers on loopback.

Each "cluster" is a kube-apiserver with its own etcd prefix, port, serving certificate,
service-account keys and admin token. One kubeconfig holds a context per cluster name.
The state file ``devenv.json`` records every PID we started, so ``stop`` kills exactly those.
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

from reconciler.devenv import binaries, certs
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
        return [c.pid for c in self.clusters] + [self.etcd_pid]


def default_dir() -> Path:
    return cache_root() / "devenv"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
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


def _is_ours(pid: int, binary_names: tuple[str, ...] = ("etcd", "kube-apiserver")) -> bool:
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


def start(
    directory: Path,
    names: list[str] | tuple[str, ...] = DEFAULT_CLUSTERS,
    *,
    base_port: int | None = None,
    die_with_parent: bool = False,
    timeout: float = 90.0,
    progress: Progress = _quiet,
) -> DevEnvState:
    """Start one etcd and one kube-apiserver per name; return once every /readyz is ok.

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

    directory.mkdir(parents=True, exist_ok=True)
    if base_port is not None:
        ports = [base_port + i for i in range(len(names))]
        for name, port in zip(names, ports, strict=True):
            _check_port_free(port, f"cluster {name}")
    else:
        ports = [free_port() for _ in names]
    etcd_port, peer_port = free_port(), free_port()

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
    etcd = _spawn(
        [
            str(etcd_bin),
            "--name=devenv",
            f"--data-dir={directory / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=devenv=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        etcd_log,
        die_with_parent,
    )
    state = DevEnvState(
        directory=str(directory),
        kubeconfig=str(directory / "kubeconfig"),
        ca=str(ca.cert),
        token=token,
        etcd_pid=etcd.pid,
        etcd_port=etcd_port,
        etcd_log=str(etcd_log),
    )
    state.save()
    deadline = time.monotonic() + timeout
    try:
        _wait_etcd(etcd_port, etcd, etcd_log, deadline)
        procs: list[tuple[ClusterInfo, subprocess.Popen[bytes]]] = []
        for name, port in zip(names, ports, strict=True):
            cluster_dir = pki / name
            cluster_dir.mkdir()
            serving = certs.make_serving_cert(ca, cluster_dir, name)
            sa = certs.make_service_account_keys(cluster_dir)
            log = directory / f"kube-apiserver-{name}.log"
            log.write_text("")
            proc = _spawn(
                [
                    str(apiserver_bin),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    f"--etcd-prefix=/clusters/{name}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={port}",
                    f"--cert-dir={cluster_dir}",
                    f"--tls-cert-file={serving.cert}",
                    f"--tls-private-key-file={serving.key}",
                    f"--token-auth-file={pki / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer=https://{name}.devenv.reconciler.local",
                    f"--service-account-key-file={sa.cert}",
                    f"--service-account-signing-key-file={sa.key}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--allow-privileged=true",
                    # No controller-manager runs, so no token controller creates SA tokens.
                    "--disable-admission-plugins=ServiceAccount",
                    "--enable-priority-and-fairness=false",
                    "--profiling=false",
                ],
                log,
                die_with_parent,
            )
            info = ClusterInfo(name=name, port=port, pid=proc.pid, log=str(log))
            state.clusters.append(info)
            state.save()
            procs.append((info, proc))
        _write_kubeconfig(state)
        ctx = ssl.create_default_context(cafile=state.ca)
        pending = {info.name: (info, proc) for info, proc in procs}
        while pending:
            for info, proc in list(pending.values()):
                if proc.poll() is not None:
                    raise DevEnvError(
                        f"kube-apiserver for cluster {info.name} exited with code "
                        f"{proc.returncode}: {_log_tail(Path(info.log))} (log: {info.log})"
                    )
                if _readyz(info.server, ctx, token):
                    del pending[info.name]
            if pending and time.monotonic() > deadline:
                waiting = ", ".join(pending)
                logs = ", ".join(i.log for i, _ in pending.values())
                raise DevEnvError(
                    f"kube-apiserver for {waiting} not ready after {timeout:.0f}s (log: {logs})"
                )
            if pending:
                time.sleep(0.2)
    except BaseException:
        stop(directory)
        raise
    return state


def stop(directory: Path, grace: float = 10.0) -> list[int]:
    """Stop every process recorded in ``directory``; returns the PIDs that were stopped.

    API servers go first: an apiserver whose etcd is gone hangs in shutdown.
    """
    state = DevEnvState.load(directory)
    if state is None:
        return []
    stopped = _terminate([c.pid for c in state.clusters], grace)
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
    """The recorded control plane if every process is alive and every /readyz answers."""
    state = DevEnvState.load(directory)
    if state is None:
        return None
    if not all(_alive(pid) and _is_ours(pid) for pid in state.pids()):
        return None
    ctx = ssl.create_default_context(cafile=state.ca)
    if not all(_readyz(c.server, ctx, state.token) for c in state.clusters):
        return None
    return state


def up(
    directory: Path,
    names: list[str] | tuple[str, ...] = DEFAULT_CLUSTERS,
    *,
    base_port: int | None = None,
    progress: Progress = _quiet,
) -> tuple[DevEnvState, bool]:
    """Idempotent start for ``reconciler dev up``; returns (state, started_now)."""
    current = running(directory)
    if current is not None:
        have = [c.name for c in current.clusters]
        if have != list(names):
            raise DevEnvError(
                f"local clusters already running with {','.join(have)}; "
                "run `reconciler dev down` first to change them"
            )
        return current, False
    stop(directory)  # a half-dead previous run: clean it up before starting anew
    return start(directory, names, base_port=base_port, progress=progress), True


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (for reporting)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
