"""What a prune may delete, against real kube-apiservers: Namespaces and CRDs that still hold
objects that stay, objects that move between apps, a failed first apply stage, inventory
entries under a version the cluster no longer serves.

These clusters run no kube-controller-manager: a deleted Namespace stays Terminating with its
content. The tests assert on what the plan decides and on what the pass itself deleted.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.config.load import load_repo
from reconciler.engine import TargetOutcome, reconcile
from reconciler.kube.pool import Clients
from reconciler.render import render_all
from reconciler.sync.model import Action
from tests.configrepo import configmap, crd_and_resource, unique, write_app, write_clusters

WEST = "us-west-1"
ONLY_WEST = {"clusters": [WEST]}


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write_clusters(root)
    return root


def run(root: Path, kubeconfig: Path, instance: str, *, apply: bool) -> list[TargetOutcome]:
    repo = load_repo(root)
    clients = Clients(str(kubeconfig), timeout=10.0)
    try:
        return reconcile(repo, render_all(repo), clients, "rev", apply=apply, instance=instance)
    finally:
        clients.close()


def on_west(outcomes: list[TargetOutcome]) -> dict[str, TargetOutcome]:
    return {o.app: o for o in outcomes if o.cluster == WEST}


def pending(outcome: TargetOutcome) -> list[tuple[str, str, str]]:
    """(object, action, message) of everything that is not unchanged."""
    assert outcome.error is None, outcome.error
    assert outcome.plan is not None
    return [
        (str(c.ref), c.action.value, c.message)
        for c in outcome.plan.changes
        if c.action is not Action.UNCHANGED
    ]


def namespace_doc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def is_deleted_namespace(core: client.CoreV1Api, name: str) -> bool:
    try:
        return core.read_namespace(name).metadata.deletion_timestamp is not None
    except ApiException as err:
        if err.status == 404:
            return True
        raise


def test_a_namespace_holding_a_kept_object_or_another_apps_object_is_not_pruned(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    mine = unique("hold")
    home, kept_ns, shared_ns = unique("ns"), unique("ns"), unique("ns")
    keep = configmap("keep", {"k": "1"}, namespace=kept_ns)
    keep["metadata"]["annotations"] = {"reconciler.io/prune": "disabled"}
    write_app(
        repo_root,
        mine,
        [
            namespace_doc(kept_ns),
            namespace_doc(shared_ns),
            keep,
            configmap("x", {"k": "1"}, namespace=kept_ns),
            configmap("x", {"k": "1"}, namespace=shared_ns),
            configmap("stay", {"k": "1"}),
        ],
        namespace=home,
        placement=ONLY_WEST,
    )
    first = on_west(run(repo_root, kubeconfig, mine, apply=True))
    assert all(o.result is not None and o.result.ok for o in first.values())
    core = client.CoreV1Api(api_clients[WEST])
    theirs = configmap("theirs", {"k": "1"}, namespace=shared_ns)  # another reconciler's
    theirs["metadata"]["labels"] = {
        "reconciler.io/app": "web",
        "reconciler.io/instance": "elsewhere",
    }
    core.create_namespaced_config_map(shared_ns, theirs)
    write_app(repo_root, mine, [configmap("stay", {"k": "1"})], namespace=home, placement=ONLY_WEST)

    planned = on_west(run(repo_root, kubeconfig, mine, apply=False))
    assert sorted(pending(planned[mine])) == sorted(
        [
            (
                f"Namespace/{kept_ns}",
                "keep",
                f"holds ConfigMap/{kept_ns}/keep, which this app keeps; not pruned",
            ),
            (
                f"Namespace/{shared_ns}",
                "keep",
                f"holds ConfigMap/{shared_ns}/theirs of app web; not pruned",
            ),
            (f"ConfigMap/{kept_ns}/keep", "keep", "annotated prune: disabled"),
            (f"ConfigMap/{kept_ns}/x", "prune", ""),
            (f"ConfigMap/{shared_ns}/x", "prune", ""),
        ]
    )
    applied = on_west(run(repo_root, kubeconfig, mine, apply=True))[mine].result
    assert applied is not None
    assert sorted(str(r) for r in applied.pruned) == sorted(
        [f"ConfigMap/{kept_ns}/x", f"ConfigMap/{shared_ns}/x"]
    )
    assert not is_deleted_namespace(core, kept_ns)
    assert not is_deleted_namespace(core, shared_ns)
    assert core.read_namespaced_config_map("keep", kept_ns).data == {"k": "1"}
    assert core.read_namespaced_config_map("theirs", shared_ns).data == {"k": "1"}


def test_a_departed_apps_namespace_is_not_pruned_while_another_app_has_objects_in_it(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    base = unique("gone")
    leaving, staying = f"{base}-a", f"{base}-b"
    home, shared = unique("ns"), unique("ns")
    write_app(
        repo_root,
        leaving,
        [namespace_doc(shared), configmap("a", {"k": "1"}, namespace=shared)],
        namespace=home,
        placement=ONLY_WEST,
    )
    write_app(
        repo_root,
        staying,
        [configmap("b", {"k": "1"}, namespace=shared)],
        namespace=home,
        placement=ONLY_WEST,
    )
    run(repo_root, kubeconfig, base, apply=True)
    shutil.rmtree(repo_root / "apps" / leaving)  # the app leaves the repo: it departs

    outcome = on_west(run(repo_root, kubeconfig, base, apply=True))[leaving]
    assert outcome.departed and outcome.result is not None
    assert pending(outcome) == [
        (
            f"Namespace/{shared}",
            "keep",
            f"holds ConfigMap/{shared}/b, which app {staying} wants; not pruned",
        ),
        (f"ConfigMap/{shared}/a", "prune", ""),
    ]
    assert [str(r) for r in outcome.result.pruned] == [f"ConfigMap/{shared}/a"]
    core = client.CoreV1Api(api_clients[WEST])
    assert not is_deleted_namespace(core, shared)
    assert core.read_namespaced_config_map("b", shared).data == {"k": "1"}


def test_a_namespace_another_app_moves_into_in_the_same_commit_is_not_pruned(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    base, home, shared = unique("into"), unique("ns"), unique("ns")
    leaving, arriving = f"{base}-1", f"{base}-2"  # the Namespace's app is planned first
    write_app(
        repo_root,
        leaving,
        [namespace_doc(shared), configmap("stay", {"k": "1"})],
        namespace=home,
        placement=ONLY_WEST,
    )
    write_app(
        repo_root, arriving, [configmap("b", {"k": "1"})], namespace=home, placement=ONLY_WEST
    )
    run(repo_root, kubeconfig, base, apply=True)
    # One commit: the Namespace leaves the first app's Git, the second app adds an object in it.
    write_app(
        repo_root, leaving, [configmap("stay", {"k": "1"})], namespace=home, placement=ONLY_WEST
    )
    write_app(
        repo_root,
        arriving,
        [configmap("b", {"k": "1"}), configmap("new", {"k": "1"}, namespace=shared)],
        namespace=home,
        placement=ONLY_WEST,
    )

    outcomes = on_west(run(repo_root, kubeconfig, base, apply=True))
    assert pending(outcomes[leaving]) == [
        (
            f"Namespace/{shared}",
            "keep",
            f"holds ConfigMap/{shared}/new, which app {arriving} wants; not pruned",
        )
    ]
    assert all(o.result is not None and o.result.ok for o in outcomes.values())
    core = client.CoreV1Api(api_clients[WEST])
    assert not is_deleted_namespace(core, shared)
    assert core.read_namespaced_config_map("new", shared).data == {"k": "1"}


def test_a_crd_is_not_pruned_while_git_or_another_app_still_has_objects_of_its_kind(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    base, ns = unique("crd"), unique("ns")
    same, owner, user = f"{base}-a", f"{base}-b", f"{base}-c"
    own_group, shared_group = f"{unique('g')}.example.com", f"{unique('g')}.example.com"
    own_crd, widget = crd_and_resource(own_group, "Widget", "w")
    shared_crd, gadget = crd_and_resource(shared_group, "Gadget", "g")
    foreign_crd, foreign = crd_and_resource(shared_group, "Doohickey", "d")
    write_app(
        repo_root, same, [own_crd, widget, configmap("c", {})], namespace=ns, placement=ONLY_WEST
    )
    write_app(
        repo_root,
        owner,
        [shared_crd, foreign_crd, configmap("d", {})],
        namespace=ns,
        placement=ONLY_WEST,
    )
    write_app(repo_root, user, [gadget], namespace=ns, placement=ONLY_WEST)
    first = on_west(run(repo_root, kubeconfig, base, apply=True))
    assert all(o.result is not None and o.result.ok for o in first.values()), first
    custom = client.CustomObjectsApi(api_clients[WEST])
    foreign["metadata"]["labels"] = {  # another reconciler's
        "reconciler.io/app": "web",
        "reconciler.io/instance": "elsewhere",
    }
    custom.create_namespaced_custom_object(shared_group, "v1", ns, "doohickeys", foreign)
    # Both CRDs leave Git (say, to a platform team's install); the custom objects stay.
    write_app(repo_root, same, [widget, configmap("c", {})], namespace=ns, placement=ONLY_WEST)
    write_app(repo_root, owner, [configmap("d", {})], namespace=ns, placement=ONLY_WEST)

    outcomes = on_west(run(repo_root, kubeconfig, base, apply=True))
    own_name, shared_name = own_crd["metadata"]["name"], shared_crd["metadata"]["name"]
    foreign_name = foreign_crd["metadata"]["name"]
    crd_kind = "CustomResourceDefinition.apiextensions.k8s.io"
    assert pending(outcomes[same]) == [
        (
            f"{crd_kind}/{own_name}",
            "keep",
            f"serves the kind of Widget.{own_group}/{ns}/w in this app's Git; not pruned",
        )
    ]
    assert pending(outcomes[owner]) == [
        (
            f"{crd_kind}/{foreign_name}",
            "keep",
            f"serves the kind of Doohickey.{shared_group}/{ns}/d of app web; not pruned",
        ),
        (
            f"{crd_kind}/{shared_name}",
            "keep",
            f"serves the kind of Gadget.{shared_group}/{ns}/g, which app {user} wants; not pruned",
        ),
    ]
    assert all(o.result is not None and o.result.pruned == [] for o in outcomes.values())
    extensions = client.ApiextensionsV1Api(api_clients[WEST])
    for name in (own_name, shared_name, foreign_name):
        assert extensions.read_custom_resource_definition(name).metadata.deletion_timestamp is None
    assert custom.get_namespaced_custom_object(own_group, "v1", ns, "widgets", "w")
    assert custom.get_namespaced_custom_object(shared_group, "v1", ns, "gadgets", "g")


def test_objects_moved_between_apps_in_one_commit_are_handed_over_not_deleted(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    base, ns = unique("move"), unique("ns")
    first_app, second_app = f"{base}-1", f"{base}-2"  # planned in this order
    there = namespace_doc(unique("ns"))
    write_app(
        repo_root,
        first_app,
        [configmap("one", {"k": "1"}), configmap("down", {"k": "1"}), there],
        namespace=ns,
        placement=ONLY_WEST,
    )
    write_app(
        repo_root,
        second_app,
        [configmap("two", {"k": "1"}), configmap("up", {"k": "1"})],
        namespace=ns,
        placement=ONLY_WEST,
    )
    run(repo_root, kubeconfig, base, apply=True)
    core = client.CoreV1Api(api_clients[WEST])
    uids = {n: core.read_namespaced_config_map(n, ns).metadata.uid for n in ("down", "up")}
    there_uid = core.read_namespace(there["metadata"]["name"]).metadata.uid
    # One commit: "down" and the Namespace move from the first app to the second, "up" the
    # other way.
    write_app(
        repo_root,
        first_app,
        [configmap("one", {"k": "1"}), configmap("up", {"k": "1"})],
        namespace=ns,
        placement=ONLY_WEST,
    )
    write_app(
        repo_root,
        second_app,
        [configmap("two", {"k": "1"}), configmap("down", {"k": "1"}), there],
        namespace=ns,
        placement=ONLY_WEST,
    )

    planned = on_west(run(repo_root, kubeconfig, base, apply=False))
    there_ref = f"Namespace/{there['metadata']['name']}"
    assert pending(planned[first_app]) == [
        (there_ref, "keep", f"moved to app {second_app}: handed over, not pruned"),
        (f"ConfigMap/{ns}/down", "keep", f"moved to app {second_app}: handed over, not pruned"),
        (f"ConfigMap/{ns}/up", "update", f"moved here from app {second_app}: taken over"),
    ]
    assert pending(planned[second_app]) == [
        (there_ref, "update", f"moved here from app {first_app}: taken over"),
        (f"ConfigMap/{ns}/down", "update", f"moved here from app {first_app}: taken over"),
        (f"ConfigMap/{ns}/up", "keep", f"moved to app {first_app}: handed over, not pruned"),
    ]
    applied = on_west(run(repo_root, kubeconfig, base, apply=True))
    for outcome in applied.values():
        assert outcome.result is not None and outcome.result.ok, outcome.result
        assert outcome.result.pruned == []
    for name, app in (("down", second_app), ("up", first_app)):
        live = core.read_namespaced_config_map(name, ns)
        assert live.metadata.uid == uids[name]  # never deleted and re-created
        assert live.metadata.labels["reconciler.io/app"] == app
    live_ns = core.read_namespace(there["metadata"]["name"])
    assert live_ns.metadata.uid == there_uid and live_ns.metadata.deletion_timestamp is None
    assert live_ns.metadata.labels["reconciler.io/app"] == second_app
    again = on_west(run(repo_root, kubeconfig, base, apply=False))
    assert pending(again[first_app]) == [] and pending(again[second_app]) == []


def test_what_a_failed_first_stage_created_is_in_the_inventory_and_pruned_later(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns, created = unique("stage"), unique("ns"), unique("ns")
    write_app(repo_root, app, [configmap("x", {"k": "1"})], namespace=ns, placement=ONLY_WEST)
    run(repo_root, kubeconfig, app, apply=True)
    bad_crd, _ = crd_and_resource(f"{unique('g')}.example.com", "Thing", "t")
    bad_crd["metadata"]["name"] = "not-plural-dot-group.example.com"  # refused by the server
    write_app(
        repo_root,
        app,
        [configmap("x", {"k": "1"}), namespace_doc(created), bad_crd],
        namespace=ns,
        placement=ONLY_WEST,
    )

    failed = on_west(run(repo_root, kubeconfig, app, apply=True))[app].result
    assert failed is not None
    assert [str(r) for r in failed.created] == [f"Namespace/{created}"]
    assert [str(r) for r, _ in failed.failed] == [
        "CustomResourceDefinition.apiextensions.k8s.io/not-plural-dot-group.example.com"
    ]
    # The commit is reverted: the Namespace it created is pruned (it was listed).
    write_app(repo_root, app, [configmap("x", {"k": "1"})], namespace=ns, placement=ONLY_WEST)
    reverted = on_west(run(repo_root, kubeconfig, app, apply=True))[app]
    assert pending(reverted) == [(f"Namespace/{created}", "prune", "")]
    assert reverted.result is not None
    assert [str(r) for r in reverted.result.pruned] == [f"Namespace/{created}"]
    assert is_deleted_namespace(client.CoreV1Api(api_clients[WEST]), created)


def test_a_crd_that_never_gets_established_is_reported_and_still_listed_for_pruning(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns, group = unique("established"), unique("ns"), f"{unique('g')}.example.com"
    taken, _ = crd_and_resource(group, "Thing", "unused")
    extensions = client.ApiextensionsV1Api(api_clients[WEST])
    extensions.create_custom_resource_definition(taken)  # installed outside the app
    # Another plural of the same group and kind: its names are never accepted.
    clash, _ = crd_and_resource(group, "Thing", "unused")
    clash["spec"]["names"].update(plural="otherthings", singular="otherthing")
    clash["metadata"]["name"] = f"otherthings.{group}"
    write_app(repo_root, app, [configmap("x", {"k": "1"})], namespace=ns, placement=ONLY_WEST)
    run(repo_root, kubeconfig, app, apply=True)
    write_app(
        repo_root, app, [configmap("x", {"k": "1"}), clash], namespace=ns, placement=ONLY_WEST
    )

    outcome = on_west(run(repo_root, kubeconfig, app, apply=True))[app]
    clash_ref = f"CustomResourceDefinition.apiextensions.k8s.io/otherthings.{group}"
    assert outcome.error is None and outcome.result is not None
    assert [str(r) for r in outcome.result.created] == [clash_ref]
    assert [(str(r), why) for r, why in outcome.result.failed] == [
        (clash_ref, f"CRD otherthings.{group} not Established after 30s")
    ]
    write_app(repo_root, app, [configmap("x", {"k": "1"})], namespace=ns, placement=ONLY_WEST)
    reverted = on_west(run(repo_root, kubeconfig, app, apply=True))[app]
    assert pending(reverted) == [(clash_ref, "prune", "")]


def test_an_object_under_a_version_no_longer_served_is_pruned_through_a_served_one(
    repo_root: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns, group = unique("versions"), unique("ns"), f"{unique('g')}.example.com"
    crd, _ = crd_and_resource(group, "Widget", "unused")
    v1 = crd["spec"]["versions"][0]
    crd["spec"]["versions"] = [{**v1, "name": "v1beta1", "storage": False}, v1]
    extensions = client.ApiextensionsV1Api(api_clients[WEST])
    extensions.create_custom_resource_definition(crd)  # installed outside the app
    custom = client.CustomObjectsApi(api_clients[WEST])
    _wait(lambda: custom.list_namespaced_custom_object(group, "v1beta1", "default", "widgets"))
    widget = {
        "apiVersion": f"{group}/v1beta1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"color": "red"},
    }
    write_app(
        repo_root, app, [configmap("x", {"k": "1"}), widget], namespace=ns, placement=ONLY_WEST
    )
    first = on_west(run(repo_root, kubeconfig, app, apply=True))[app]
    assert first.result is not None and first.result.ok, first.result
    # The CRD stops serving v1beta1; the object is still there (stored as v1).
    versions = [{**v, "served": v["name"] == "v1"} for v in crd["spec"]["versions"]]
    extensions.patch_custom_resource_definition(
        crd["metadata"]["name"], {"spec": {"versions": versions}}
    )
    _wait_gone(lambda: custom.list_namespaced_custom_object(group, "v1beta1", ns, "widgets"))
    write_app(repo_root, app, [configmap("x", {"k": "1"})], namespace=ns, placement=ONLY_WEST)

    outcome = on_west(run(repo_root, kubeconfig, app, apply=True))[app]
    assert pending(outcome) == [(f"Widget.{group}/{ns}/w", "prune", "")]
    assert outcome.result is not None
    assert [str(r) for r in outcome.result.pruned] == [f"Widget.{group}/{ns}/w"]
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(group, "v1", ns, "widgets", "w")
    assert gone.value.status == 404


def _wait(read: Any) -> None:
    """Until ``read`` stops failing (a new CRD's kinds are served a moment after it exists)."""
    for _ in range(100):
        try:
            read()
            return
        except ApiException:
            time.sleep(0.1)
    read()


def _wait_gone(read: Any) -> None:
    """Until ``read`` answers 404 (a version a CRD stopped serving)."""
    for _ in range(100):
        try:
            read()
        except ApiException as err:
            if err.status == 404:
                return
            raise
        time.sleep(0.1)
    raise AssertionError("still served")
