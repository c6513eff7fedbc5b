"""What keeps a Namespace or a CRD from being pruned: the objects that would go with it.

The API server deletes everything in a deleted Namespace and every object of a deleted CRD's
kinds. So neither is pruned while it holds an object that stays: one this app's Git still has,
one this app keeps (``reconciler.io/prune: disabled``, relabelled, ...), or any live object
labelled ``reconciler.io/app`` (by any app, Cluster entry or instance) that the same pass does
not prune. The reconciler's own namespace is never pruned (it holds every inventory).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from typing import Any

from reconciler import APP_LABEL
from reconciler.errors import KubeError
from reconciler.kube.client import ClusterClient
from reconciler.kube.served import Resource
from reconciler.objects import Manifest, ObjectRef
from reconciler.sync.isolated import bounded_map
from reconciler.sync.model import SYSTEM_NAMESPACE


def is_holder(ref: ObjectRef) -> bool:
    """A Namespace or a CRD: deleting it deletes other objects."""
    if ref.kind == "Namespace" and not ref.group:
        return True
    return ref.kind == "CustomResourceDefinition" and ref.group == "apiextensions.k8s.io"


def crd_kind(crd: Mapping[str, Any]) -> tuple[str, str]:
    """(group, kind) a live CRD serves."""
    spec = crd.get("spec") or {}
    return str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", ""))


def held_by(holder: ObjectRef, crd: Mapping[str, Any] | None, ref: ObjectRef) -> bool:
    """Whether deleting ``holder`` (``crd``: its live object when it is a CRD) deletes ``ref``."""
    if holder.kind == "Namespace":
        return ref.namespace == holder.name
    return crd is not None and (ref.group, ref.kind) == crd_kind(crd)


def staying(items: Iterable[Manifest], pruned: Set[ObjectRef]) -> list[tuple[ObjectRef, str]]:
    """Live objects labelled as some app's that stay: not pruned by this pass, not already
    being deleted. (ref, app) each (pure)."""
    found = []
    for item in items:
        meta = item.get("metadata") or {}
        app = (meta.get("labels") or {}).get(APP_LABEL)
        ref = ObjectRef.of(item)
        if app is None or meta.get("deletionTimestamp") or ref in pruned:
            continue
        found.append((ref, str(app)))
    return sorted(found, key=lambda f: f[0].sort_key())


def kept_because(
    cluster: ClusterClient,
    holder: ObjectRef,
    live: Manifest,
    desired: Set[ObjectRef],
    kept: Set[ObjectRef],
    pruned: Set[ObjectRef],
    wanted: Mapping[ObjectRef, Set[str]] | None = None,
) -> str | None:
    """Why the Namespace or CRD ``holder`` (``live``) must not be pruned, or None.

    ``desired``: this app's objects in Git; ``kept``: what this app keeps of what left Git;
    ``pruned``: what this pass prunes; ``wanted``: what other apps want in this pass (maybe
    not created yet), with the apps that want it.
    """
    if holder.kind == "Namespace" and holder.name == SYSTEM_NAMESPACE:
        return "holds the reconciler's inventories; not pruned"
    crd = live if holder.kind == "CustomResourceDefinition" else None
    what = "holds" if crd is None else "serves the kind of"

    def inside(refs: Iterable[ObjectRef]) -> list[ObjectRef]:
        return sorted((r for r in refs if held_by(holder, crd, r)), key=lambda r: r.sort_key())

    in_git = inside(desired)
    if in_git:
        more = f" and {len(in_git) - 1} more" if len(in_git) > 1 else ""
        still = "still " if crd is None else ""
        return f"{still}{what} {in_git[0]}{more} in this app's Git; not pruned"
    held = inside(kept)
    if held:
        return f"{what} {held[0]}, which this app keeps; not pruned"
    others = inside(r for r, apps in (wanted or {}).items() if apps)
    if others:
        app = sorted((wanted or {})[others[0]])[0]
        return f"{what} {others[0]}, which app {app} wants; not pruned"
    try:
        found = _labelled(cluster, holder, crd, pruned)
    except KubeError as err:
        return f"could not check what it holds ({err.message}); not pruned"
    if found:
        ref, app = found[0]
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        return f"{what} {ref} of app {app}{more}; not pruned"
    return None


def _labelled(
    cluster: ClusterClient,
    holder: ObjectRef,
    crd: Mapping[str, Any] | None,
    pruned: Set[ObjectRef],
) -> list[tuple[ObjectRef, str]]:
    """Live objects labelled as some app's that deleting ``holder`` would delete and stay."""
    if crd is None:
        kinds: list[Resource] = cluster.listable_kinds(namespaced=True)
        namespace = holder.name
    else:
        served = cluster.served_kind(*crd_kind(crd))
        plural = ((crd.get("spec") or {}).get("names") or {}).get("plural")
        # Served by this CRD (another CRD of the group may serve the kind when this one's names
        # were never accepted: then this one serves nothing).
        kinds = [served] if served is not None and served.plural == plural else []
        namespace = ""

    def read(resource: Resource) -> list[Manifest]:
        try:
            return cluster.list_objects(resource, namespace, label_selector=APP_LABEL)
        except KubeError as err:
            if err.status in (403, 404, 405):  # not ours to read, or not listable after all
                return []
            raise

    return staying((item for items in bounded_map(read, kinds) for item in items), pruned)
