"""What a plan reads of live state: from the cluster's watches when it keeps them, else a LIST
per kind and namespace with many wanted objects and a GET each for a few."""

from __future__ import annotations

from reconciler.kube.client import ClusterClient
from reconciler.kube.served import Resource
from reconciler.objects import Manifest, ObjectRef
from reconciler.sync.isolated import bounded_map
from reconciler.sync.liveview import watched

_FEW = 3  # up to this many objects of one kind in one namespace: GET each, not LIST all


Scope = tuple[Resource, str]  # a kind in one namespace ("" for cluster-scoped kinds)


def read_live(
    cluster: ClusterClient, wanted: list[tuple[Resource, ObjectRef]]
) -> tuple[dict[ObjectRef, Manifest], set[Scope]]:
    """Live objects: from the cluster's watches when it keeps them, else one LIST per
    (kind, namespace) with many objects and GETs for a few.

    A watched scope holds the objects labelled as some app's: a wanted object missing from it
    is read with a GET (it may exist unlabelled, or be too fresh for the watch). Read by
    requests, the Namespaces wanted come first: nothing is read in one that does not exist (it
    holds nothing yet; a first apply creates it). Watched, every scope's watch starts at once.
    Also returns the scopes read whole (the unmanaged scan reuses them; a namespace that does
    not exist counts as read: empty).
    """
    groups: dict[Scope, list[ObjectRef]] = {}
    for resource, ref in wanted:
        groups.setdefault((resource, ref.namespace), []).append(ref)
    ordered = sorted(groups.items(), key=lambda kv: scope_key(kv[0]))
    live: dict[ObjectRef, Manifest] = {}
    listed: set[Scope] = set()
    if cluster.live is not None:
        _read_scopes(cluster, ordered, live, listed)
        return live, listed
    spaces = [(scope, refs) for scope, refs in ordered if _is_namespace(scope[0])]
    _read_scopes(cluster, spaces, live, listed)
    absent = {ref.name for _, refs in spaces for ref in refs if ref not in live}
    rest = []
    for scope, refs in ordered:
        if _is_namespace(scope[0]):
            continue
        if scope[1] in absent:
            listed.add(scope)
        else:
            rest.append((scope, refs))
    _read_scopes(cluster, rest, live, listed)
    return live, listed


def _is_namespace(resource: Resource) -> bool:
    return resource.kind == "Namespace" and not resource.group


def _read_scopes(
    cluster: ClusterClient,
    ordered: list[tuple[Scope, list[ObjectRef]]],
    live: dict[ObjectRef, Manifest],
    listed: set[Scope],
) -> None:
    """Read the wanted objects of ``ordered`` scopes into ``live`` (see :func:`read_live`)."""
    unwatched: list[tuple[Scope, list[ObjectRef]]] = []
    views = watched(cluster, [scope for scope, _ in ordered])
    for (scope, refs), seen in zip(ordered, views, strict=True):
        if seen is None:
            unwatched.append((scope, refs))
            continue
        if scope[1]:  # cluster-wide scopes hold only this entry's objects: not read whole
            listed.add(scope)
        for item in seen:
            live[ObjectRef.of(item)] = item
    work: list[tuple[Scope, ObjectRef | None]] = []
    polled = {scope for scope, _ in unwatched}
    for scope, refs in ordered:
        if scope not in polled:
            work += [(scope, ref) for ref in refs if ref not in live]
    for scope, refs in unwatched:
        if len(refs) > _FEW:
            listed.add(scope)
            work.append((scope, None))
        else:
            work += [(scope, ref) for ref in refs]

    def read(item: tuple[Scope, ObjectRef | None]) -> list[Manifest]:
        (resource, namespace), ref = item
        if ref is None:
            return cluster.list_objects(resource, namespace)
        found = cluster.get(resource, namespace, ref.name)
        return [found] if found is not None else []

    for items in bounded_map(read, work):
        for item in items:
            live[ObjectRef.of(item)] = item


def scope_key(scope: Scope) -> tuple[str, str, str]:
    return (scope[0].group, scope[0].kind, scope[1])
