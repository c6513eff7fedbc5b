"""Which watches hold a cluster's live state (real kube-apiservers): one watch of a kind serves
all its namespaces and holds only this Cluster entry's objects; where RBAC is bound per
namespace, each namespace gets a watch of its own and passes are still served from watches."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.config.load import load_repo
from reconciler.devenv import controlplane
from reconciler.engine import reconcile
from reconciler.render import render_all
from reconciler.sync.liveview import watched
from reconciler.sync.model import Action
from tests.apimetrics import delta, request_counts
from tests.clusteraccess import grant
from tests.configrepo import configmap, unique, write_app, write_cluster_entries
from tests.e2e.daemon_rig import eventually
from tests.e2e.watching import account_kubeconfig, server_of, watching_clients
from tests.kubeconfigs import with_context

pytestmark = pytest.mark.e2e

OURS = ("configmaps", "namespaces")


def _counts(devenv: controlplane.DevEnvState, cluster: str) -> Counter[tuple[str, str, str]]:
    found = request_counts(server_of(devenv, cluster), devenv.token, devenv.ca)
    return Counter({k: n for k, n in found.items() if k[2] in OURS})


def _in(namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"]["namespace"] = namespace
    return manifest


def test_one_watch_of_a_kind_serves_every_namespace_and_only_this_entrys_objects(
    tmp_path: Path,
    kubeconfig: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
) -> None:
    config = with_context(kubeconfig, tmp_path / "kc", "tenant-b", like="beijing-1")
    root = tmp_path / "repo"
    write_cluster_entries(root, {"tenant-a": "beijing-1", "tenant-b": "tenant-b"})
    app, instance = unique("wide"), unique("i")
    spaces = [unique("ns") for _ in range(3)]
    objects = [
        _in(ns, configmap("cfg-${cluster.name}", {"n": str(i)})) for i, ns in enumerate(spaces)
    ]
    write_app(root, app, objects, placement={"clusters": ["tenant-a", "tenant-b"]})
    repo = load_repo(root)
    clients, heard = watching_clients(str(config))
    try:
        first = reconcile(repo, render_all(repo), clients, "r1", apply=True, instance=instance)
        assert all(o.ok for o in first), [o.error for o in first]

        entry = clients.get("tenant-a", "beijing-1")
        assert entry.live is not None
        scopes = entry.live.watching()
        assert scopes.get("ConfigMap") == "live", scopes
        assert not [s for s in scopes if any(ns in s for ns in spaces)], scopes
        configmaps = entry.resource("v1", "ConfigMap")
        views = watched(entry, [(configmaps, ns) for ns in spaces])
        names = [sorted(o["metadata"]["name"] for o in view or []) for view in views]
        assert names == [["cfg-tenant-a"]] * 3  # tenant-b's objects share the namespaces

        before = _counts(devenv, "beijing-1")
        again = reconcile(repo, render_all(repo), clients, "r1", apply=True, instance=instance)
        sent = delta(_counts(devenv, "beijing-1"), before)
        assert all(c.action is Action.UNCHANGED for o in again for c in o.plan.changes)  # type: ignore[union-attr]
        assert sum(sent.values()) == 0, sent

        client.CoreV1Api(api_clients["beijing-1"]).patch_namespaced_config_map(
            "cfg-tenant-a", spaces[2], {"data": {"n": "edited"}}, field_manager="kubectl-edit"
        )
        eventually(
            lambda: heard.seen("changed", f"ConfigMap/{spaces[2]}/cfg-tenant-a"),
            10,
            "the edit in the third namespace heard",
        )
        assert not heard.seen("changed", "cfg-tenant-b")
    finally:
        clients.close()


def test_rbac_bound_per_namespace_gets_a_watch_per_namespace(
    tmp_path: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
) -> None:
    api = api_clients["us-west-1"]
    core = client.CoreV1Api(api)
    who, namespace = unique("bound"), unique("ns")
    for space in (namespace, "reconciler-system"):
        try:
            core.create_namespace({"metadata": {"name": space}})
        except ApiException as err:
            if err.status != 409:  # reconciler-system may be there already
                raise
    verbs = ["get", "list", "watch", "create", "patch", "update", "delete"]
    subject = {"kind": "ServiceAccount", "name": who, "namespace": "default"}
    for where in (namespace, "reconciler-system"):
        grant(
            api,
            who,
            [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}],
            subject,
            where,
        )
    grant(api, who, [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}], subject)
    bound = account_kubeconfig(api, devenv, "us-west-1", who, tmp_path / "bound")
    root = tmp_path / "repo"
    write_cluster_entries(root, {"us-west-1": "us-west-1"})
    app, instance = unique("bound"), unique("i")
    objects = [configmap(f"c{i}", {"v": "1"}) for i in range(3)]
    write_app(root, app, objects, namespace=namespace, placement={"clusters": ["us-west-1"]})
    repo = load_repo(root)
    clients, heard = watching_clients(str(bound))
    try:
        first = reconcile(repo, render_all(repo), clients, "r1", apply=True, instance=instance)
        assert all(o.ok for o in first), [o.error for o in first]
        narrowed = heard.seen("narrowed")
        assert {e.scope for e in narrowed} == {"ConfigMap"}, heard.events
        assert "403" in narrowed[0].reason
        assert not [e for e in heard.seen("unwatchable") if e.scope.startswith("ConfigMap")]
        entry = clients.get("us-west-1", "us-west-1")
        assert entry.live is not None
        assert entry.live.watching().get(f"ConfigMap in {namespace}") == "live"

        before = _counts(devenv, "us-west-1")
        again = reconcile(repo, render_all(repo), clients, "r1", apply=True, instance=instance)
        sent = delta(_counts(devenv, "us-west-1"), before)
        assert all(c.action is Action.UNCHANGED for o in again for c in o.plan.changes)  # type: ignore[union-attr]
        configmap_reads = {k: n for k, n in sent.items() if k[2] == "configmaps"}
        assert configmap_reads == {}, sent  # served from the namespace's watch, not polled
    finally:
        clients.close()
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.delete_cluster_role_binding(who)
        rbac.delete_cluster_role(who)
