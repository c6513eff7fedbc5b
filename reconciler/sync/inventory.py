"""The per-app inventory ConfigMap on each cluster: what we applied there, so it can be pruned."""

from __future__ import annotations

import json
from collections.abc import Iterable

from reconciler.errors import KubeError
from reconciler.kube.client import ClusterClient
from reconciler.objects import Manifest, ObjectRef
from reconciler.sync.model import (
    DEFAULT_INSTANCE,
    INSTANCE_LABEL,
    INVENTORY_LABEL,
    SYSTEM_NAMESPACE,
    InventoryEntry,
)


def inventory_name(app: str, instance: str) -> str:
    """``inventory.<instance>.<app>``: dots cannot occur in either name, so names never clash."""
    return f"inventory.{instance}.{app}"


def read_inventory(
    cluster: ClusterClient, app: str, instance: str = DEFAULT_INSTANCE
) -> tuple[dict[ObjectRef, InventoryEntry], str | None]:
    """Objects this app applied on this cluster, and the revision that wrote the list."""
    configmaps = cluster.resource("v1", "ConfigMap")
    live = cluster.get(configmaps, SYSTEM_NAMESPACE, inventory_name(app, instance))
    if live is None:
        return {}, None
    data = live.get("data") or {}
    entries = {}
    try:
        for raw in json.loads(data.get("objects", "[]")):
            ref = ObjectRef(raw["group"], raw["kind"], raw["namespace"], raw["name"])
            entries[ref] = InventoryEntry(raw["apiVersion"], ref, raw.get("hash", ""))
    except (ValueError, KeyError, TypeError) as err:
        raise KubeError(
            f"inventory ConfigMap {SYSTEM_NAMESPACE}/{inventory_name(app, instance)} is corrupt "
            f"({err!r}); fix or delete it (deleting it forgets what to prune)",
            cluster=cluster.name,
        ) from err
    return entries, data.get("revision")


def list_inventories(cluster: ClusterClient, instance: str = DEFAULT_INSTANCE) -> list[str]:
    """Apps of this reconciler instance that have an inventory on this cluster."""
    configmaps = cluster.resource("v1", "ConfigMap")
    selector = f"{INVENTORY_LABEL},{INSTANCE_LABEL}={instance}"
    items = cluster.list_objects(configmaps, SYSTEM_NAMESPACE, label_selector=selector)
    return sorted(str(i["metadata"]["labels"][INVENTORY_LABEL]) for i in items)


def inventory_manifest(
    app: str, revision: str, instance: str, entries: Iterable[InventoryEntry]
) -> Manifest:
    objects = [
        {
            "apiVersion": e.api_version,
            "group": e.ref.group,
            "kind": e.ref.kind,
            "namespace": e.ref.namespace,
            "name": e.ref.name,
            "hash": e.hash,
        }
        for e in sorted(entries, key=lambda e: e.ref.sort_key())
    ]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": inventory_name(app, instance),
            "namespace": SYSTEM_NAMESPACE,
            "labels": {INVENTORY_LABEL: app, INSTANCE_LABEL: instance},
        },
        "data": {"app": app, "revision": revision, "objects": json.dumps(objects, indent=1)},
    }
