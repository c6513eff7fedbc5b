"""Plan one app on one cluster: read live state, dry-run each desired object, find prunes, drift.

Plan, then act (STYLE.md): ``plan_target`` reads live state and server-side-apply dry-runs every
desired object; ``apply_plan`` writes only what the plan says changed, in stages (CRDs and
Namespaces first, then the rest in kind order), keeps the inventory, and prunes in reverse order.
Both return data; nothing here logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler import APP_LABEL, FIELD_MANAGER
from reconciler.config.schema import SyncPolicy
from reconciler.diff import (
    attribute,
    content_hash,
    field_changes,
    ignored_pointers,
    managers_other_than,
    normalize,
    take_from_live,
)
from reconciler.errors import ConflictError, KubeError
from reconciler.fields import FieldChange
from reconciler.kube.client import ClusterClient, Resource, UnknownKind
from reconciler.kube.content import content_version
from reconciler.masking import mask_changes
from reconciler.objects import Manifest, ObjectRef
from reconciler.sync.inventory import read_inventory
from reconciler.sync.isolated import bounded_map
from reconciler.sync.listrepair import REPAIR_MANAGER, ListRepair, plan_repair
from reconciler.sync.liveview import watched
from reconciler.sync.model import (
    CLUSTER_LABEL,
    DEFAULT_INSTANCE,
    PRUNE_ANNOTATION,
    Action,
    Change,
    Drift,
    InventoryEntry,
    SyncError,
    TargetPlan,
)
from reconciler.sync.ownership import Owner, claimed_elsewhere, labels_of, owned_by, stamp


def _crd_kinds(objects: Iterable[Manifest]) -> dict[tuple[str, str], str]:
    """(group, kind) served by each CRD in the render -> the CRD's name."""
    kinds = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind", "")
            kinds[(str(spec.get("group", "")), str(kind))] = str(obj["metadata"]["name"])
    return kinds


def plan_target(
    cluster: ClusterClient,
    app: str,
    objects: list[Manifest],
    policy: SyncPolicy,
    revision: str,
    instance: str = DEFAULT_INSTANCE,
) -> TargetPlan:
    """Compare desired objects with live state; read-only (dry-runs change nothing)."""
    read = read_inventory(cluster, app, instance)
    inventory, inventory_revision = read.entries, read.revision
    objects = [stamp(obj, cluster.name, instance) for obj in objects]
    if not objects and inventory and not policy.allow_empty:
        raise SyncError(
            f"app {app}, cluster {cluster.name}: renders to zero objects; refusing to prune "
            f"{len(inventory)} applied objects (set sync.allowEmpty: true to allow)"
        )
    crd_kinds = _crd_kinds(objects)

    desired: list[tuple[Manifest, ObjectRef, Resource | None]] = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        try:
            resource: Resource | None = cluster.resource(str(obj["apiVersion"]), ref.kind)
        except UnknownKind:
            if (ref.group, ref.kind) not in crd_kinds:
                raise KubeError(
                    f"{obj['apiVersion']} {ref.kind} is not served by the cluster and no CRD in "
                    "the app defines it",
                    cluster=cluster.name,
                    obj=str(ref),
                ) from None
            resource = None  # created after its CRD
        if resource is not None:
            obj, ref = scoped(cluster, obj, ref, resource)
        desired.append((obj, ref, resource))

    live, listed = read_live(cluster, [(r, ref) for _, ref, r in desired if r is not None])

    owner = Owner(app, cluster.name, instance)

    def plan_one(item: tuple[Manifest, ObjectRef, Resource | None]) -> Change:
        obj, ref, resource = item
        return _plan_object(cluster, owner, obj, ref, resource, live, inventory, policy)

    changes: list[Change] = bounded_map(plan_one, desired)
    desired_refs = {ref for _, ref, _ in desired}
    changes += _plan_prunes(cluster, owner, inventory, desired_refs, policy)
    changes += _find_unmanaged(cluster, owner, inventory, desired, live, listed)
    changes.sort(key=lambda c: c.ref.sort_key())
    return TargetPlan(
        app,
        cluster.name,
        revision,
        changes,
        inventory,
        inventory_revision,
        _next_inventory(desired, changes, inventory, policy.self_heal),
        instance,
        live,
        read.legacy,
    )


def scoped(
    cluster: ClusterClient, obj: Manifest, ref: ObjectRef, resource: Resource
) -> tuple[Manifest, ObjectRef]:
    """Make the object's namespace agree with what discovery says of its kind."""
    if not resource.namespaced and ref.namespace:
        # Render only knows built-in scopes; a cluster-scoped custom kind got a namespace.
        obj = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "namespace"}}
        return obj, ObjectRef(ref.group, ref.kind, "", ref.name)
    if resource.namespaced and not ref.namespace:
        raise KubeError(
            f"{ref.kind} is namespaced but has no namespace: set metadata.namespace, or "
            "spec.namespace in the app",
            cluster=cluster.name,
            obj=str(ref),
        )
    return obj, ref


def _next_inventory(
    desired: list[tuple[Manifest, ObjectRef, Resource | None]],
    changes: list[Change],
    inventory: Mapping[ObjectRef, InventoryEntry],
    self_heal: bool,
) -> dict[ObjectRef, InventoryEntry]:
    """What the inventory should list after apply: desired objects we may manage, and objects
    that left Git but still await (or are kept from) pruning. Conflicts are not ours.

    A drifted object selfHeal leaves alone keeps the content last applied: Git's changes to it
    are not applied yet, so they stay pending (applied once the drift is gone), never drift.
    """
    by_ref = {c.ref: c for c in changes}
    entries = {}
    for obj, ref, _ in desired:
        change = by_ref[ref]
        kept = change.drift is not None and not self_heal
        if change.action is Action.CONFLICT or kept:
            if ref in inventory:
                entries[ref] = inventory[ref]
            continue
        entries[ref] = InventoryEntry(str(obj["apiVersion"]), ref, content_hash(obj))
    for change in changes:
        if change.action is Action.PRUNE or change.tracked:
            entries[change.ref] = inventory[change.ref]
    return entries


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
    ordered = sorted(groups.items(), key=lambda kv: _scope_key(kv[0]))
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


def _scope_key(scope: Scope) -> tuple[str, str, str]:
    return (scope[0].group, scope[0].kind, scope[1])


def _plan_object(
    cluster: ClusterClient,
    owner: Owner,
    obj: Manifest,
    ref: ObjectRef,
    resource: Resource | None,
    live_objects: Mapping[ObjectRef, Manifest],
    inventory: Mapping[ObjectRef, InventoryEntry],
    policy: SyncPolicy,
) -> Change:
    api_version = str(obj["apiVersion"])
    applied = inventory.get(ref)
    unchanged_in_git = applied is not None and applied.hash == content_hash(obj)
    live = live_objects.get(ref)
    if resource is None or live is None:
        change = Change(ref, Action.CREATE, obj, api_version, after_crd=resource is None)
        if unchanged_in_git:
            change.drift = Drift.MISSING
            change.message = "applied earlier, now missing"
        return change

    claimed = claimed_elsewhere(live, owner.app, owner.cluster, owner.instance)
    other_app = labels_of(live).get(APP_LABEL) not in (None, owner.app)
    if claimed is not None and not (other_app and policy.force):
        # sync.force may take an object from another app, never from another Cluster entry
        # or instance: the two would take it back and forth on every pass.
        return Change(
            ref,
            Action.CONFLICT,
            obj,
            api_version,
            managers=managers_other_than(live, ""),
            message=claimed,
        )
    # Fields we ignore are sent with their live value: we neither fight their owner (an HPA)
    # nor, by leaving them out, make the server drop them back to defaults.
    pointers = ignored_pointers(ref, policy.ignore_differences)
    to_apply = take_from_live(obj, live, pointers) if pointers else obj
    ours = applied is not None or FIELD_MANAGER in {
        e.get("manager") for e in (live.get("metadata") or {}).get("managedFields") or []
    }
    # The same content applied over the same live content as a pass already found settled:
    # a dry-run could only say "unchanged" again.
    settled = (content_hash(to_apply), content_version(live))
    if cluster.settled.get(ref) == settled:
        return Change(ref, Action.UNCHANGED, obj, api_version)
    force = False
    repair: ListRepair | None = None
    try:
        try:
            predicted = cluster.apply(to_apply, dry_run=True)
        except ConflictError as conflict:
            if not (ours or policy.force):
                return Change(
                    ref,
                    Action.CONFLICT,
                    obj,
                    api_version,
                    managers=conflict.managers,
                    message=f"fields owned by {', '.join(conflict.managers)}; set sync.force to "
                    "take them over",
                )
            force = True
            predicted = cluster.apply(to_apply, dry_run=True, force=True)
    except ConflictError:
        raise
    except KubeError as err:
        # Another manager re-keyed an entry of a list map: no apply can succeed until the
        # list is repaired (see listrepair).
        repair = plan_repair(err.message, live, to_apply) if err.status == 422 else None
        if repair is None:
            raise
        if not (ours or policy.force):
            others = managers_other_than(live, FIELD_MANAGER)
            return Change(
                ref,
                Action.CONFLICT,
                obj,
                api_version,
                managers=others,
                message=f"{repair.path}: an entry {', '.join(others)} changed collides with "
                f"ours ({err.message}); set sync.force to repair it",
            )
        assert resource is not None
        predicted = cluster.patch_json(
            resource,
            ref.namespace,
            ref.name,
            repair.operations(),
            field_manager=REPAIR_MANAGER,
            dry_run=True,
        )
        force = True

    fields = field_changes(normalize(predicted), normalize(live))
    if not fields:
        if not force and repair is None:
            cluster.settled[ref] = settled
        return Change(ref, Action.UNCHANGED, obj, api_version)
    change = Change(ref, Action.UPDATE, to_apply, api_version, force=force, repair=repair)
    if repair is not None:
        change.message = (
            f"{repair.path}: an entry was re-keyed by another manager (duplicate "
            f"{repair.field}); repaired by replacing the list"
        )
    if applied is not None and (unchanged_in_git or force):
        # Drift: what we applied was changed since. When Git changed too, only fields another
        # manager owns now drifted; the rest are Git's own changes, pending.
        fields = attribute(fields, live, FIELD_MANAGER, unowned=unchanged_in_git)
        if not unchanged_in_git:
            change.drift_paths = frozenset(f.path for f in fields if f.manager)
        if unchanged_in_git or change.drift_paths:
            change.drift = Drift.MODIFIED
            change.managers = sorted({f.manager for f in fields if f.manager})
        else:  # fields were taken (a conflict), but none we can name: say who holds any
            change.drift, change.drift_paths = Drift.MODIFIED, None
            change.managers = managers_other_than(live, FIELD_MANAGER)
    elif force:
        change.managers = managers_other_than(live, FIELD_MANAGER)
        change.message = f"taking over fields from {', '.join(change.managers)} (sync.force)"
    change.fields = mask_changes(obj, fields)
    return change


def _plan_prunes(
    cluster: ClusterClient,
    owner: Owner,
    inventory: Mapping[ObjectRef, InventoryEntry],
    desired_refs: set[ObjectRef],
    policy: SyncPolicy,
) -> list[Change]:
    leaving = [e for ref, e in inventory.items() if ref not in desired_refs]
    namespaces_in_use = {ref.namespace for ref in desired_refs}

    def check(entry: InventoryEntry) -> Change | None:
        ref = entry.ref
        try:
            resource = cluster.resource(entry.api_version, ref.kind)
        except UnknownKind:
            return None  # its CRD is gone, and with it every object of the kind
        live = cluster.get(resource, ref.namespace, ref.name)
        if live is None:
            return None
        meta = live.get("metadata") or {}
        labels = labels_of(live)
        app_label = labels.get(APP_LABEL)
        if app_label != owner.app:  # taken over by another app, or unlabelled by hand
            why = (
                f"now labelled {APP_LABEL}={app_label}"
                if app_label
                else f"no {APP_LABEL} label now"
            )
            return Change(ref, Action.KEEP, None, entry.api_version, message=f"{why}; not pruned")
        claimed = claimed_elsewhere(live, owner.app, owner.cluster, owner.instance)
        if claimed is not None:
            return Change(
                ref, Action.KEEP, None, entry.api_version, message=f"{claimed}; not pruned"
            )
        if CLUSTER_LABEL not in labels:
            # Applied before objects named their Cluster entry: another entry reaching this
            # server may hold it. Reported, never deleted on a guess.
            message = f"applied before {CLUSTER_LABEL} labels; not pruned (delete it by hand)"
            return Change(ref, Action.KEEP, None, entry.api_version, message=message)
        if ref.kind == "Namespace" and not ref.group and ref.name in namespaces_in_use:
            message = "still holds objects of this app; not pruned"
            return Change(ref, Action.KEEP, None, entry.api_version, message=message)
        if (meta.get("annotations") or {}).get(PRUNE_ANNOTATION) == "disabled":
            message = "annotated prune: disabled"
            return Change(ref, Action.KEEP, None, entry.api_version, message=message)
        if not policy.prune:
            message = "prune disabled by sync.prune"
            return Change(ref, Action.KEEP, None, entry.api_version, message=message, tracked=True)
        return Change(ref, Action.PRUNE, None, entry.api_version)

    return [c for c in bounded_map(check, leaving) if c is not None]


def _find_unmanaged(
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
    ordered = sorted(scopes, key=_scope_key)
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
