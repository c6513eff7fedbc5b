"""Waiting for workloads on the `fleet` clusters (controllers + kwok), with the official client.

Each wait polls until the object reaches the state or the timeout passes, then fails with the
object's last status, so a test that waits can fail with a reason. Manifests built here use
images that never get pulled (kwok runs no containers); an image tag ``fail`` makes a pod fail
on purpose (see reconciler/devenv/workloads.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.devenv.workloads import FAIL_TAG

IMAGE = "registry.example/hello:1.0"
FAILING_IMAGE = f"registry.example/hello:{FAIL_TAG}"


def wait_until(check: Callable[[], tuple[bool, Any]], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` (returns (done, detail)) until done; AssertionError with the last detail."""
    deadline = time.monotonic() + timeout
    while True:
        done, detail = check()
        if done:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {timeout:.0f}s; last: {detail}")
        time.sleep(0.2)


def _status(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    return api.sanitize_for_serialization(obj.status) or {}  # type: ignore[no-any-return]


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def pod_template(name: str, image: str, restart: str = "Always") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": image}],
        },
    }


def deployment(
    name: str, replicas: int = 3, image: str = IMAGE, progress_deadline: int | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": pod_template(name, image),
    }
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def daemonset(name: str, image: str = IMAGE) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": pod_template(name, image)},
    }


def statefulset(name: str, replicas: int = 2, image: str = IMAGE) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(name, image),
        },
    }


def job(name: str, image: str = IMAGE, backoff_limit: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": pod_template(name, image, "Never")},
    }


def deployment_available(
    api: client.ApiClient, namespace: str, name: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait until every replica of the current generation is updated and available."""
    apps = client.AppsV1Api(api)

    def check() -> tuple[bool, Any]:
        obj = apps.read_namespaced_deployment(name, namespace)
        status = _status(api, obj)
        want = obj.spec.replicas
        done = (
            (status.get("observedGeneration") or 0) >= obj.metadata.generation
            and status.get("updatedReplicas") == want
            and status.get("availableReplicas") == want
            and status.get("replicas") == want
            and _condition(status, "Available").get("status") == "True"
        )
        return done, status

    return wait_until(check, f"Deployment {namespace}/{name} available", timeout)  # type: ignore[no-any-return]


def deployment_condition(
    api: client.ApiClient,
    namespace: str,
    name: str,
    kind: str,
    reason: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Wait until the Deployment has condition ``kind`` with ``reason`` (returns the status)."""
    apps = client.AppsV1Api(api)

    def check() -> tuple[bool, Any]:
        status = _status(api, apps.read_namespaced_deployment(name, namespace))
        return _condition(status, kind).get("reason") == reason, status

    what = f"Deployment {namespace}/{name} {kind}={reason}"
    return wait_until(check, what, timeout)  # type: ignore[no-any-return]


def daemonset_rolled(
    api: client.ApiClient, namespace: str, name: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait until the DaemonSet's current generation is available on every node."""
    apps = client.AppsV1Api(api)

    def check() -> tuple[bool, Any]:
        obj = apps.read_namespaced_daemon_set(name, namespace)
        status = _status(api, obj)
        desired = status.get("desiredNumberScheduled") or 0
        done = (
            (status.get("observedGeneration") or 0) >= obj.metadata.generation
            and desired > 0
            and status.get("updatedNumberScheduled") == desired
            and status.get("numberAvailable") == desired
        )
        return done, status

    return wait_until(check, f"DaemonSet {namespace}/{name} rolled out", timeout)  # type: ignore[no-any-return]


def statefulset_rolled(
    api: client.ApiClient, namespace: str, name: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait until every replica runs the StatefulSet's update revision and is ready."""
    apps = client.AppsV1Api(api)

    def check() -> tuple[bool, Any]:
        obj = apps.read_namespaced_stateful_set(name, namespace)
        status = _status(api, obj)
        want = obj.spec.replicas
        done = (
            (status.get("observedGeneration") or 0) >= obj.metadata.generation
            and status.get("readyReplicas") == want
            and status.get("updatedReplicas") == want
            and status.get("currentRevision") == status.get("updateRevision")
        )
        return done, status

    return wait_until(check, f"StatefulSet {namespace}/{name} rolled out", timeout)  # type: ignore[no-any-return]


def job_finished(
    api: client.ApiClient, namespace: str, name: str, timeout: float = 60.0
) -> tuple[str, dict[str, Any]]:
    """Wait until the Job is Complete or Failed; returns ("Complete"|"Failed", status)."""
    batch = client.BatchV1Api(api)

    def check() -> tuple[bool, Any]:
        status = _status(api, batch.read_namespaced_job(name, namespace))
        for kind in ("Complete", "Failed"):
            if _condition(status, kind).get("status") == "True":
                return True, (kind, status)
        return False, status

    return wait_until(check, f"Job {namespace}/{name} finished", timeout)  # type: ignore[no-any-return]


def namespace_gone(api: client.ApiClient, name: str, timeout: float = 60.0) -> None:
    """Wait until the namespace controller has really deleted the namespace."""
    core = client.CoreV1Api(api)

    def check() -> tuple[bool, Any]:
        try:
            ns = core.read_namespace(name)
        except ApiException as err:
            if err.status == 404:
                return True, None
            raise
        return False, _status(api, ns)

    wait_until(check, f"namespace {name} deleted", timeout)


def pods(api: client.ApiClient, namespace: str, app: str) -> list[dict[str, Any]]:
    """The pods of ``app`` (label app=<name>) as plain dicts."""
    found = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}")
    return [api.sanitize_for_serialization(p) for p in found.items]
