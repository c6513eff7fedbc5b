"""The unmanaged scan: objects labelled as this app's that neither Git nor the inventory holds,
each one finding with the manager and time that labelled it."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler import APP_LABEL, FIELD_MANAGER
from reconciler.diff import attribute, managers_other_than
from reconciler.errors import KubeError
from reconciler.fields import Drift, FieldChange
from reconciler.kube.client import ClusterClient
from reconciler.kube.served import Resource, UnknownKind
from reconciler.objects import Manifest, ObjectRef
from reconciler.sync.isolated import bounded_map
from reconciler.sync.liveview import watched
from reconciler.sync.model import Action, Change, InventoryEntry
from reconciler.sync.ownership import Owner, labels_of, owned_by
from reconciler.sync.reads import Scope, scope_key


def find_unmanaged(
    cluster: ClusterClient,
    owner: Owner,
    inventory: Mapping[ObjectRef, InventoryEntry],
    desired: list[tuple[Manifest, ObjectRef, Resource | None]],
    live: Mapping[ObjectRef, Manifest],
    listed: set[Scope],
) -> list[Change]:
    """Objects labelled as this app's that neither Git nor the inventory knows.

    Looked for in the scopes (kind × namespace) the app uses: in what the watches hold, else
    by a labelled LIST per scope, never one per pass across all namespaces (it costs the API
    server a scan of every object of the kind; a watch lists across namespaces once).
    """
    scopes: set[Scope] = {(r, ref.namespace) for _, ref, r in desired if r is not None}
    for entry in inventory.values():
        try:
            scopes.add((cluster.resource(entry.api_version, entry.ref.kind), entry.ref.namespace))
        except UnknownKind:
            continue
    known = {ref for _, ref, _ in desired} | set(inventory)
    selector = f"{APP_LABEL}={owner.app}"

    def labelled(scope: Scope) -> list[Manifest]:
        resource, namespace = scope
        if scope in listed:  # already listed whole for the plan: its kind in its namespace
            wanted = (resource.group, resource.kind, namespace)
            return [o for ref, o in live.items() if (ref.group, ref.kind, ref.namespace) == wanted]
        seen = watched(cluster, [scope])[0] if namespace else None
        if seen is not None:
            return [o for o in seen if labels_of(o).get(APP_LABEL) == owner.app]
        try:
            return cluster.list_objects(resource, namespace, label_selector=selector)
        except KubeError as err:
            if err.status in (401, 403):  # RBAC narrower than the app: a best-effort check
                return []
            raise

    found = []
    ordered = sorted(scopes, key=scope_key)
    for (resource, _), items in zip(ordered, bounded_map(labelled, ordered), strict=True):
        for item in items:
            ref = ObjectRef.of(item)
            if ref not in known and owned_by(item, owner):
                found.append(
                    Change(
                        ref,
                        Action.KEEP,
                        None,
                        resource.api_version,
                        fields=_unmanaged_fields(item, owner.app),
                        drift=Drift.UNMANAGED,
                        managers=managers_other_than(item, FIELD_MANAGER),
                        message=f"labelled {selector} but not in Git",
                    )
                )
    return found


def _unmanaged_fields(live: Manifest, app: str) -> list[FieldChange]:
    """The label that makes an object Git does not hold ours, with who set it and when."""
    label = FieldChange(f"metadata.labels[{APP_LABEL}]", git=None, live=app)
    return attribute([label], live, FIELD_MANAGER)
