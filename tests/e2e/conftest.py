"""e2e fixtures: real kube-apiservers, started once per test run, a fresh namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from reconciler.devenv import controlplane

CLUSTERS = ("beijing-1", "beijing-2", "us-west-1")


@pytest.fixture(scope="session")
def devenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.DevEnvState]:
    """Three real clusters sharing one etcd; killed with the test run even on SIGKILL."""
    directory = tmp_path_factory.mktemp("devenv")
    state = controlplane.start(directory, CLUSTERS, die_with_parent=True)
    try:
        yield state
    finally:
        controlplane.stop(directory)


@pytest.fixture(scope="session")
def kubeconfig(devenv: controlplane.DevEnvState) -> Path:
    return Path(devenv.kubeconfig)


@pytest.fixture(scope="session")
def api_clients(kubeconfig: Path) -> dict[str, client.ApiClient]:
    """One official-client ApiClient per cluster (tests may use the client directly)."""
    return {
        name: config.new_client_from_config(config_file=str(kubeconfig), context=name)
        for name in CLUSTERS
    }


@pytest.fixture
def namespace(api_clients: dict[str, client.ApiClient]) -> Iterator[str]:
    """A fresh namespace, created on every cluster, for one test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    for api in api_clients.values():
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    for api in api_clients.values():
        # No namespace controller runs, so the namespace stays Terminating; names never repeat.
        client.CoreV1Api(api).delete_namespace(name)
