"""The inventory ConfigMap per app and Cluster entry: what we applied there, so it can be pruned.

``reconciler-system/inventory.<instance>.<app>.<cluster>``, labelled with app, instance and
Cluster entry, so two entries reaching one API server keep separate lists. An inventory from
before the cluster key (``inventory.<instance>.<app>``, no cluster label) is read as this
entry's and rewritten under the new name by the next apply: nothing is pruned or re-created.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.errors import KubeError
from reconciler.kube.client import ClusterClient
from reconciler.objects import Manifest, ObjectRef
from reconciler.sync.model import (
    CLUSTER_LABEL,
    DEFAULT_INSTANCE,
    INSTANCE_LABEL,
    INVENTORY_LABEL,
    SYSTEM_NAMESPACE,
    InventoryEntry,
)


def inventory_name(app: str, instance: str, cluster: str) -> str:
    """``inventory.<instance>.<app>.<cluster>``: instance and app hold no dots, so names never
    clash (a cluster name may hold dots: it is the rest)."""
    return f"inventory.{instance}.{app}.{cluster}"


def legacy_inventory_name(app: str, instance: str) -> str:
    """The name before inventories were kept per Cluster entry."""
    return f"inventory.{instance}.{app}"


@dataclass(frozen=True)
class Inventory:
    entries: dict[ObjectRef, InventoryEntry]
    revision: str | None
    legacy: bool = False  # found under the old name


def read_inventory(cluster: ClusterClient, app: str, instance: str = DEFAULT_INSTANCE) -> Inventory:
    """Objects this app applied through this Cluster entry, and the revision that wrote them."""
    configmaps = cluster.resource("v1", "ConfigMap")
    watched = {str(item["metadata"]["name"]): item for item in _watched(cluster, instance) or []}

    def read(name: str) -> Manifest | None:
        # Not in the watch (none there, or one too fresh for it): asked, so no write of
        # another process is missed and nothing is forgotten.
        return watched.get(name) or cluster.get(configmaps, SYSTEM_NAMESPACE, name)

    name = inventory_name(app, instance, cluster.name)
    live = read(name)
    legacy = False
    if live is None:
        name = legacy_inventory_name(app, instance)
        live = read(name)
        labels = ((live or {}).get("metadata") or {}).get("labels") or {}
        if live is None or labels.get(CLUSTER_LABEL) not in (None, cluster.name):
            return Inventory({}, None)
        legacy = True
    data = live.get("data") or {}
    entries = {}
    try:
        for raw in json.loads(data.get("objects", "[]")):
            ref = ObjectRef(raw["group"], raw["kind"], raw["namespace"], raw["name"])
            entries[ref] = InventoryEntry(raw["apiVersion"], ref, raw.get("hash", ""))
    except (ValueError, KeyError, TypeError) as err:
        raise KubeError(
            f"inventory ConfigMap {SYSTEM_NAMESPACE}/{name} is corrupt "
            f"({err!r}); fix or delete it (deleting it forgets what to prune)",
            cluster=cluster.name,
        ) from err
    return Inventory(entries, data.get("revision"), legacy)


def list_inventories(cluster: ClusterClient, instance: str = DEFAULT_INSTANCE) -> list[str]:
    """Apps of this instance with an inventory of this Cluster entry (or a pre-cluster-key one)
    on the cluster."""
    configmaps = cluster.resource("v1", "ConfigMap")
    watched = _watched(cluster, instance)
    if watched is not None:
        items = watched
    else:
        selector = f"{INVENTORY_LABEL},{INSTANCE_LABEL}={instance}"
        items = cluster.list_objects(configmaps, SYSTEM_NAMESPACE, label_selector=selector)
    apps = set()
    for item in items:
        labels = item["metadata"]["labels"]
        if labels.get(CLUSTER_LABEL, cluster.name) == cluster.name:
            apps.add(str(labels[INVENTORY_LABEL]))
    return sorted(apps)


def _watched(cluster: ClusterClient, instance: str) -> list[Manifest] | None:
    """This instance's inventories of this Cluster entry (and pre-cluster-key ones) as the
    watches see them, or None when not watched. Changes are not reported: they are ours."""
    configmaps = cluster.resource("v1", "ConfigMap")
    selectors = [
        f"{INVENTORY_LABEL},{INSTANCE_LABEL}={instance},{which}"
        for which in (f"{CLUSTER_LABEL}={cluster.name}", f"!{CLUSTER_LABEL}")
    ]
    views = cluster.cached([(configmaps, SYSTEM_NAMESPACE, s) for s in selectors], notify=False)
    found: list[Manifest] = []
    for items in views:
        if items is None:
            return None
        found += items
    return found


def inventory_manifest(
    app: str, revision: str, instance: str, cluster: str, entries: Iterable[InventoryEntry]
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
            "name": inventory_name(app, instance, cluster),
            "namespace": SYSTEM_NAMESPACE,
            "labels": {INVENTORY_LABEL: app, INSTANCE_LABEL: instance, CLUSTER_LABEL: cluster},
        },
        "data": {
            "app": app,
            "cluster": cluster,
            "revision": revision,
            "objects": json.dumps(objects, indent=1),
        },
    }
