"""Who owns a live object: the app, the Cluster entry and the reconciler instance that applied it.

Every applied object carries ``reconciler.io/app`` (from the render), ``reconciler.io/cluster``
(the Cluster entry in the repo) and ``reconciler.io/instance``. Two Cluster entries that reach
the same API server (namespace or vcluster tenancy, or a mistake) then never take, prune or
report each other's objects: an object one of them applied is a conflict for the other.
Objects applied before these labels existed carry only the app label: they are adopted by the
first target of that app that reaches them (pure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler import APP_LABEL
from reconciler.objects import Manifest
from reconciler.sync.model import CLUSTER_LABEL, INSTANCE_LABEL


@dataclass(frozen=True)
class Owner:
    """The target a plan is for: app, Cluster entry, reconciler instance."""

    app: str
    cluster: str
    instance: str


def stamp(obj: Manifest, cluster: str, instance: str) -> Manifest:
    """A copy of a rendered object labelled with the Cluster entry and instance applying it."""
    meta = dict(obj.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    labels[CLUSTER_LABEL] = cluster
    labels[INSTANCE_LABEL] = instance
    meta["labels"] = labels
    return {**obj, "metadata": meta}


def labels_of(live: Mapping[str, Any]) -> Mapping[str, Any]:
    return (live.get("metadata") or {}).get("labels") or {}


def claimed_elsewhere(live: Mapping[str, Any], app: str, cluster: str, instance: str) -> str | None:
    """Why a live object is not this target's (another app, Cluster entry or instance), or None.

    An object without the cluster or instance label is a pre-label one of this app: ours.
    """
    labels = labels_of(live)
    owner = labels.get(APP_LABEL)
    if owner is not None and owner != app:
        return f"belongs to app {owner} (labelled {APP_LABEL}={owner})"
    other_instance = labels.get(INSTANCE_LABEL)
    if other_instance is not None and other_instance != instance:
        return f"belongs to reconciler instance {other_instance} (labelled {INSTANCE_LABEL})"
    other_cluster = labels.get(CLUSTER_LABEL)
    if other_cluster is not None and other_cluster != cluster:
        return (
            f"applied by cluster entry {other_cluster} of app {app} (labelled "
            f"{CLUSTER_LABEL}={other_cluster}): two Cluster entries reach the same API server"
        )
    return None


def owned_by(live: Mapping[str, Any], owner: Owner) -> bool:
    """Labelled as this app's, and not claimed by another Cluster entry or instance."""
    return labels_of(live).get(APP_LABEL) == owner.app and (
        claimed_elsewhere(live, owner.app, owner.cluster, owner.instance) is None
    )
