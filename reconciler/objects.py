"""Identity and ordering of Kubernetes objects (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]

# Built-in cluster-scoped kinds (by group, kind). A CRD in the same render declares its own scope.
CLUSTER_SCOPED: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("", "ComponentStatus"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("storage.k8s.io", "VolumeAttributesClass"),
        ("storagemigration.k8s.io", "StorageVersionMigration"),
        ("internal.apiserver.k8s.io", "StorageVersion"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("node.k8s.io", "RuntimeClass"),
        ("resource.k8s.io", "DeviceClass"),
        ("resource.k8s.io", "ResourceSlice"),
        ("resource.k8s.io", "DeviceTaintRule"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("certificates.k8s.io", "ClusterTrustBundle"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    }
)

# Apply order: things others depend on first. Prune walks it in reverse.
_KIND_ORDER = [
    "CustomResourceDefinition",
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "PriorityClass",
    "StorageClass",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "IngressClass",
    "Ingress",
    "NetworkPolicy",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
]
_RANK = {kind: i for i, kind in enumerate(_KIND_ORDER)}


def kind_rank(kind: str) -> int:
    """Apply rank of a kind; unknown kinds (custom resources) go last."""
    return _RANK.get(kind, len(_KIND_ORDER))


def group_of(api_version: str) -> str:
    """``apps/v1`` -> ``apps``; ``v1`` -> ``""``."""
    return api_version.rpartition("/")[0]


def object_name(group: str, kind: str, namespace: str, name: str) -> str:
    """``Kind.group/namespace/name`` (see :meth:`ObjectRef.__str__`)."""
    kind = f"{kind}.{group}" if group else kind
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


# Built-in groups without a dot: their objects were named without the group before
# (``Deployment/web/web``); the store renames what it kept (store/migrations.py, 10).
UNDOTTED_GROUP_KINDS: dict[str, tuple[str, ...]] = {
    "apps": ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ControllerRevision"),
    "batch": ("Job", "CronJob"),
    "autoscaling": ("HorizontalPodAutoscaler",),
    "policy": ("PodDisruptionBudget",),
}


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Identity of an object: group, kind, namespace ("" when cluster-scoped), name."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> ObjectRef:
        meta = manifest.get("metadata") or {}
        return cls(
            group=group_of(str(manifest.get("apiVersion", ""))),
            kind=str(manifest.get("kind", "")),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name", "")),
        )

    def __str__(self) -> str:
        """The one way an object is named in every output (text, tables, Markdown, JSON
        ``object`` fields, logs, the web page): ``Kind.group/namespace/name``, as kubectl's
        ``kind.group/name`` with the namespace added; the core group has no suffix
        (``ConfigMap/web/settings``); a cluster-scoped object has no namespace
        (``ClusterRole.rbac.authorization.k8s.io/viewer``)."""
        return object_name(self.group, self.kind, self.namespace, self.name)

    def sort_key(self) -> tuple[int, str, str, str, str]:
        return (kind_rank(self.kind), self.group, self.kind, self.namespace, self.name)


def is_cluster_scoped(group: str, kind: str, crd_scopes: Mapping[tuple[str, str], bool]) -> bool:
    """Whether (group, kind) is cluster-scoped: built-in table, then CRDs seen in the render."""
    if (group, kind) in CLUSTER_SCOPED:
        return True
    return crd_scopes.get((group, kind), False)


def sorted_for_apply(manifests: list[Manifest]) -> list[Manifest]:
    """Deterministic apply order: kind rank, then group, kind, namespace, name."""
    return sorted(manifests, key=lambda m: ObjectRef.of(m).sort_key())
