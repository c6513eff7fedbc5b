"""e2e fixtures: real local clusters, started once per test run, a fresh namespace per test.

Two fleets, each started lazily by the first test that asks for it:

- ``devenv`` / ``kubeconfig`` / ``api_clients`` / ``namespace``: three light clusters
  (API servers only). Objects are stored, nothing runs them.
- ``fleet`` / ``fleet_kubeconfig`` / ``fleet_clients`` / ``fleet_namespace``: five clusters
  that run workloads (kube-controller-manager, kube-scheduler, kwok with 3 fake nodes each),
  so Deployments become available, Jobs complete, namespaces are really deleted. Wait for
  them with ``tests.e2e.workload_waits``; an image tag ``fail`` makes pods fail on purpose.
"""

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
    state = controlplane.start(directory, CLUSTERS, controlplane.Launch(die_with_parent=True))
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


FLEET = ("fleet-1", "fleet-2", "fleet-3", "fleet-4", "fleet-5")


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.DevEnvState]:
    """Five clusters that run workloads; killed with the test run even on SIGKILL."""
    directory = tmp_path_factory.mktemp("fleet")
    state = controlplane.start(
        directory, FLEET, controlplane.Launch(die_with_parent=True, workloads=True, timeout=180)
    )
    try:
        yield state
    finally:
        controlplane.stop(directory)


@pytest.fixture(scope="session")
def fleet_kubeconfig(fleet: controlplane.DevEnvState) -> Path:
    return Path(fleet.kubeconfig)


@pytest.fixture(scope="session")
def fleet_clients(fleet_kubeconfig: Path) -> dict[str, client.ApiClient]:
    """One official-client ApiClient per fleet cluster."""
    return {
        name: config.new_client_from_config(config_file=str(fleet_kubeconfig), context=name)
        for name in FLEET
    }


@pytest.fixture
def fleet_namespace(fleet_clients: dict[str, client.ApiClient]) -> Iterator[str]:
    """A fresh namespace on every fleet cluster for one test; deleted (for real) after it."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    for api in fleet_clients.values():
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    yield name
    for api in fleet_clients.values():
        client.CoreV1Api(api).delete_namespace(name)
