"""Object identity, scope and apply order."""

from __future__ import annotations

import pytest

from reconciler.objects import ObjectRef, is_cluster_scoped, kind_rank, sorted_for_apply


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
