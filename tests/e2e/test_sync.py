"""The sync engine against three real kube-apiservers: exact diffs, staged apply, prune, drift."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.config.load import load_repo
from reconciler.devenv import controlplane
from reconciler.engine import TargetOutcome, reconcile
from reconciler.errors import ConfigError
from reconciler.fields import Drift
from reconciler.kube.pool import Clients
from reconciler.render import render_all
from reconciler.sync.model import Action
from tests.apimetrics import delta, request_counts
from tests.configrepo import (
    configmap,
    crd_and_resource,
    deployment,
    secret,
    service,
    unique,
    write_app,
    write_clusters,
)

CLUSTERS = ["beijing-1", "beijing-2", "us-west-1"]


def run(
    root: Path, kubeconfig: Path, instance: str, *, apply: bool, timeout: float = 10.0
) -> list[TargetOutcome]:
    repo = load_repo(root)
    clients = Clients(str(kubeconfig), timeout=timeout)
    try:
        return reconcile(repo, render_all(repo), clients, "rev", apply=apply, instance=instance)
    finally:
        clients.close()


def changes(outcomes: list[TargetOutcome]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(app, cluster) -> [(object, action)] for everything that is not unchanged."""
    out = {}
    for o in outcomes:
        assert o.error is None, o.error
        assert o.plan is not None
        out[(o.app, o.cluster)] = [
            (str(c.ref), c.action.value) for c in o.plan.changes if c.action is not Action.UNCHANGED
        ]
    return out


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write_clusters(root)
    return root


def test_a_fresh_apply_then_diff_shows_zero_changes_on_every_cluster(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns, group = unique("full"), unique("ns"), f"{unique('g')}.example.com"
    write_app(
        repo_root,
        app,
        [
            deployment("web"),
            service("web"),
            secret("db", "s3cret"),
            configmap("settings", {"domain": "${cluster.vars.domain}"}),
            *crd_and_resource(group, "Widget", "w1"),
        ],
        namespace=ns,
    )
    preview = run(repo_root, kubeconfig, app, apply=False)
    plan = preview[0].plan
    assert plan is not None
    widget = next(c for c in plan.changes if c.ref.kind == "Widget")
    assert widget.action is Action.CREATE and widget.after_crd

    applied = run(repo_root, kubeconfig, app, apply=True)
    for outcome in applied:
        assert outcome.result is not None and outcome.result.ok, outcome.result
        assert len(outcome.result.created) == 6

    again = run(repo_root, kubeconfig, app, apply=True)
    assert changes(again) == {(app, c): [] for c in CLUSTERS}
    assert all(o.result is not None and o.result.writes == 0 for o in again)

    core = client.CoreV1Api(api_clients["beijing-2"])
    labels = core.read_namespace(ns).metadata.labels
    assert labels["app.kubernetes.io/managed-by"] == "reconciler"
    settings = core.read_namespaced_config_map("settings", ns)
    assert settings.data == {"domain": "beijing-2.example.com"}
    assert settings.metadata.labels["reconciler.io/app"] == app


def test_an_edit_by_another_field_manager_is_shown_attributed_and_healed(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("heal"), unique("ns")
    write_app(repo_root, app, [deployment("web", replicas=3)], namespace=ns)
    run(repo_root, kubeconfig, app, apply=True)
    apps = client.AppsV1Api(api_clients["us-west-1"])
    apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"replicas": 7}}, field_manager="kubectl-edit"
    )

    diff = run(repo_root, kubeconfig, app, apply=False)
    drifted = {o.cluster: o.plan.drifted for o in diff if o.plan}
    assert drifted["beijing-1"] == [] and drifted["beijing-2"] == []
    [change] = drifted["us-west-1"]
    assert change.drift is Drift.MODIFIED
    assert [(f.path, f.live, f.git, f.manager) for f in change.fields] == [
        ("spec.replicas", 7, 3, "kubectl-edit")
    ]
    assert change.fields[0].time is not None

    healed = run(repo_root, kubeconfig, app, apply=True)
    result = next(o.result for o in healed if o.cluster == "us-west-1")
    assert result is not None and [str(r) for r in result.corrected] == [
        f"Deployment.apps/{ns}/web"
    ]
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 3
    assert changes(run(repo_root, kubeconfig, app, apply=False))[(app, "us-west-1")] == []


def test_self_heal_off_reports_drift_and_never_touches_the_object(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("watch"), unique("ns")
    write_app(
        repo_root,
        app,
        [configmap("cfg", {"mode": "safe"})],
        namespace=ns,
        sync={"selfHeal": False},
    )
    run(repo_root, kubeconfig, app, apply=True)
    core = client.CoreV1Api(api_clients["beijing-1"])
    core.patch_namespaced_config_map(
        "cfg", ns, {"data": {"mode": "fast"}}, field_manager="ops-script"
    )
    before = core.read_namespaced_config_map("cfg", ns).metadata.resource_version

    outcomes = run(repo_root, kubeconfig, app, apply=True)
    result = next(o for o in outcomes if o.cluster == "beijing-1")
    assert result.plan is not None and result.result is not None
    [change] = result.plan.drifted
    assert [(f.path, f.git, f.live, f.manager) for f in change.fields] == [
        ("data.mode", "safe", "fast", "ops-script")
    ]
    assert result.result.skipped == [(change.ref, "drifted; selfHeal is off")]
    live = core.read_namespaced_config_map("cfg", ns)
    assert live.data == {"mode": "fast"}
    assert live.metadata.resource_version == before


def test_self_heal_off_applies_a_git_change_it_skipped_once_the_drift_is_reverted(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("later"), unique("ns")
    only_here: dict[str, Any] = {
        "placement": {"clusters": ["beijing-1"]},
        "sync": {"selfHeal": False},
    }
    write_app(
        repo_root, app, [configmap("cfg", {"mode": "safe", "size": "s"})], namespace=ns, **only_here
    )
    run(repo_root, kubeconfig, app, apply=True)
    core = client.CoreV1Api(api_clients["beijing-1"])
    core.patch_namespaced_config_map(
        "cfg", ns, {"data": {"mode": "fast"}}, field_manager="ops-script"
    )
    # The next commit changes another field of the drifted object: the object is skipped.
    write_app(
        repo_root, app, [configmap("cfg", {"mode": "safe", "size": "l"})], namespace=ns, **only_here
    )
    (skipped,) = run(repo_root, kubeconfig, app, apply=True)
    assert skipped.plan is not None and skipped.result is not None
    (change,) = skipped.plan.drifted
    assert [f.path for f in change.drift_fields] == ["data.mode"]
    assert skipped.result.skipped == [(change.ref, "drifted; selfHeal is off")]
    assert core.read_namespaced_config_map("cfg", ns).data == {"mode": "fast", "size": "s"}

    # Once the edit is reverted, Git's change it held back is applied: it was never applied.
    core.patch_namespaced_config_map(
        "cfg", ns, {"data": {"mode": "safe"}}, field_manager="ops-script"
    )
    (applied,) = run(repo_root, kubeconfig, app, apply=True)
    assert applied.plan is not None and applied.result is not None
    assert applied.plan.drifted == [] and applied.result.skipped == []
    assert core.read_namespaced_config_map("cfg", ns).data == {"mode": "safe", "size": "l"}


def test_an_object_removed_from_git_is_pruned_and_a_prune_disabled_one_is_kept(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("prune"), unique("ns")
    keep = configmap("keep", {"a": "1"})
    keep["metadata"]["annotations"] = {"reconciler.io/prune": "disabled"}
    write_app(
        repo_root,
        app,
        [configmap("stay", {"a": "1"}), configmap("go", {"a": "1"}), keep],
        namespace=ns,
    )
    run(repo_root, kubeconfig, app, apply=True)
    write_app(repo_root, app, [configmap("stay", {"a": "1"})], namespace=ns)

    plan = changes(run(repo_root, kubeconfig, app, apply=False))
    assert plan[(app, "beijing-1")] == [
        (f"ConfigMap/{ns}/go", "prune"),
        (f"ConfigMap/{ns}/keep", "keep"),
    ]
    outcomes = run(repo_root, kubeconfig, app, apply=True)
    assert all(
        o.result and [str(r) for r in o.result.pruned] == [f"ConfigMap/{ns}/go"] for o in outcomes
    )
    core = client.CoreV1Api(api_clients["us-west-1"])
    names = {c.metadata.name for c in core.list_namespaced_config_map(ns).items}
    assert {"stay", "keep"} <= names and "go" not in names


def test_a_render_error_prunes_nothing_and_keeps_the_last_good_state(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("broken"), unique("ns")
    write_app(
        repo_root, app, [configmap("a", {"k": "1"}), configmap("b", {"k": "1"})], namespace=ns
    )
    run(repo_root, kubeconfig, app, apply=True)
    # Only us-west-1 has a provider label: the render fails on the beijing clusters alone.
    write_app(repo_root, app, [configmap("a", {"k": "${cluster.labels.provider}"})], namespace=ns)

    outcomes = {o.cluster: o for o in run(repo_root, kubeconfig, app, apply=True)}
    for name in ("beijing-1", "beijing-2"):
        assert outcomes[name].error is not None and outcomes[name].result is None
        assert "cluster.labels.provider" in str(outcomes[name].error)
        assert name in str(outcomes[name].error)
        core = client.CoreV1Api(api_clients[name])
        assert {c.metadata.name for c in core.list_namespaced_config_map(ns).items} >= {"a", "b"}
    west = outcomes["us-west-1"].result
    assert west is not None and [str(r) for r in west.pruned] == [f"ConfigMap/{ns}/b"]


def test_an_empty_render_does_not_prune_everything_unless_allowed(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("empty"), unique("ns")
    write_app(repo_root, app, [configmap("a", {"k": "1"})], namespace=ns)
    run(repo_root, kubeconfig, app, apply=True)
    write_app(repo_root, app, [], namespace=ns)
    with pytest.raises(ConfigError, match="no Kubernetes object document"):
        load_repo(repo_root)  # an emptied manifest file is refused before any render

    # A source that renders nothing (here an empty kustomization) reaches the sync guard.
    app_yaml = repo_root / "apps" / app / "app.yaml"
    manifests_app = app_yaml.read_text()
    app_yaml.write_text(manifests_app.replace("manifests: manifests/", "kustomize: {path: k/}"))
    (repo_root / "apps" / app / "k").mkdir()
    (repo_root / "apps" / app / "k" / "kustomization.yaml").write_text("resources: []\n")
    refused = run(repo_root, kubeconfig, app, apply=True)
    assert len(refused) == 3
    assert all("renders to zero objects" in str(o.error) for o in refused)
    core = client.CoreV1Api(api_clients["beijing-1"])
    assert core.read_namespaced_config_map("a", ns).data == {"k": "1"}

    write_app(repo_root, app, [], namespace=ns, sync={"allowEmpty": True})
    allowed = run(repo_root, kubeconfig, app, apply=True)
    assert all(o.result and len(o.result.pruned) == 1 for o in allowed)
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("a", ns)


def test_an_object_owned_by_another_manager_is_a_conflict_not_taken_over(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient], namespace: str
) -> None:
    app = unique("conflict")
    for api in api_clients.values():
        client.CoreV1Api(api).patch_namespaced_config_map(
            "shared",
            namespace,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "shared"},
                "data": {"k": "theirs"},
            },
            field_manager="helm",
            _content_type="application/apply-patch+yaml",
        )
    write_app(repo_root, app, [configmap("shared", {"k": "ours"})], namespace=namespace)

    outcomes = run(repo_root, kubeconfig, app, apply=True)
    for o in outcomes:
        assert o.plan is not None and o.result is not None
        [change] = o.plan.pending
        assert change.action is Action.CONFLICT and change.managers == ["helm"]
        assert o.result.skipped and not o.result.configured
    core = client.CoreV1Api(api_clients["us-west-1"])
    assert core.read_namespaced_config_map("shared", namespace).data == {"k": "theirs"}
    cli = _cli("apply", str(repo_root), "--kubeconfig", str(kubeconfig), "--instance", app)
    assert cli.returncode == 2
    assert f"skipped ConfigMap/{namespace}/shared: fields owned by helm" in cli.stdout
    again = run(repo_root, kubeconfig, app, apply=True)  # a conflict never becomes ours later
    assert all(o.plan and [c.action for c in o.plan.pending] == [Action.CONFLICT] for o in again)
    assert core.read_namespaced_config_map("shared", namespace).data == {"k": "theirs"}

    write_app(
        repo_root,
        app,
        [configmap("shared", {"k": "ours"})],
        namespace=namespace,
        sync={"force": True},
    )
    forced = run(repo_root, kubeconfig, app, apply=True)
    assert all(o.result and o.result.configured for o in forced)
    assert core.read_namespaced_config_map("shared", namespace).data == {"k": "ours"}


def test_ignored_differences_are_neither_shown_nor_fought_over(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("hpa"), unique("ns")
    write_app(
        repo_root,
        app,
        [deployment("web", replicas=2)],
        namespace=ns,
        sync={"ignoreDifferences": [{"kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]},
    )
    run(repo_root, kubeconfig, app, apply=True)
    apps = client.AppsV1Api(api_clients["beijing-1"])
    # Leaving an ignored field out of later applies must not drop it back to its default.
    assert changes(run(repo_root, kubeconfig, app, apply=True))[(app, "beijing-1")] == []
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 2
    apps.patch_namespaced_deployment(
        "web", ns, {"spec": {"replicas": 9}}, field_manager="hpa-controller"
    )

    assert changes(run(repo_root, kubeconfig, app, apply=True))[(app, "beijing-1")] == []
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 9


def test_an_ignored_field_in_a_list_git_does_not_declare_is_left_to_its_live_value(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("inject"), unique("ns")
    rule = {"kind": "Deployment", "jsonPointers": ["/spec/template/spec/initContainers/0/image"]}
    write_app(
        repo_root,
        app,
        [deployment("web")],
        namespace=ns,
        placement={"clusters": ["beijing-1"]},
        sync={"ignoreDifferences": [rule]},
    )
    run(repo_root, kubeconfig, app, apply=True)
    apps = client.AppsV1Api(api_clients["beijing-1"])
    init = {"name": "vault-agent-init", "image": "vault:1.15"}
    patch = {"spec": {"template": {"spec": {"initContainers": [init]}}}}
    apps.patch_namespaced_deployment("web", ns, patch, field_manager="injector")

    # Git declares no initContainers: nothing is made up for the pointer (a malformed object the
    # dry-run rejects), and the injected container is neither drift nor touched.
    assert changes(run(repo_root, kubeconfig, app, apply=True)) == {(app, "beijing-1"): []}
    live = apps.read_namespaced_deployment("web", ns).spec.template.spec.init_containers
    assert [(c.name, c.image) for c in live] == [("vault-agent-init", "vault:1.15")]


def test_an_immutable_field_change_says_which_field_and_what_to_do(
    repo_root: Path, kubeconfig: Path
) -> None:
    app, ns = unique("immutable"), unique("ns")
    write_app(repo_root, app, [deployment("web")], namespace=ns)
    run(repo_root, kubeconfig, app, apply=True)
    changed = deployment("web")
    changed["spec"]["selector"]["matchLabels"]["tier"] = "front"
    changed["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
    write_app(repo_root, app, [changed], namespace=ns)

    outcomes = run(repo_root, kubeconfig, app, apply=True)
    for o in outcomes:
        message = str(o.error)
        assert f"Deployment.apps/{ns}/web" in message and o.cluster in message
        assert "spec.selector" in message and "immutable" in message
        assert "delete the object" in message


def test_a_stopped_apiserver_is_a_clear_error_and_the_other_clusters_are_synced(
    tmp_path: Path,
) -> None:
    plane = controlplane.start(
        tmp_path / "plane", ["alive", "stopped"], controlplane.Launch(die_with_parent=True)
    )
    try:
        root = tmp_path / "repo"
        write_clusters(root, {"alive": {"env": "x"}, "stopped": {"env": "x"}})
        write_app(
            root,
            "greeting",
            [configmap("hello", {"who": "${cluster.name}"})],
            namespace="hi",
            placement={"selector": {"matchLabels": {"env": "x"}}},
        )
        down = next(c for c in plane.clusters if c.name == "stopped")
        os.kill(down.pid, signal.SIGKILL)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "apply",
                str(root),
                "--kubeconfig",
                plane.kubeconfig,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "app greeting: 1 created" in result.stdout
        assert f"cluster stopped: unreachable at https://127.0.0.1:{down.port}" in result.stdout
        assert "connection refused" in result.stdout
    finally:
        controlplane.stop(tmp_path / "plane")


def test_a_deleted_object_is_missing_drift_and_an_extra_labelled_one_is_unmanaged(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("gone"), unique("ns")
    write_app(repo_root, app, [configmap("cfg", {"k": "1"})], namespace=ns)
    run(repo_root, kubeconfig, app, apply=True)
    core = client.CoreV1Api(api_clients["beijing-1"])
    core.delete_namespaced_config_map("cfg", ns)
    core.create_namespaced_config_map(
        ns,
        configmap("stray", {"k": "1"})
        | {"metadata": {"name": "stray", "labels": {"reconciler.io/app": app}}},
    )

    outcome = next(
        o for o in run(repo_root, kubeconfig, app, apply=False) if o.cluster == "beijing-1"
    )
    assert outcome.plan is not None
    assert [(str(c.ref), c.drift) for c in outcome.plan.drifted] == [
        (f"ConfigMap/{ns}/cfg", Drift.MISSING),
        (f"ConfigMap/{ns}/stray", Drift.UNMANAGED),
    ]
    healed = next(
        o for o in run(repo_root, kubeconfig, app, apply=True) if o.cluster == "beijing-1"
    )
    assert healed.result is not None and [str(r) for r in healed.result.corrected] == [
        f"ConfigMap/{ns}/cfg"
    ]
    assert core.read_namespaced_config_map("cfg", ns).data == {"k": "1"}
    assert core.read_namespaced_config_map("stray", ns).data == {"k": "1"}  # reported, not deleted


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_diff_command_exits_by_what_it_found_and_prints_attributed_drift(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("cli"), unique("ns")
    write_app(
        repo_root,
        app,
        [deployment("web", replicas=3), secret("token", "hunter2-value")],
        namespace=ns,
    )
    common = ["--kubeconfig", str(kubeconfig), "--instance", app]
    first = _cli("diff", str(repo_root), *common)
    assert first.returncode == 1 and f"+ Deployment.apps/{ns}/web create" in first.stdout
    applied = _cli("apply", str(repo_root), *common)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.rstrip().endswith(
        "applied 3 targets on 3 clusters: 6 created, 0 configured, 0 unchanged, 0 pruned, 0 skipped"
    )
    assert _cli("diff", str(repo_root), *common).returncode == 0

    client.AppsV1Api(api_clients["us-west-1"]).patch_namespaced_deployment(
        "web", ns, {"spec": {"replicas": 7}}, field_manager="kubectl-edit"
    )
    client.CoreV1Api(api_clients["us-west-1"]).patch_namespaced_secret(
        "token", ns, {"stringData": {"password": "changed-by-hand"}}, field_manager="kubectl-edit"
    )
    text = _cli("diff", str(repo_root), "--cluster", "us-west-1", *common)
    assert text.returncode == 1
    assert f"► Deployment.apps/{ns}/web drifted" in text.stdout
    assert "spec.replicas: git 3, live 7 (live set by kubectl-edit at " in text.stdout
    assert f"► Secret/{ns}/token drifted" in text.stdout
    for output in ("text", "json", "markdown"):
        shown = _cli("diff", str(repo_root), "-o", output, *common)
        assert "hunter2" not in shown.stdout and "changed-by-hand" not in shown.stdout
        assert "(masked)" in shown.stdout


def test_an_object_relabelled_for_another_app_is_neither_pruned_nor_taken_over(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("owner"), unique("ns")
    write_app(
        repo_root, app, [configmap("a", {"k": "1"}), configmap("moved", {"k": "1"})], namespace=ns
    )
    run(repo_root, kubeconfig, app, apply=True)
    core = client.CoreV1Api(api_clients["beijing-1"])
    core.patch_namespaced_config_map(
        "moved", ns, {"metadata": {"labels": {"reconciler.io/app": "someone-else"}}}
    )
    write_app(repo_root, app, [configmap("a", {"k": "1"})], namespace=ns)

    outcome = next(
        o for o in run(repo_root, kubeconfig, app, apply=True) if o.cluster == "beijing-1"
    )
    assert outcome.result is not None and outcome.result.pruned == []
    assert [(str(r), why) for r, why in outcome.result.skipped] == [
        (f"ConfigMap/{ns}/moved", "now labelled reconciler.io/app=someone-else; not pruned")
    ]
    assert core.read_namespaced_config_map("moved", ns).data == {"k": "1"}


def test_a_namespace_left_out_of_git_is_not_pruned_while_it_holds_the_apps_objects(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("nsprune"), unique("ns")
    namespace_doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    write_app(repo_root, app, [namespace_doc, configmap("a", {"k": "1"})], namespace=ns)
    run(repo_root, kubeconfig, app, apply=True)
    write_app(repo_root, app, [configmap("a", {"k": "1"})], namespace=ns)

    outcomes = run(repo_root, kubeconfig, app, apply=True)
    assert all(o.result is not None and o.result.pruned == [] for o in outcomes)
    core = client.CoreV1Api(api_clients["us-west-1"])
    assert core.read_namespace(ns).status.phase == "Active"


def test_a_removed_object_is_still_pruned_after_a_pass_whose_apply_failed(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("retry"), unique("ns")
    write_app(
        repo_root, app, [configmap("a", {"k": "1"}), configmap("b", {"k": "1"})], namespace=ns
    )
    run(repo_root, kubeconfig, app, apply=True)
    bad = service("bad")
    bad["spec"]["ports"][0]["port"] = 99999  # rejected by the API server's validation
    write_app(repo_root, app, [configmap("a", {"k": "1"}), bad], namespace=ns)

    failed = run(repo_root, kubeconfig, app, apply=True)
    assert all(o.result is not None and o.result.failed and not o.result.pruned for o in failed)
    write_app(repo_root, app, [configmap("a", {"k": "1"})], namespace=ns)
    fixed = run(repo_root, kubeconfig, app, apply=True)
    assert all(
        o.result is not None and [str(r) for r in o.result.pruned] == [f"ConfigMap/{ns}/b"]
        for o in fixed
    )


def test_a_cluster_scoped_custom_kind_gets_no_namespace_and_then_shows_no_diff(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns, group = unique("scope"), unique("ns"), f"{unique('g')}.example.com"
    crd, _ = crd_and_resource(group, "Zone", "unused")
    crd["spec"]["scope"] = "Cluster"
    for api in api_clients.values():  # installed outside the app, as platform teams do
        client.ApiextensionsV1Api(api).create_custom_resource_definition(crd)
        for _ in range(100):
            live = client.ApiextensionsV1Api(api).read_custom_resource_definition(
                crd["metadata"]["name"]
            )
            if any(
                c.type == "Established" and c.status == "True" for c in live.status.conditions or []
            ):
                break
            time.sleep(0.1)
    zone = {
        "apiVersion": f"{group}/v1",
        "kind": "Zone",
        "metadata": {"name": unique("z")},
        "spec": {},
    }
    write_app(repo_root, app, [zone, configmap("a", {"k": "1"})], namespace=ns)

    applied = run(repo_root, kubeconfig, app, apply=True)
    assert all(o.result is not None and o.result.ok for o in applied), [o.result for o in applied]
    assert changes(run(repo_root, kubeconfig, app, apply=False)) == {(app, c): [] for c in CLUSTERS}


def test_a_first_apply_reads_nothing_in_the_namespaces_it_creates_and_the_next_reads_them(
    repo_root: Path, kubeconfig: Path, devenv: controlplane.DevEnvState
) -> None:
    app, ns = unique("fresh"), unique("ns")
    server = next(c.server for c in devenv.clusters if c.name == "us-west-1")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    # PodTemplates: a kind the API server's own informers never list (its ConfigMaps, Roles
    # and quotas are listed now and then), so every LIST counted is the pass's. Many: a LIST.
    templates = [
        {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": f"t{i}", "namespace": ns},
            "template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}},
        }
        for i in range(5)
    ]
    write_app(repo_root, app, [namespace, *templates], placement={"clusters": ["us-west-1"]})

    def counted(apply: bool) -> tuple[list[TargetOutcome], Counter[tuple[str, str, str]]]:
        before = request_counts(server, devenv.token, devenv.ca)
        outcomes = run(repo_root, kubeconfig, app, apply=apply)
        return outcomes, delta(request_counts(server, devenv.token, devenv.ca), before)

    first, sent = counted(apply=True)
    assert changes(first) == {
        (app, "us-west-1"): [(f"Namespace/{ns}", "create")]
        + [(f"PodTemplate/{ns}/t{i}", "create") for i in range(5)]
    }
    assert all(o.result is not None and o.result.ok for o in first), [o.result for o in first]
    assert sent[("LIST", "", "podtemplates")] == 0, sent  # the namespace did not exist yet
    again, sent = counted(apply=False)
    assert changes(again) == {(app, "us-west-1"): []}
    assert sent[("LIST", "", "podtemplates")] >= 1, sent  # it exists now: read
