"""Waiting for the local clusters: etcd healthy, every kube-apiserver's /readyz, and with
workloads the fake nodes registered and every cluster able to run pods; what died is named."""

from __future__ import annotations

import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from reconciler.devenv import workloads
from reconciler.devenv.components import worker_log
from reconciler.devenv.processes import alive, log_tail, running_as
from reconciler.devenv.state import DevEnvError, DevEnvState


def readyz(url: str, ctx: ssl.SSLContext, token: str) -> bool:
    request = urllib.request.Request(url + "/readyz", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def wait_etcd(port: int, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    url = f"http://127.0.0.1:{port}/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevEnvError(
                f"etcd exited with code {proc.returncode}: {log_tail(log)} (log: {log})"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise DevEnvError(f"etcd did not become healthy in time (log: {log})")


def wait_apiservers(
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
            if proc is None and not alive(info.pid):
                code = -1
            if code is not None:
                raise DevEnvError(
                    f"kube-apiserver for cluster {info.name} exited with code "
                    f"{code}: {log_tail(Path(info.log))} (log: {info.log})"
                )
            if readyz(info.server, ctx, state.token):
                del pending[info.name]
        if pending and time.monotonic() > deadline:
            waiting = ", ".join(pending)
            logs = ", ".join(i.log for i in pending.values())
            raise DevEnvError(
                f"kube-apiserver for {waiting} not ready after {timeout:.0f}s (log: {logs})"
            )
        if pending:
            time.sleep(0.2)


def wait_workloads(state: DevEnvState, deadline: float, timeout: float) -> None:
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
                if not running_as(pid, worker):
                    log = worker_log(state, info.name, worker)
                    raise DevEnvError(
                        f"{worker} for cluster {info.name} exited: {log_tail(log)} (log: {log})"
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
