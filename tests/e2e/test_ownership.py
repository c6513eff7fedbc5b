"""Ownership per Cluster entry: two entries reaching one API server never prune each other, a
shared object is a reported conflict, and inventories from before the cluster key are adopted
without pruning or re-creating anything (real kube-apiservers)."""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes import client

from reconciler.config.load import load_repo
from reconciler.engine import TargetOutcome, reconcile
from reconciler.fields import Drift
from reconciler.kube.pool import Clients
from reconciler.render import render_all
from reconciler.sync.model import Action
from tests.configrepo import configmap, unique, write_app, write_cluster_entries
from tests.kubeconfigs import with_context


def _pass(root: Path, kubeconfig: Path, instance: str) -> list[TargetOutcome]:
    repo = load_repo(root)
    clients = Clients(str(kubeconfig))
    try:
        return reconcile(repo, render_all(repo), clients, "rev", apply=True, instance=instance)
    finally:
        clients.close()


def _counts(outcomes: list[TargetOutcome]) -> dict[str, int]:
    totals = {"created": 0, "configured": 0, "pruned": 0, "conflicts": 0}
    for o in outcomes:
        assert o.error is None, o.error
        assert o.result is not None and o.plan is not None
        totals["created"] += len(o.result.created)
        totals["configured"] += len(o.result.configured)
        totals["pruned"] += len(o.result.pruned)
        totals["conflicts"] += sum(c.action is Action.CONFLICT for c in o.plan.changes)
    return totals


def test_two_cluster_entries_on_one_api_server_converge_without_pruning_each_other(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    config = with_context(kubeconfig, tmp_path / "kc", "tenant-b", like="beijing-1")
    root = tmp_path / "repo"
    write_cluster_entries(root, {"tenant-a": "beijing-1", "tenant-b": "tenant-b"})
    app, ns, instance = unique("tenancy"), unique("ns"), unique("i")
    write_app(
        root,
        app,
        [configmap("cfg-${cluster.name}", {"owner": "${cluster.name}"})],
        namespace=ns,
        placement={"clusters": ["tenant-a", "tenant-b"]},
    )
    first = _counts(_pass(root, config, instance))
    assert first["created"] == 2 and first["pruned"] == 0
    second = _counts(_pass(root, config, instance))
    assert second == {"created": 0, "configured": 0, "pruned": 0, "conflicts": 0}
    core = client.CoreV1Api(api_clients["beijing-1"])
    for entry in ("tenant-a", "tenant-b"):
        live = core.read_namespaced_config_map(f"cfg-{entry}", ns)
        assert live.metadata.labels["reconciler.io/cluster"] == entry
        inventory = core.read_namespaced_config_map(
            f"inventory.{instance}.{app}.{entry}", "reconciler-system"
        )
        listed = [o["name"] for o in json.loads(inventory.data["objects"])]
        assert listed == [f"cfg-{entry}"]


def test_an_object_both_cluster_entries_render_is_a_reported_conflict(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    config = with_context(kubeconfig, tmp_path / "kc", "tenant-b", like="beijing-1")
    root = tmp_path / "repo"
    write_cluster_entries(root, {"tenant-a": "beijing-1", "tenant-b": "tenant-b"})
    app, ns, instance = unique("shared"), unique("ns"), unique("i")
    write_app(
        root,
        app,
        [configmap("shared", {"k": "v"}), configmap("own-${cluster.name}", {"k": "v"})],
        namespace=ns,
        placement={"clusters": ["tenant-a", "tenant-b"]},
    )
    _pass(root, config, instance)  # both may create "shared" at once: one of them wins
    outcomes = _pass(root, config, instance)
    assert _counts(outcomes)["pruned"] == 0
    conflicts = [
        (o.cluster, c.message)
        for o in outcomes
        for c in (o.plan.changes if o.plan else [])
        if c.action is Action.CONFLICT
    ]
    assert len(conflicts) == 1, conflicts
    loser, message = conflicts[0]
    winner = {"tenant-a": "tenant-b", "tenant-b": "tenant-a"}[loser]
    assert f"applied by cluster entry {winner} of app {app}" in message
    assert "two Cluster entries reach the same API server" in message
    core = client.CoreV1Api(api_clients["beijing-1"])
    assert (
        core.read_namespaced_config_map("shared", ns).metadata.labels["reconciler.io/cluster"]
        == winner
    )
    for entry in ("tenant-a", "tenant-b"):
        core.read_namespaced_config_map(f"own-{entry}", ns)  # neither was pruned


def test_objects_and_inventories_from_before_the_cluster_key_are_adopted_not_recreated(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    root = tmp_path / "repo"
    write_cluster_entries(root, {"beijing-1": "beijing-1"})
    app, ns, instance = unique("legacy"), unique("ns"), unique("i")
    write_app(
        root,
        app,
        [configmap("kept", {"k": "v"})],
        namespace=ns,
        placement={"clusters": ["beijing-1"]},
    )
    core = client.CoreV1Api(api_clients["beijing-1"])
    core.create_namespace({"metadata": {"name": ns}})
    uids = {}
    for name in ("kept", "left-git"):  # what an older reconciler applied: app label only
        made = core.create_namespaced_config_map(
            ns,
            {
                "metadata": {"name": name, "labels": {"reconciler.io/app": app}},
                "data": {"k": "v"},
            },
        )
        uids[name] = made.metadata.uid
    entries = [
        {
            "apiVersion": "v1",
            "group": "",
            "kind": "ConfigMap",
            "namespace": ns,
            "name": n,
            "hash": "x",
        }
        for n in ("kept", "left-git")
    ]
    legacy = f"inventory.{instance}.{app}"
    core.create_namespaced_config_map(
        "reconciler-system",
        {
            "metadata": {
                "name": legacy,
                "labels": {"reconciler.io/inventory": app, "reconciler.io/instance": instance},
            },
            "data": {"app": app, "revision": "old", "objects": json.dumps(entries)},
        },
    )

    outcome = next(o for o in _pass(root, kubeconfig, instance))
    assert outcome.result is not None, outcome.error
    assert outcome.result.pruned == [] and outcome.result.created == []
    assert [str(r) for r in outcome.result.configured] == [f"ConfigMap/{ns}/kept"]
    kept = core.read_namespaced_config_map("kept", ns)
    assert kept.metadata.uid == uids["kept"]  # adopted, not re-created
    assert kept.metadata.labels["reconciler.io/cluster"] == "beijing-1"
    assert core.read_namespaced_config_map("left-git", ns).metadata.uid == uids["left-git"]
    names = {c.metadata.name for c in core.list_namespaced_config_map("reconciler-system").items}
    assert legacy not in names and f"{legacy}.beijing-1" in names

    again = next(o for o in _pass(root, kubeconfig, instance))
    assert again.result is not None and again.plan is not None
    assert again.result.pruned == [] and again.result.configured == []
    # The leftover that left Git is reported (unmanaged), never deleted on a guess.
    assert [(str(c.ref), c.action, c.drift) for c in again.plan.pending] == [
        (f"ConfigMap/{ns}/left-git", Action.KEEP, Drift.UNMANAGED)
    ]
