"""Exact drift attribution against real kube-apiservers, with the real kubectl: Git's own
changes are pending, never drift; an unmanaged object is reported once with who labelled it;
a Service port another manager re-keyed is drift that selfHeal repairs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from reconciler.config.load import load_repo
from reconciler.devenv import binaries
from reconciler.drift import findings
from reconciler.engine import TargetOutcome, reconcile
from reconciler.fields import Drift
from reconciler.kube.pool import Clients
from reconciler.render import render_all
from reconciler.sync.model import Action
from tests.configrepo import (
    configmap,
    deployment,
    secret,
    service,
    unique,
    write_app,
    write_clusters,
)

CLUSTER = "beijing-1"


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write_clusters(root)
    return root


def _pass(root: Path, kubeconfig: Path, instance: str, *, apply: bool) -> TargetOutcome:
    repo = load_repo(root)
    clients = Clients(str(kubeconfig))
    try:
        outcomes = reconcile(
            repo, render_all(repo, clusters=[CLUSTER]), clients, "rev", apply=apply,
            clusters=[CLUSTER], instance=instance,
        )  # fmt: skip
    finally:
        clients.close()
    (outcome,) = outcomes
    assert outcome.error is None, outcome.error
    return outcome


def _kubectl(kubeconfig: Path, namespace: str, *args: str) -> None:
    subprocess.run(
        [
            *(str(binaries.cached_path("kubectl")), "--kubeconfig", str(kubeconfig)),
            *("--context", CLUSTER, "-n", namespace, *args),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_a_scale_plus_git_changes_name_only_what_kubectl_changed(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("attr"), unique("ns")
    web = deployment("web", replicas=2)
    web["metadata"]["annotations"] = {"example.com/note": "r1"}
    write_app(repo_root, app, [web], namespace=ns, placement={"clusters": [CLUSTER]})
    _pass(repo_root, kubeconfig, app, apply=True)

    # What kube-controller-manager writes on every Deployment (no controller runs here).
    revision = {"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}}}
    client.AppsV1Api(api_clients[CLUSTER]).patch_namespaced_deployment(
        "web", ns, revision, field_manager="kube-controller-manager"
    )
    _kubectl(kubeconfig, ns, "scale", "deploy/web", "--replicas=9")
    web["metadata"]["annotations"] = {"example.com/note": "r2"}  # the next commit
    web["spec"]["template"]["spec"]["containers"][0]["image"] = "crccheck/hello-world:2.0"
    write_app(repo_root, app, [web], namespace=ns, placement={"clusters": [CLUSTER]})

    outcome = _pass(repo_root, kubeconfig, app, apply=False)
    assert outcome.plan is not None
    (finding,) = findings(outcome.plan)
    # kubectl scale writes through the scale subresource as manager "kubectl".
    assert [(f.path, f.git, f.live, f.manager) for f in finding.fields] == [
        ("spec.replicas", 2, 9, "kubectl")
    ]
    assert finding.managers == ("kubectl",)
    (change,) = outcome.plan.drifted
    pending = [f.path for f in change.fields if not change.drifted(f)]
    assert pending == [  # Git's changes: pending, whoever else wrote in spec or metadata
        "metadata.annotations[example.com/note]",
        "spec.template.spec.containers[name=web].image",
    ]

    healed = _pass(repo_root, kubeconfig, app, apply=True)
    assert healed.result is not None and healed.result.corrected
    assert _pass(repo_root, kubeconfig, app, apply=False).plan.pending == []  # type: ignore[union-attr]


def test_an_unmanaged_object_is_reported_once_with_who_labelled_it_and_when(
    repo_root: Path, kubeconfig: Path
) -> None:
    app, ns = unique("unmanaged"), unique("ns")
    # Several kinds in the namespace, each with enough objects to be listed whole: the stray
    # ConfigMap is found in the ConfigMaps' scope only, with their apiVersion.
    objects: list[dict[str, Any]] = [configmap(f"c{i}", {"k": "v"}) for i in range(7)]
    objects += [deployment(f"web{i}", replicas=0) for i in range(4)]
    objects += [secret(f"s{i}", "pw") for i in range(4)]
    write_app(repo_root, app, objects, namespace=ns, placement={"clusters": [CLUSTER]})
    _pass(repo_root, kubeconfig, app, apply=True)
    _kubectl(kubeconfig, ns, "create", "configmap", "stray", "--from-literal=k=v")
    _kubectl(kubeconfig, ns, "label", "configmap", "stray", f"reconciler.io/app={app}")

    outcome = _pass(repo_root, kubeconfig, app, apply=False)
    assert outcome.plan is not None
    reported = [f for f in findings(outcome.plan) if f.kind is Drift.UNMANAGED]
    assert [f.object for f in reported] == [f"ConfigMap/{ns}/stray"]
    unmanaged = [c for c in outcome.plan.changes if c.drift is Drift.UNMANAGED]
    assert [(str(c.ref), c.api_version) for c in unmanaged] == [(f"ConfigMap/{ns}/stray", "v1")]
    (field,) = reported[0].fields
    assert field.path == "metadata.labels[reconciler.io/app]"
    assert field.manager == "kubectl-label" and field.time


def test_a_service_port_another_manager_rekeyed_is_drift_that_self_heal_repairs(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("port"), unique("ns")
    svc = service("web")
    svc["spec"]["ports"][0]["name"] = "http"
    write_app(repo_root, app, [svc], namespace=ns, placement={"clusters": [CLUSTER]})
    _pass(repo_root, kubeconfig, app, apply=True)
    patch = [{"op": "replace", "path": "/spec/ports/0/port", "value": 8080}]
    _kubectl(kubeconfig, ns, "patch", "svc", "web", "--type=json", "-p", json.dumps(patch))

    outcome = _pass(repo_root, kubeconfig, app, apply=False)  # no "Duplicate value" failure
    assert outcome.plan is not None
    (finding,) = findings(outcome.plan)
    assert [(f.path, f.git, f.live, f.manager) for f in finding.fields] == [
        ("spec.ports[name=http].port", 80, 8080, "kubectl-patch")
    ]

    healed = _pass(repo_root, kubeconfig, app, apply=True)
    assert healed.result is not None and healed.result.failed == []
    assert [str(r) for r in healed.result.corrected] == [f"Service/{ns}/web"]
    live = client.CoreV1Api(api_clients[CLUSTER]).read_namespaced_service("web", ns)
    assert [(p.name, p.port) for p in live.spec.ports] == [("http", 80)]
    managers = {m.manager for m in live.metadata.managed_fields}
    assert "reconciler-repair" not in managers and "kubectl-patch" not in managers
    again = _pass(repo_root, kubeconfig, app, apply=False)
    assert again.plan is not None
    assert [c.action for c in again.plan.changes] == [Action.UNCHANGED]

    svc["spec"]["ports"][0]["port"] = 81  # a later Git change to the port is a plain apply
    write_app(repo_root, app, [svc], namespace=ns, placement={"clusters": [CLUSTER]})
    moved = _pass(repo_root, kubeconfig, app, apply=True)
    assert moved.result is not None and moved.result.failed == []
    live = client.CoreV1Api(api_clients[CLUSTER]).read_namespaced_service("web", ns)
    assert [(p.name, p.port) for p in live.spec.ports] == [("http", 81)]
