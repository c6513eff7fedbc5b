"""Object identity, scope and apply order."""

from __future__ import annotations

import pytest

from reconciler.objects import (
    UNDOTTED_GROUP_KINDS,
    ObjectRef,
    is_cluster_scoped,
    kind_rank,
    object_name,
    sorted_for_apply,
)
from reconciler.store.migrations import MIGRATIONS


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("", "Namespace"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("storage.k8s.io", "VolumeAttributesClass"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("resource.k8s.io", "DeviceClass"),
        ("resource.k8s.io", "ResourceSlice"),
        ("certificates.k8s.io", "ClusterTrustBundle"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
        ("storagemigration.k8s.io", "StorageVersionMigration"),
    ],
)
def test_built_in_cluster_scoped_kinds(group: str, kind: str) -> None:
    assert is_cluster_scoped(group, kind, {})


@pytest.mark.parametrize(
    ("group", "kind"),
    [("", "ConfigMap"), ("resource.k8s.io", "ResourceClaim"), ("networking.k8s.io", "Ingress")],
)
def test_namespaced_kinds(group: str, kind: str) -> None:
    assert not is_cluster_scoped(group, kind, {})


def test_a_crd_in_the_render_declares_its_own_scope() -> None:
    assert is_cluster_scoped("example.com", "Widget", {("example.com", "Widget"): True})
    assert not is_cluster_scoped("example.com", "Gadget", {("example.com", "Gadget"): False})


def test_apply_order_puts_crds_and_namespaces_first_and_custom_kinds_last() -> None:
    objs = [
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
    ]
    assert [o["kind"] for o in sorted_for_apply(objs)] == ["Namespace", "Deployment", "Widget"]
    assert kind_rank("CustomResourceDefinition") < kind_rank("Namespace")
    assert str(ObjectRef.of(objs[0])) == "Widget.example.com/w"


@pytest.mark.parametrize(
    ("api_version", "kind", "namespace", "name"),
    [
        ("v1", "ConfigMap", "web", "ConfigMap/web/settings"),
        ("apps/v1", "Deployment", "web", "Deployment.apps/web/settings"),
        ("batch/v1", "CronJob", "web", "CronJob.batch/web/settings"),
        ("networking.k8s.io/v1", "Ingress", "web", "Ingress.networking.k8s.io/web/settings"),
        ("v1", "Namespace", "", "Namespace/settings"),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "",
            "ClusterRole.rbac.authorization.k8s.io/settings",
        ),
    ],
)
def test_an_object_is_named_kind_dot_group_slash_namespace_slash_name(
    api_version: str, kind: str, namespace: str, name: str
) -> None:
    metadata = {"name": "settings", **({"namespace": namespace} if namespace else {})}
    ref = ObjectRef.of({"apiVersion": api_version, "kind": kind, "metadata": metadata})
    assert str(ref) == name == object_name(ref.group, ref.kind, ref.namespace, ref.name)


def test_every_undotted_built_in_group_is_renamed_by_the_store() -> None:
    """The store's migration 10 renames names of exactly these kinds; a group without a dot
    added here needs a migration of its own."""
    migration = MIGRATIONS[9]
    for group, kinds in UNDOTTED_GROUP_KINDS.items():
        for kind in kinds:
            assert f"'{kind}.{group}' || substr(object, {len(kind) + 1})" in migration
            assert f"'\"{kind}/', '\"{kind}.{group}/'" in migration
