"""The local clusters are real Kubernetes API servers, isolated from each other."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from reconciler.devenv import controlplane, processes


def _configmap(name: str, namespace: str, data: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def _apply(
    api: client.ApiClient, body: dict[str, object], manager: str, force: bool = False
) -> dict[str, object]:
    meta = body["metadata"]
    assert isinstance(meta, dict)
    result = client.CoreV1Api(api).patch_namespaced_config_map(
        meta["name"],
        meta["namespace"],
        body,
        field_manager=manager,
        force=force,
        _content_type="application/apply-patch+yaml",
    )
    return api.sanitize_for_serialization(result)  # type: ignore[no-any-return]


def test_object_created_in_one_cluster_is_absent_from_the_others(
    api_clients: dict[str, client.ApiClient], namespace: str
) -> None:
    core = {name: client.CoreV1Api(api) for name, api in api_clients.items()}
    core["beijing-1"].create_namespaced_config_map(
        namespace, _configmap("only-here", namespace, {"a": "1"})
    )
    assert core["beijing-1"].read_namespaced_config_map("only-here", namespace).data == {"a": "1"}
    for other in ("beijing-2", "us-west-1"):
        with pytest.raises(ApiException) as err:
            core[other].read_namespaced_config_map("only-here", namespace)
        assert err.value.status == 404


def test_server_side_apply_records_our_field_manager(
    api_clients: dict[str, client.ApiClient], namespace: str
) -> None:
    live = _apply(api_clients["us-west-1"], _configmap("ssa", namespace, {"k": "v"}), "reconciler")
    managers = [(e["manager"], e["operation"]) for e in live["metadata"]["managedFields"]]  # type: ignore[index]
    assert managers == [("reconciler", "Apply")]


def test_apply_conflict_with_another_field_manager_is_a_real_409(
    api_clients: dict[str, client.ApiClient], namespace: str
) -> None:
    api = api_clients["beijing-2"]
    _apply(api, _configmap("contested", namespace, {"k": "ours"}), "reconciler")
    with pytest.raises(ApiException) as err:
        _apply(api, _configmap("contested", namespace, {"k": "theirs"}), "someone-else")
    assert err.value.status == 409
    assert "reconciler" in str(err.value.body)
    forced = _apply(api, _configmap("contested", namespace, {"k": "theirs"}), "someone-else", True)
    assert forced["data"] == {"k": "theirs"}


def test_each_cluster_has_its_own_serving_certificate(devenv: controlplane.DevEnvState) -> None:
    pki = Path(devenv.directory) / "pki"
    certs = {c.name: (pki / c.name / "serving.crt").read_bytes() for c in devenv.clusters}
    assert len(set(certs.values())) == len(certs) == 3


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def test_dev_up_is_idempotent_adds_workloads_and_dev_down_leaves_no_process(tmp_path: Path) -> None:
    env = dict(os.environ, RECONCILER_DEVENV_DIR=str(tmp_path / "dev"))
    first = _cli("dev", "up", "--light", "--clusters", "edge-1,edge-2", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("export KUBECONFIG=")
    state = controlplane.DevEnvState.load(tmp_path / "dev")
    assert state is not None
    assert not state.workloads and all(not c.workers for c in state.clusters)
    pids = state.pids()
    try:
        second = _cli("dev", "up", "--light", "--clusters", "edge-1,edge-2", env=env)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stderr
        again = controlplane.DevEnvState.load(tmp_path / "dev")
        assert again is not None and again.pids() == pids

        path = _cli("dev", "kubeconfig", env=env).stdout.strip()
        api = config.new_client_from_config(config_file=path, context="edge-2")
        names = [ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items]
        assert "default" in names and "kube-system" in names
        assert client.CoreV1Api(api).list_node().items == []

        full = _cli("dev", "up", "--clusters", "edge-1,edge-2", env=env)  # adds the workloads
        assert full.returncode == 0, full.stderr
        assert "started kwok of edge-2" in full.stderr.splitlines()
        added = controlplane.DevEnvState.load(tmp_path / "dev")
        assert added is not None and added.workloads
        assert [(c.pid, c.port) for c in added.clusters] == [
            (c.pid, c.port) for c in state.clusters
        ]
        pids = added.pids()
        nodes = client.CoreV1Api(api).list_node().items
        assert sorted(n.metadata.name for n in nodes) == ["node-1", "node-2", "node-3"]
    finally:
        down = _cli("dev", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert all(not processes.alive(pid) for pid in pids)


def test_dev_up_on_a_port_in_use_says_so_and_leaves_nothing_running(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = dict(os.environ, RECONCILER_DEVENV_DIR=str(tmp_path / "dev"))
        result = _cli("dev", "up", "--clusters", "one", "--port", str(port), env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: port 127.0.0.1:{port} for cluster one is in use (Address already in use)"
    )
    assert controlplane.DevEnvState.load(tmp_path / "dev") is None


def test_an_apiserver_that_never_becomes_ready_is_stopped_and_named(tmp_path: Path) -> None:
    with pytest.raises(controlplane.DevEnvError) as err:
        controlplane.start(
            tmp_path, ["slow"], controlplane.Launch(timeout=0.5, die_with_parent=True)
        )
    message = str(err.value)
    assert "slow" in message and "log:" in message
    assert controlplane.DevEnvState.load(tmp_path) is None


def test_a_killed_test_run_leaves_no_apiserver_or_etcd_behind(tmp_path: Path) -> None:
    script = (
        "import sys, pathlib, time\n"
        "from reconciler.devenv import controlplane\n"
        "launch = controlplane.Launch(die_with_parent=True, workloads=True)\n"
        "controlplane.start(pathlib.Path(sys.argv[1]), ['orphan'], launch)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert runner.stdout is not None and runner.stdout.readline().strip() == "ready"
        state = controlplane.DevEnvState.load(tmp_path)
        assert state is not None
        pids = state.pids()
        assert all(processes.alive(pid) for pid in pids)
        assert len(pids) == 5  # etcd, kube-apiserver, controller manager, scheduler, kwok
        runner.kill()  # SIGKILL: no cleanup code of the runner runs
        runner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(processes.alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(processes.alive(pid) for pid in pids)
    finally:
        runner.kill()
        controlplane.stop(tmp_path)


def test_files_holding_credentials_are_readable_by_their_owner_only(
    devenv: controlplane.DevEnvState,
) -> None:
    directory = Path(devenv.directory)
    for path in (directory / "devenv.json", Path(devenv.kubeconfig), directory / "pki"):
        assert path.stat().st_mode & 0o077 == 0, path


def _uids(kubeconfig: str, names: list[str]) -> dict[str, str]:
    uids = {}
    for name in names:
        api = config.new_client_from_config(config_file=kubeconfig, context=name)
        live = client.CoreV1Api(api).read_namespaced_config_map("marker", "default")
        uids[name] = live.metadata.uid
    return uids


def test_dev_up_restarts_only_the_apiserver_that_died_with_its_objects_and_port(
    tmp_path: Path,
) -> None:
    env = dict(os.environ, RECONCILER_DEVENV_DIR=str(tmp_path / "dev"))
    names = ["east", "west", "north"]
    first = _cli("dev", "up", "--clusters", ",".join(names), env=env)
    assert first.returncode == 0, first.stderr
    before = controlplane.DevEnvState.load(tmp_path / "dev")
    assert before is not None and before.workloads
    all_pids = before.pids()
    try:
        for name in names:
            api = config.new_client_from_config(config_file=before.kubeconfig, context=name)
            client.CoreV1Api(api).create_namespaced_config_map(
                "default", _configmap("marker", "default", {"cluster": name})
            )
        uids = _uids(before.kubeconfig, names)
        victim = before.clusters[1]
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while processes.alive(victim.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

        again = _cli("dev", "up", "--clusters", ",".join(names), env=env)
        assert again.returncode == 0, again.stderr
        after = controlplane.DevEnvState.load(tmp_path / "dev")
        assert after is not None
        all_pids += after.pids()
        restarted = sorted(line for line in again.stderr.splitlines() if "restarted" in line)
        assert restarted == sorted(
            f"restarted {what} of west"
            for what in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
        )
        assert after.etcd_pid == before.etcd_pid
        for old, new in zip(before.clusters, after.clusters, strict=True):
            assert new.port == old.port
            if old.name == "west":
                assert new.pid != old.pid
                assert not set(new.workers.values()) & set(old.workers.values())
            else:
                assert (new.pid, new.workers) == (old.pid, old.workers)
        assert _uids(after.kubeconfig, names) == uids
    finally:
        down = _cli("dev", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert not any(processes.alive(pid) for pid in all_pids)
