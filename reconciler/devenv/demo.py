"""``make demo``: local clusters, a Git copy of sample-repo/ and the daemon, all under one folder.

Everything a demo holds lives in its folder (``DEMO_DIR``): the clusters (``devenv/``), the config
repo (``repo/``) and the daemon's state (``state/``); its page and metrics answer on one port
(``DEMO_PORT``). Two demos with two folders and two ports run side by side. The port is checked
before anything starts, and the commands to try are printed with absolute paths.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from reconciler.devenv.state import DevEnvError

DEFAULT_PORT = 9465
HOST = "127.0.0.1"


def default_dir() -> Path:
    """``$RECONCILER_DEMO_DIR``, else ``~/.local/state/reconciler-demo``."""
    configured = os.environ.get("RECONCILER_DEMO_DIR")
    return Path(configured or "~/.local/state/reconciler-demo").expanduser().absolute()


def check_port(port: int) -> None:
    """Raise a one-line DevEnvError when the demo's page/metrics port can not be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the daemon binds it: a port left in TIME_WAIT is free, one someone holds is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                why = "is taken" if err.errno == errno.EADDRINUSE else "may not be used"
                raise DevEnvError(
                    f"port {port} on {HOST} {why} (the demo's page and /metrics): set another "
                    f"with DEMO_PORT, e.g. make demo DEMO_PORT={_suggest(port)}"
                ) from None
            raise


def _suggest(port: int) -> int:
    return port + 1 if port < 65535 else 9466


class Paths:
    """Where one demo keeps its clusters, its config repo and the daemon's state."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.expanduser().absolute()
        self.devenv = self.directory / "devenv"
        self.repo = self.directory / "repo"
        self.state = self.directory / "state"


def prepare_repo(paths: Paths, sample: Path) -> bool:
    """Copy ``sample`` to the demo's repo and commit it, once; True when it was made now.

    An existing repo is kept (the user's commits there are the demo)."""
    if (paths.repo / ".git").is_dir():
        return False
    shutil.rmtree(paths.repo, ignore_errors=True)
    paths.directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(sample, paths.repo)
    identity = ["-c", "user.name=demo", "-c", "user.email=demo@example.invalid"]
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        [*identity, "commit", "-q", "-m", "sample-repo"],
    ):
        subprocess.run(["git", "-C", str(paths.repo), *args], check=True)
    return True


def reconciler_bin() -> str:
    """This reconciler's executable, absolute (the venv's when run from one)."""
    beside = Path(os.path.abspath(sys.executable)).parent / "reconciler"
    return str(beside) if beside.exists() else shutil.which("reconciler") or "reconciler"


def daemon_argv(binary: str, paths: Paths, port: int, kubeconfig: str) -> list[str]:
    """The daemon of the demo: the copy of sample-repo, its state, its port, the clusters."""
    return [
        binary,
        "run",
        "--repo",
        str(paths.repo),
        "--state-dir",
        str(paths.state),
        "--kubeconfig",
        kubeconfig,
        "--listen",
        f"{HOST}:{port}",
        "--interval",
        "10s",
        "--drift-interval",
        "15s",
    ]


def instructions(binary: str, paths: Paths, port: int, kubeconfig: str) -> list[str]:
    """What to try in another shell, every path absolute."""
    state = f"--state-dir {paths.state}"
    return [
        f"Config repo: {paths.repo}  (commit there; the daemon applies each commit: "
        "hello-world stage by stage)",
        f"Page: http://{HOST}:{port}/",
        "In another shell:",
        f"  export KUBECONFIG={kubeconfig}",
        f"  {binary} status {state}",
        f"  {binary} drift {state}      (--health: health changes)",
        f"  {binary} wait --app hello-world {state}",
        f"A staged rollout: change the hello-world image in {paths.repo} and commit; then",
        f"  {binary} rollout status {state}",
        f"  {binary} rollout approve hello-world {state}",
        f"  curl -s {HOST}:{port}/metrics | grep ^reconciler_",
        f"Stop: ^C here (the daemon), then: {binary} dev down --dir {paths.devenv}",
    ]
