"""The fleet clusters run workloads: controllers, scheduler and kwok's fake nodes really act."""

from __future__ import annotations

from typing import Any

from kubernetes import client, utils

from tests.e2e import workload_waits as waits


def _create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    utils.create_from_dict(api, body, namespace=namespace)


def test_a_deployment_becomes_3_of_3_available_on_fake_nodes(
    fleet_clients: dict[str, client.ApiClient], fleet_namespace: str
) -> None:
    api = fleet_clients["fleet-1"]
    _create(api, fleet_namespace, waits.deployment("web", replicas=3))
    status = waits.deployment_available(api, fleet_namespace, "web")
    assert status["availableReplicas"] == 3
    pods = waits.pods(api, fleet_namespace, "web")
    assert len(pods) == 3
    assert {p["spec"]["nodeName"] for p in pods} <= {"node-1", "node-2", "node-3"}
    assert all(p["status"]["phase"] == "Running" and p["status"]["podIP"] for p in pods)
    replicasets = client.AppsV1Api(api).list_namespaced_replica_set(fleet_namespace).items
    assert [rs.metadata.owner_references[0].name for rs in replicasets] == ["web"]


def test_a_job_completes(fleet_clients: dict[str, client.ApiClient], fleet_namespace: str) -> None:
    api = fleet_clients["fleet-2"]
    _create(api, fleet_namespace, waits.job("once"))
    outcome, status = waits.job_finished(api, fleet_namespace, "once")
    assert outcome == "Complete"
    assert status["succeeded"] == 1


def test_a_daemonset_runs_on_every_node_and_rolls_a_new_image(
    fleet_clients: dict[str, client.ApiClient], fleet_namespace: str
) -> None:
    api = fleet_clients["fleet-3"]
    _create(api, fleet_namespace, waits.daemonset("agent"))
    assert waits.daemonset_rolled(api, fleet_namespace, "agent")["numberAvailable"] == 3
    new_image = "registry.example/hello:2.0"
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": new_image}]}}}}
    client.AppsV1Api(api).patch_namespaced_daemon_set("agent", fleet_namespace, patch)
    waits.daemonset_rolled(api, fleet_namespace, "agent")

    def only_new_pods() -> tuple[bool, Any]:
        images = sorted(
            p["spec"]["containers"][0]["image"]
            for p in waits.pods(api, fleet_namespace, "agent")
            if not p["metadata"].get("deletionTimestamp")
        )
        return images == [new_image] * 3, images

    waits.wait_until(only_new_pods, "DaemonSet pods replaced")


def test_a_statefulset_rolls_out_its_replicas_in_order(
    fleet_clients: dict[str, client.ApiClient], fleet_namespace: str
) -> None:
    api = fleet_clients["fleet-4"]
    _create(api, fleet_namespace, waits.statefulset("db", replicas=2))
    status = waits.statefulset_rolled(api, fleet_namespace, "db")
    assert status["readyReplicas"] == 2
    names = sorted(p["metadata"]["name"] for p in waits.pods(api, fleet_namespace, "db"))
    assert names == ["db-0", "db-1"]


def test_a_failing_image_never_becomes_ready_and_the_deployment_misses_its_deadline(
    fleet_clients: dict[str, client.ApiClient], fleet_namespace: str
) -> None:
    api = fleet_clients["fleet-5"]
    body = waits.deployment("broken", replicas=2, image=waits.FAILING_IMAGE, progress_deadline=3)
    _create(api, fleet_namespace, body)
    status = waits.deployment_condition(
        api, fleet_namespace, "broken", "Progressing", "ProgressDeadlineExceeded"
    )
    assert not status.get("availableReplicas")
    pods = waits.pods(api, fleet_namespace, "broken")
    assert len(pods) == 2
    for pod in pods:
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"
        (container,) = pod["status"]["containerStatuses"]
        assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert container["lastState"]["terminated"]["exitCode"] == 1


def test_a_rollout_to_a_failing_image_stalls_while_the_old_pods_keep_serving(
    fleet_clients: dict[str, client.ApiClient], fleet_namespace: str
) -> None:
    api = fleet_clients["fleet-1"]
    _create(api, fleet_namespace, waits.deployment("canary", replicas=3, progress_deadline=3))
    waits.deployment_available(api, fleet_namespace, "canary")
    patch = {
        "spec": {
            "template": {"spec": {"containers": [{"name": "main", "image": waits.FAILING_IMAGE}]}}
        }
    }
    client.AppsV1Api(api).patch_namespaced_deployment("canary", fleet_namespace, patch)
    status = waits.deployment_condition(
        api, fleet_namespace, "canary", "Progressing", "ProgressDeadlineExceeded"
    )
    assert status["availableReplicas"] == 3  # maxUnavailable 25% of 3 rounds down to 0
    assert status["updatedReplicas"] == 1  # maxSurge rounds up to 1: one failing new pod
    assert status["unavailableReplicas"] == 1


def test_a_job_with_a_failing_image_fails(
    fleet_clients: dict[str, client.ApiClient], fleet_namespace: str
) -> None:
    api = fleet_clients["fleet-2"]
    _create(api, fleet_namespace, waits.job("crash", image=waits.FAILING_IMAGE))
    outcome, status = waits.job_finished(api, fleet_namespace, "crash")
    assert outcome == "Failed"
    assert status["failed"] == 1


def test_a_deleted_namespace_is_really_deleted_with_its_workloads(
    fleet_clients: dict[str, client.ApiClient],
) -> None:
    api = fleet_clients["fleet-3"]
    name = "gone-soon"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    _create(api, name, waits.deployment("web", replicas=2))
    waits.deployment_available(api, name, "web")
    client.CoreV1Api(api).delete_namespace(name)
    waits.namespace_gone(api, name)
