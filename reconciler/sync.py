"""Plan and apply one app on one cluster, and work many clusters concurrently.

Plan, then act (STYLE.md): ``plan_target`` reads live state and server-side-apply dry-runs every
desired object; ``apply_plan`` writes only what the plan says changed, in stages (CRDs and
Namespaces first, then the rest in kind order), keeps the inventory, and prunes in reverse order.
Both return data; nothing here logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby
from typing import Any, Generic, TypeVar

from reconciler import APP_LABEL, FIELD_MANAGER
from reconciler.config.schema import SyncPolicy
from reconciler.diff import (
    FieldChange,
    attribute,
    content_hash,
    field_changes,
    ignored_pointers,
    managers_other_than,
    mask_changes,
    normalize,
    take_from_live,
)
from reconciler.errors import ConflictError, KubeError, ReconcilerError
from reconciler.kube.client import ClusterClient, Resource, UnknownKind
from reconciler.objects import Manifest, ObjectRef, kind_rank

SYSTEM_NAMESPACE = "reconciler-system"
INVENTORY_LABEL = "reconciler.io/inventory"
INSTANCE_LABEL = "reconciler.io/instance"  # which reconciler instance owns an inventory
DEFAULT_INSTANCE = "default"
CREATED_FOR_LABEL = "reconciler.io/created-for"
PRUNE_ANNOTATION = "reconciler.io/prune"
OBJECT_WORKERS = 8


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    PRUNE = "prune"
    KEEP = "keep"  # left Git but kept: prune disabled by annotation or policy
    CONFLICT = "conflict"  # another manager owns fields and the app may not take them


class Drift(StrEnum):
    MODIFIED = "modified"  # a field we declared differs live
    MISSING = "missing"  # an object we applied is gone
    UNMANAGED = "unmanaged"  # carries our label but is not in Git


@dataclass
class Change:
    """What the plan found for one object. ``fields`` are masked for Secrets."""

    ref: ObjectRef
    action: Action
    desired: Manifest | None = None
    api_version: str = ""
    fields: list[FieldChange] = field(default_factory=list)
    drift: Drift | None = None
    force: bool = False  # applying needs force (fields taken over by another manager)
    after_crd: bool = False  # its CRD is created by the same sync
    managers: list[str] = field(default_factory=list)
    message: str = ""
    tracked: bool = False  # left Git but stays in the inventory (kept while sync.prune is off)


@dataclass(frozen=True)
class InventoryEntry:
    api_version: str
    ref: ObjectRef
    hash: str


@dataclass
class TargetPlan:
    app: str
    cluster: str
    revision: str
    changes: list[Change]
    inventory: dict[ObjectRef, InventoryEntry]
    inventory_revision: str | None
    desired_inventory: dict[ObjectRef, InventoryEntry]
    instance: str = DEFAULT_INSTANCE

    @property
    def pending(self) -> list[Change]:
        """Changes that apply would act on (not unchanged)."""
        return [c for c in self.changes if c.action is not Action.UNCHANGED]

    @property
    def drifted(self) -> list[Change]:
        return [c for c in self.changes if c.drift is not None]

    @property
    def inventory_changed(self) -> bool:
        return self.inventory != self.desired_inventory


@dataclass
class ApplyResult:
    app: str
    cluster: str
    revision: str
    created: list[ObjectRef] = field(default_factory=list)
    configured: list[ObjectRef] = field(default_factory=list)
    unchanged: list[ObjectRef] = field(default_factory=list)
    pruned: list[ObjectRef] = field(default_factory=list)
    skipped: list[tuple[ObjectRef, str]] = field(default_factory=list)
    failed: list[tuple[ObjectRef, str]] = field(default_factory=list)
    corrected: list[ObjectRef] = field(default_factory=list)  # drift undone by selfHeal
    writes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


class SyncError(ReconcilerError):
    """The sync of one app on one cluster was refused or failed as a whole."""


# ---- inventory -----------------------------------------------------------------------------


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


def _inventory_manifest(
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


# ---- plan ----------------------------------------------------------------------------------


def _crd_kinds(objects: Iterable[Manifest]) -> dict[tuple[str, str], str]:
    """(group, kind) served by each CRD in the render -> the CRD's name."""
    kinds = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            kind = (spec.get("names") or {}).get("kind", "")
            kinds[(str(spec.get("group", "")), str(kind))] = str(obj["metadata"]["name"])
    return kinds


def _map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int = OBJECT_WORKERS
) -> list[Any]:
    """``map`` with bounded concurrency; the first exception is re-raised."""
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


def plan_target(
    cluster: ClusterClient,
    app: str,
    objects: list[Manifest],
    policy: SyncPolicy,
    revision: str,
    instance: str = DEFAULT_INSTANCE,
) -> TargetPlan:
    """Compare desired objects with live state; read-only (dry-runs change nothing)."""
    inventory, inventory_revision = read_inventory(cluster, app, instance)
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
            obj, ref = _scoped(cluster, obj, ref, resource)
        desired.append((obj, ref, resource))

    live, listed = _read_live(cluster, [(r, ref) for _, ref, r in desired if r is not None])

    def plan_one(item: tuple[Manifest, ObjectRef, Resource | None]) -> Change:
        obj, ref, resource = item
        return _plan_object(cluster, app, obj, ref, resource, live, inventory, policy)

    changes: list[Change] = _map(plan_one, desired)
    desired_refs = {ref for _, ref, _ in desired}
    changes += _plan_prunes(cluster, app, inventory, desired_refs, policy)
    changes += _find_unmanaged(cluster, app, inventory, desired, live, listed)
    changes.sort(key=lambda c: c.ref.sort_key())
    return TargetPlan(
        app,
        cluster.name,
        revision,
        changes,
        inventory,
        inventory_revision,
        _next_inventory(desired, changes, inventory),
        instance,
    )


def _scoped(
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
) -> dict[ObjectRef, InventoryEntry]:
    """What the inventory should list after apply: desired objects we may manage, and objects
    that left Git but still await (or are kept from) pruning. Conflicts are not ours."""
    by_ref = {c.ref: c for c in changes}
    entries = {}
    for obj, ref, _ in desired:
        if by_ref[ref].action is Action.CONFLICT:
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


def _read_live(
    cluster: ClusterClient, wanted: list[tuple[Resource, ObjectRef]]
) -> tuple[dict[ObjectRef, Manifest], set[Scope]]:
    """Live objects: one LIST per (kind, namespace) with many objects, GETs for a few.

    Also returns the scopes that were listed whole (the unmanaged scan reuses those lists).
    """
    groups: dict[Scope, list[ObjectRef]] = {}
    for resource, ref in wanted:
        groups.setdefault((resource, ref.namespace), []).append(ref)
    listed = {scope for scope, refs in groups.items() if len(refs) > _FEW}
    work: list[tuple[Scope, ObjectRef | None]] = []
    for scope, refs in sorted(groups.items(), key=lambda kv: _scope_key(kv[0])):
        work += [(scope, None)] if scope in listed else [(scope, ref) for ref in refs]

    def read(item: tuple[Scope, ObjectRef | None]) -> list[Manifest]:
        (resource, namespace), ref = item
        if ref is None:
            return cluster.list_objects(resource, namespace)
        found = cluster.get(resource, namespace, ref.name)
        return [found] if found is not None else []

    live: dict[ObjectRef, Manifest] = {}
    for items in _map(read, work):
        for item in items:
            live[ObjectRef.of(item)] = item
    return live, listed


def _scope_key(scope: Scope) -> tuple[str, str, str]:
    return (scope[0].group, scope[0].kind, scope[1])


def _plan_object(
    cluster: ClusterClient,
    app: str,
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

    owner = ((live.get("metadata") or {}).get("labels") or {}).get(APP_LABEL)
    if owner is not None and owner != app and not policy.force:
        return Change(
            ref,
            Action.CONFLICT,
            obj,
            api_version,
            managers=managers_other_than(live, ""),
            message=f"belongs to app {owner} (labelled {APP_LABEL}={owner})",
        )
    # Fields we ignore are sent with their live value: we neither fight their owner (an HPA)
    # nor, by leaving them out, make the server drop them back to defaults.
    pointers = ignored_pointers(ref, policy.ignore_differences)
    to_apply = take_from_live(obj, live, pointers) if pointers else obj
    ours = applied is not None or FIELD_MANAGER in {
        e.get("manager") for e in (live.get("metadata") or {}).get("managedFields") or []
    }
    force = False
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
        predicted = cluster.apply(to_apply, dry_run=True, force=True)
        force = True

    fields = field_changes(normalize(live), normalize(predicted))
    if not fields:
        return Change(ref, Action.UNCHANGED, obj, api_version)
    change = Change(ref, Action.UPDATE, to_apply, api_version, force=force)
    # Drift: what we applied was changed since, with Git the same or fields taken from us.
    if applied is not None and (unchanged_in_git or force):
        change.drift = Drift.MODIFIED
        fields = attribute(fields, live, FIELD_MANAGER)
        change.managers = sorted({f.manager for f in fields if f.manager})
    elif force:
        change.managers = managers_other_than(live, FIELD_MANAGER)
        change.message = f"taking over fields from {', '.join(change.managers)} (sync.force)"
    change.fields = mask_changes(obj, fields)
    return change


def _plan_prunes(
    cluster: ClusterClient,
    app: str,
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
        owner = (meta.get("labels") or {}).get(APP_LABEL)
        if owner != app:  # taken over by another app, or unlabelled by hand: not ours now
            why = f"now labelled {APP_LABEL}={owner}" if owner else f"no {APP_LABEL} label now"
            return Change(ref, Action.KEEP, None, entry.api_version, message=f"{why}; not pruned")
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

    return [c for c in _map(check, leaving) if c is not None]


def _find_unmanaged(
    cluster: ClusterClient,
    app: str,
    inventory: Mapping[ObjectRef, InventoryEntry],
    desired: list[tuple[Manifest, ObjectRef, Resource | None]],
    live: Mapping[ObjectRef, Manifest],
    listed: set[Scope],
) -> list[Change]:
    """Objects labelled as this app's that neither Git nor the inventory knows.

    Looked for in the scopes (kind × namespace) the app uses, never cluster-wide: a labelled
    LIST across all namespaces costs the API server a scan of every object of the kind.
    """
    scopes: set[Scope] = {(r, ref.namespace) for _, ref, r in desired if r is not None}
    for entry in inventory.values():
        try:
            scopes.add((cluster.resource(entry.api_version, entry.ref.kind), entry.ref.namespace))
        except UnknownKind:
            continue
    known = {ref for _, ref, _ in desired} | set(inventory)
    selector = f"{APP_LABEL}={app}"

    def labelled(scope: Scope) -> list[Manifest]:
        resource, namespace = scope
        if scope in listed:  # already listed whole for the plan
            return [o for ref, o in live.items() if (resource, ref.namespace) == scope]
        try:
            return cluster.list_objects(resource, namespace, label_selector=selector)
        except KubeError as err:
            if err.status in (401, 403):  # RBAC narrower than the app: a best-effort check
                return []
            raise

    found = []
    ordered = sorted(scopes, key=_scope_key)
    for (resource, _), items in zip(ordered, _map(labelled, ordered), strict=True):
        for item in items:
            ref = ObjectRef.of(item)
            labels = (item.get("metadata") or {}).get("labels") or {}
            if ref not in known and labels.get(APP_LABEL) == app:
                found.append(
                    Change(
                        ref,
                        Action.KEEP,
                        None,
                        resource.api_version,
                        drift=Drift.UNMANAGED,
                        managers=managers_other_than(item, FIELD_MANAGER),
                        message=f"labelled {selector} but not in Git",
                    )
                )
    return found


# ---- apply ---------------------------------------------------------------------------------


def apply_plan(cluster: ClusterClient, plan: TargetPlan, policy: SyncPolicy) -> ApplyResult:
    """Carry out a plan: namespaces, CRDs, the rest by kind, inventory, then prune.

    A plan with nothing pending and an unchanged inventory sends no write request at all.
    """
    result = ApplyResult(plan.app, plan.cluster, plan.revision)
    to_apply: list[Change] = []
    for change in plan.changes:
        if change.action is Action.UNCHANGED:
            result.unchanged.append(change.ref)
        elif change.action is Action.CONFLICT:
            result.skipped.append((change.ref, change.message))
        elif change.action is Action.KEEP:
            if change.drift is None:
                result.skipped.append((change.ref, change.message))
        elif change.action in (Action.CREATE, Action.UPDATE):
            if change.drift is not None and not policy.self_heal:
                result.skipped.append((change.ref, "drifted; selfHeal is off"))
            else:
                to_apply.append(change)
    prunes = [c for c in plan.changes if c.action is Action.PRUNE]
    stale_inventory = plan.inventory_revision is not None and not plan.desired_inventory
    if not to_apply and not prunes and not plan.inventory_changed and not stale_inventory:
        return result

    _ensure_namespaces(cluster, plan, to_apply, result)
    first = [c for c in to_apply if c.ref.kind in ("CustomResourceDefinition", "Namespace")]
    rest = [c for c in to_apply if c not in first]
    _apply_stage(cluster, first, result)
    crds = [c.ref.name for c in first if c.ref.kind == "CustomResourceDefinition"]
    if crds and not result.failed:
        cluster.wait_established(crds)
    if result.failed:
        return result  # dependents of a failed CRD/Namespace would only fail the same way
    for _, group in groupby(sorted(rest, key=lambda c: c.ref.sort_key()), key=_rank):
        _apply_stage(cluster, list(group), result)

    inventory = dict(plan.desired_inventory)
    for ref, _ in result.failed:  # what failed to apply keeps its previous entry
        if ref in plan.inventory:
            inventory[ref] = plan.inventory[ref]
        else:
            inventory.pop(ref, None)
    if inventory and inventory != plan.inventory:  # objects awaiting prune are still listed
        _write_inventory(cluster, plan, inventory.values(), result)
    if result.failed:
        return result  # prune only after everything desired is in place

    _prune(cluster, prunes, result)
    for ref in result.pruned:
        inventory.pop(ref, None)
    if not inventory:  # nothing left here: forget the app on this cluster
        configmaps = cluster.resource("v1", "ConfigMap")
        if cluster.delete(configmaps, SYSTEM_NAMESPACE, inventory_name(plan.app, plan.instance)):
            result.writes += 1
    elif result.pruned:
        _write_inventory(cluster, plan, inventory.values(), result)
    return result


def _rank(change: Change) -> int:
    return kind_rank(change.ref.kind)


def _apply_stage(cluster: ClusterClient, changes: list[Change], result: ApplyResult) -> None:
    def apply_one(change: Change) -> tuple[Change, str | None]:
        assert change.desired is not None
        try:
            cluster.apply(change.desired, force=change.force)
        except KubeError as err:
            return change, err.message
        return change, None

    for change, error in _map(apply_one, changes):
        result.writes += 1
        if error is not None:
            result.failed.append((change.ref, error))
            continue
        (result.created if change.action is Action.CREATE else result.configured).append(change.ref)
        if change.drift is not None:
            result.corrected.append(change.ref)


def _ensure_namespaces(
    cluster: ClusterClient, plan: TargetPlan, changes: list[Change], result: ApplyResult
) -> None:
    """Create missing target namespaces (labelled as ours) and the inventory's namespace."""
    declared = {c.ref.name for c in plan.changes if c.ref.kind == "Namespace" and not c.ref.group}
    needed = {c.ref.namespace for c in changes if c.ref.namespace} - declared
    if plan.inventory_changed:
        needed.add(SYSTEM_NAMESPACE)
    namespaces = cluster.resource("v1", "Namespace")
    for name in sorted(needed):
        if cluster.get(namespaces, "", name) is None:
            cluster.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": name,
                        "labels": {
                            "app.kubernetes.io/managed-by": FIELD_MANAGER,
                            CREATED_FOR_LABEL: plan.app,
                        },
                    },
                }
            )
            result.writes += 1


def _write_inventory(
    cluster: ClusterClient, plan: TargetPlan, entries: Iterable[InventoryEntry], result: ApplyResult
) -> None:
    manifest = _inventory_manifest(plan.app, plan.revision, plan.instance, entries)
    cluster.apply(manifest, force=True)
    result.writes += 1


def _prune(cluster: ClusterClient, prunes: list[Change], result: ApplyResult) -> None:
    for change in sorted(prunes, key=lambda c: c.ref.sort_key(), reverse=True):
        try:
            resource = cluster.resource(change.api_version, change.ref.kind)
            cluster.delete(resource, change.ref.namespace, change.ref.name)
        except KubeError as err:
            result.failed.append((change.ref, f"prune failed: {err.message}"))
            continue
        result.writes += 1
        result.pruned.append(change.ref)


# ---- many clusters -------------------------------------------------------------------------

T = TypeVar("T")
K = TypeVar("K")


@dataclass
class Outcome(Generic[K, T]):
    """The result of work on one key (a cluster, a target), or the error that stopped it."""

    key: K
    value: T | None = None
    error: ReconcilerError | None = None


def run_isolated(
    keys: Iterable[K], work: Callable[[K], T], max_workers: int = 32
) -> list[Outcome[K, T]]:
    """Run ``work`` for every key concurrently; one key's failure never affects the others.

    Only the project's own errors are caught: anything else is a bug and propagates.
    """
    keys = list(keys)
    if not keys:
        return []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(keys))) as pool:
        futures: list[tuple[K, Future[T]]] = [(k, pool.submit(work, k)) for k in keys]
        outcomes: list[Outcome[K, T]] = []
        for key, future in futures:
            try:
                outcomes.append(Outcome(key, value=future.result()))
            except ReconcilerError as err:
                outcomes.append(Outcome(key, error=err))
    return outcomes
