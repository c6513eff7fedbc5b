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
from reconciler.errors import ConflictError, KubeError, target_prefix
from reconciler.fields import Drift
from reconciler.kube.client import ClusterClient
from reconciler.kube.content import content_version
from reconciler.kube.served import Resource, UnknownKind
from reconciler.masking import mask_changes
from reconciler.objects import Manifest, ObjectRef
from reconciler.sync.holders import is_holder, kept_because
from reconciler.sync.inventory import read_inventory
from reconciler.sync.isolated import bounded_map
from reconciler.sync.listrepair import REPAIR_MANAGER, ListRepair, plan_repair
from reconciler.sync.model import (
    CLUSTER_LABEL,
    DEFAULT_INSTANCE,
    INSTANCE_LABEL,
    PRUNE_ANNOTATION,
    Action,
    Change,
    Claims,
    InventoryEntry,
    SyncError,
    TargetPlan,
)
from reconciler.sync.ownership import Owner, claimed_elsewhere, labels_of, stamp
from reconciler.sync.reads import read_live
from reconciler.sync.unmanaged import find_unmanaged

NO_CLAIMS = Claims()


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
    claims: Claims = NO_CLAIMS,
) -> TargetPlan:
    """Compare desired objects with live state; read-only (dry-runs change nothing).

    ``claims``: what the other apps of this instance and Cluster entry want in the same pass
    (an object moving between them is handed over, never pruned).
    """
    read = read_inventory(cluster, app, instance)
    inventory, inventory_revision = read.entries, read.revision
    objects = [stamp(obj, cluster.name, instance) for obj in objects]
    if not objects and inventory and not policy.allow_empty:
        raise SyncError(
            f"{target_prefix(app, cluster.name)}renders to zero objects; refusing to prune "
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
        return _plan_object(cluster, owner, obj, ref, resource, live, inventory, policy, claims)

    changes: list[Change] = bounded_map(plan_one, desired)
    desired_refs = {ref for _, ref, _ in desired}
    changes += _plan_prunes(cluster, owner, inventory, desired_refs, policy, claims)
    changes += find_unmanaged(cluster, owner, inventory, desired, live, listed)
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


def _plan_object(
    cluster: ClusterClient,
    owner: Owner,
    obj: Manifest,
    ref: ObjectRef,
    resource: Resource | None,
    live_objects: Mapping[ObjectRef, Manifest],
    inventory: Mapping[ObjectRef, InventoryEntry],
    policy: SyncPolicy,
    claims: Claims = NO_CLAIMS,
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
    labels = labels_of(live)
    holder = labels.get(APP_LABEL)
    other_app = holder not in (None, owner.app)
    # Moved here from another app of this instance and Cluster entry in this revision: that
    # app gives it up (it keeps it from its prune), this one takes it over by its apply.
    handed = (
        other_app
        and labels.get(INSTANCE_LABEL) in (None, owner.instance)
        and labels.get(CLUSTER_LABEL) in (None, owner.cluster)
        and claims.released(ref, str(holder))
    )
    if claimed is not None and not handed and not (other_app and policy.force):
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
    if handed:
        change.message = f"moved here from app {holder}: taken over"
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
    claims: Claims = NO_CLAIMS,
) -> list[Change]:
    """What left Git: pruned, or kept and why. A Namespace or a CRD is decided last: it is
    not pruned while it holds an object that stays (see holders)."""
    leaving = [e for ref, e in inventory.items() if ref not in desired_refs]
    lives: dict[ObjectRef, Manifest] = {}

    def check(entry: InventoryEntry) -> Change | None:
        ref = entry.ref
        api_version = entry.api_version
        try:
            resource = cluster.resource(api_version, ref.kind)
        except UnknownKind:
            # No longer served under this version: maybe under another (a CRD that dropped
            # v1beta1 for v1 still holds the object), else the kind is gone, and every object
            # of it with it.
            try:
                served = cluster.served_kind(ref.group, ref.kind)
            except KubeError as err:
                message = f"{api_version} is not served and its kind could not be looked up "
                message += f"({err.message}); kept in the inventory, not pruned"
                return Change(ref, Action.KEEP, None, api_version, message=message, tracked=True)
            if served is None:
                return None
            resource, api_version = served, served.api_version
        live = cluster.get(resource, ref.namespace, ref.name)
        if live is None:
            return None
        lives[ref] = live
        wanted_by = claims.wanted_elsewhere(ref, owner.app)
        if wanted_by is not None:
            message = f"moved to app {wanted_by}: handed over, not pruned"
            return Change(ref, Action.KEEP, None, api_version, message=message)
        meta = live.get("metadata") or {}
        labels = labels_of(live)
        app_label = labels.get(APP_LABEL)
        if app_label != owner.app:  # taken over by another app, or unlabelled by hand
            why = (
                f"now labelled {APP_LABEL}={app_label}"
                if app_label
                else f"no {APP_LABEL} label now"
            )
            return Change(ref, Action.KEEP, None, api_version, message=f"{why}; not pruned")
        claimed = claimed_elsewhere(live, owner.app, owner.cluster, owner.instance)
        if claimed is not None:
            return Change(ref, Action.KEEP, None, api_version, message=f"{claimed}; not pruned")
        if CLUSTER_LABEL not in labels:
            # Applied before objects named their Cluster entry: another entry reaching this
            # server may hold it. Reported, never deleted on a guess.
            message = f"applied before {CLUSTER_LABEL} labels; not pruned (delete it by hand)"
            return Change(ref, Action.KEEP, None, api_version, message=message)
        if (meta.get("annotations") or {}).get(PRUNE_ANNOTATION) == "disabled":
            message = "annotated prune: disabled"
            return Change(ref, Action.KEEP, None, api_version, message=message)
        if not policy.prune:
            message = "prune disabled by sync.prune"
            return Change(ref, Action.KEEP, None, api_version, message=message, tracked=True)
        return Change(ref, Action.PRUNE, None, api_version)

    changes = [c for c in bounded_map(check, leaving) if c is not None]
    pruned = {c.ref for c in changes if c.action is Action.PRUNE}
    kept = {c.ref for c in changes if c.action is Action.KEEP}
    wanted = {ref: apps - {owner.app} for ref, apps in claims.wants.items()}
    for change in changes:
        if change.action is Action.PRUNE and is_holder(change.ref):
            others = pruned - {change.ref}
            live = lives[change.ref]
            why = kept_because(cluster, change.ref, live, desired_refs, kept, others, wanted)
            if why is not None:
                change.action, change.message = Action.KEEP, why
    return changes
