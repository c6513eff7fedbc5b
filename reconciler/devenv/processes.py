"""Process supervision for the local clusters: spawn (dying with the parent if asked), alive,
ours (PID reuse guarded by the command line), terminate in order, ports, log tails, memory."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from reconciler.devenv import workloads
from reconciler.devenv.state import DevEnvError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int, what: str) -> None:
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


def spawn(args: list[str], log: Path, die_with_parent: bool) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # ^C in the user's shell goes to us, we stop them in order
            preexec_fn=_die_with_parent if die_with_parent else None,
        )


def alive(pid: int) -> bool:
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


OURS = ("etcd", "kube-apiserver", *workloads.WORKERS)


def is_ours(pid: int, binary_names: tuple[str, ...] = OURS) -> bool:
    """Guard against PID reuse: only signal a PID whose command is one of our binaries."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return Path(cmd).name in binary_names


def running_as(pid: int, binary: str) -> bool:
    return pid > 0 and alive(pid) and is_ours(pid, (binary,))


def log_tail(log: Path, lines: int = 200) -> str:
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


def terminate(pids: list[int], grace: float) -> list[int]:
    """SIGTERM our live processes among ``pids``, SIGKILL what is left after ``grace``."""
    targets = [pid for pid in pids if alive(pid) and is_ours(pid)]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in targets:
        while alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap(pid)
    return targets


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (for reporting)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
