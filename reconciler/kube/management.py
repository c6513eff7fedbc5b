"""What replicas share on the management cluster, in the shard namespace: each member
cluster's published status and each app's shared rollout, as ConfigMaps.

``reconciler-status.<instance>.<cluster>`` is written by the replica owning the cluster (a
server-side apply: whoever owns it next writes the same object); ``reconciler-rollout.<instance>
.<app>`` is written by the replica driving the app's rollout and by ``reconciler rollout …`` —
every update is conditional on the resourceVersion read (a patch carrying it), so a writer
that read an older version gets :class:`StaleWrite` and nothing is overwritten. Objects are
labelled under ``shards.reconciler.io/`` (never ``reconciler.io/app``, which marks applied
objects). Nothing here logs; callers do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import KubeError
from reconciler.kube.client import ClusterClient
from reconciler.kube.served import Resource

CONFIGMAPS = Resource(
    group="", version="v1", kind="ConfigMap", plural="configmaps", namespaced=True
)
KIND_LABEL = "shards.reconciler.io/kind"  # status | rollout | replica
INSTANCE_LABEL = "shards.reconciler.io/instance"
CLUSTER_LABEL = "shards.reconciler.io/cluster"
REPLICA_LABEL = "shards.reconciler.io/replica"
APP_LABEL = "shards.reconciler.io/app"
HASH_ANNOTATION = "shards.reconciler.io/content-hash"


class StaleWrite(KubeError):
    """Someone wrote the object since it was read (or created it meanwhile): read it again."""


@dataclass(frozen=True)
class Versioned:
    """An object's ``data`` and labels with the resourceVersion they were read at."""

    name: str
    data: dict[str, str]
    labels: dict[str, str]
    annotations: dict[str, str]
    resource_version: str


def status_name(instance: str, cluster: str) -> str:
    return f"reconciler-status.{instance}.{cluster}"


def replica_name(instance: str, replica: str) -> str:
    return f"reconciler-replica.{instance}.{replica.lower()}"


def rollout_name(instance: str, app: str) -> str:
    return f"reconciler-rollout.{instance}.{app}"


class SharedObjects:
    """The shard namespace's shared objects of one reconciler instance."""

    def __init__(self, client: ClusterClient, namespace: str, instance: str) -> None:
        self.client = client
        self.namespace = namespace
        self.instance = instance

    # -- published status ---------------------------------------------------------------------

    def publish_status(
        self, cluster: str, replica: str, data: Mapping[str, str], digest: str
    ) -> Versioned:
        """Write ``cluster``'s status (one server-side apply; it creates or replaces)."""
        labels = {
            KIND_LABEL: "status",
            INSTANCE_LABEL: self.instance,
            CLUSTER_LABEL: cluster,
            REPLICA_LABEL: replica,
        }
        manifest = self._manifest(
            status_name(self.instance, cluster), labels, data, {HASH_ANNOTATION: digest}
        )
        return _versioned(self.client.apply(manifest, force=True))

    def statuses(self) -> list[Versioned]:
        """Every member cluster's published status (one list request)."""
        return self._list("status")

    def status(self, cluster: str) -> Versioned | None:
        found = self.client.get(CONFIGMAPS, self.namespace, status_name(self.instance, cluster))
        return _versioned(found) if found is not None else None

    def delete_status(self, cluster: str) -> bool:
        return self.client.delete(CONFIGMAPS, self.namespace, status_name(self.instance, cluster))

    # -- each replica's own state ---------------------------------------------------------------

    def publish_replica(self, replica: str, data: Mapping[str, str], digest: str) -> Versioned:
        """Write ``replica``'s own state (source, newest revision): one server-side apply."""
        labels = {KIND_LABEL: "replica", INSTANCE_LABEL: self.instance, REPLICA_LABEL: replica}
        manifest = self._manifest(
            replica_name(self.instance, replica), labels, data, {HASH_ANNOTATION: digest}
        )
        return _versioned(self.client.apply(manifest, force=True))

    def replicas(self) -> list[Versioned]:
        """Every replica's own state (one list request)."""
        return self._list("replica")

    # -- shared rollouts ----------------------------------------------------------------------

    def rollouts(self) -> list[Versioned]:
        """Every app's shared rollout (one list request)."""
        return self._list("rollout")

    def rollout(self, app: str) -> Versioned | None:
        found = self.client.get(CONFIGMAPS, self.namespace, rollout_name(self.instance, app))
        return _versioned(found) if found is not None else None

    def write_rollout(self, app: str, data: Mapping[str, str], read: Versioned | None) -> Versioned:
        """Replace the app's shared rollout with ``data`` if it is still as ``read`` (None: it
        did not exist). Raises :class:`StaleWrite` when it changed since."""
        name = rollout_name(self.instance, app)
        if read is None:
            if self.client.get(CONFIGMAPS, self.namespace, name) is not None:
                raise StaleWrite("created meanwhile", cluster=self.client.name, obj=name)
            labels = {KIND_LABEL: "rollout", INSTANCE_LABEL: self.instance, APP_LABEL: app}
            return _versioned(self.client.apply(self._manifest(name, labels, data, {})))
        operations: list[dict[str, Any]] = [
            # The patched object keeps this resourceVersion only if nobody wrote meanwhile:
            # the API server refuses it with 409 Conflict otherwise.
            {"op": "replace", "path": "/metadata/resourceVersion", "value": read.resource_version},
            {"op": "replace", "path": "/data", "value": dict(data)},
        ]
        try:
            patched = self.client.patch_json(CONFIGMAPS, self.namespace, name, operations)
        except KubeError as err:
            if err.status in (404, 409):
                raise StaleWrite(
                    "changed since it was read" if err.status == 409 else "deleted meanwhile",
                    cluster=self.client.name,
                    obj=name,
                ) from err
            raise
        return _versioned(patched)

    # -- helpers ------------------------------------------------------------------------------

    def _list(self, kind: str) -> list[Versioned]:
        selector = f"{KIND_LABEL}={kind},{INSTANCE_LABEL}={self.instance}"
        items = self.client.list_objects(CONFIGMAPS, self.namespace, label_selector=selector)
        return [_versioned(item) for item in items]

    def _manifest(
        self,
        name: str,
        labels: Mapping[str, str],
        data: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": dict(labels),
        }
        if annotations:
            metadata["annotations"] = dict(annotations)
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}


def _versioned(obj: Mapping[str, Any]) -> Versioned:
    metadata = obj.get("metadata") or {}
    return Versioned(
        name=str(metadata.get("name", "")),
        data={str(k): str(v) for k, v in (obj.get("data") or {}).items()},
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        resource_version=str(metadata.get("resourceVersion", "")),
    )
