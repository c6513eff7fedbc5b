"""kwok's configuration for the devenv clusters (no cluster needed)."""

from __future__ import annotations

from typing import Any

import yaml

from reconciler.devenv import workloads


def _stages() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all(workloads.kwok_config()))
    assert docs[0]["kind"] == "KwokConfiguration"
    assert docs[0]["options"]["manageAllNodes"] is True
    return {d["metadata"]["name"]: d["spec"] for d in docs[1:] if d["kind"] == "Stage"}


def _keys(spec: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {
        e["key"]: (e["operator"], e.get("values", [])) for e in spec["selector"]["matchExpressions"]
    }


def test_a_pending_pod_goes_to_exactly_one_first_stage_by_its_image_and_restart_policy() -> None:
    stages = _stages()
    fail_key = next(k for k in _keys(stages["pod-crashloop"]) if "image" in k)
    assert ":fail" in fail_key
    assert _keys(stages["pod-ready"])[fail_key] == ("NotIn", ["true"])
    assert _keys(stages["pod-crashloop"])[fail_key] == ("In", ["true"])
    assert _keys(stages["pod-fail"])[fail_key] == ("In", ["true"])
    restart = ".spec.restartPolicy"
    assert _keys(stages["pod-crashloop"])[restart] == ("In", ["Always"])
    assert _keys(stages["pod-fail"])[restart] == ("NotIn", ["Always"])


def test_only_the_delete_stage_acts_on_pods_being_deleted() -> None:
    for name, spec in _stages().items():
        if spec["resourceRef"]["kind"] != "Pod":
            continue
        deleting = _keys(spec)[".metadata.deletionTimestamp"][0]
        assert deleting == ("Exists" if name == "pod-delete" else "DoesNotExist"), name


def test_fake_nodes_spread_over_zones_with_room_for_pods() -> None:
    nodes = [workloads.node(i, "east") for i in range(1, workloads.NODES + 1)]
    zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes}
    assert zones == {"east-a", "east-b", "east-c"}
    assert all(n["status"]["allocatable"]["pods"] == "110" for n in nodes)


def test_workers_serve_no_port_so_many_clusters_never_clash(tmp_path: Any) -> None:
    bins = {name: tmp_path / name for name in workloads.WORKERS}
    commands = workloads.commands(bins, tmp_path / "kc", tmp_path, tmp_path / "ca", tmp_path / "k")
    assert set(commands) == set(workloads.WORKERS)
    for worker in ("kube-controller-manager", "kube-scheduler"):
        assert "--secure-port=0" in commands[worker]
        assert "--leader-elect=false" in commands[worker]
