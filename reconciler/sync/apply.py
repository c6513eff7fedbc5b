"""Apply a plan: write only what changed, in stages (CRDs and Namespaces first), keep the
inventory, prune in reverse order."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from reconciler import FIELD_MANAGER
from reconciler.config.schema import SyncPolicy
from reconciler.diff import content_hash
from reconciler.errors import KubeError
from reconciler.kube.client import ClusterClient
from reconciler.kube.content import content_version
from reconciler.kube.served import Resource
from reconciler.objects import Manifest, ObjectRef, kind_rank
from reconciler.progress import PassProgress
from reconciler.sync.inventory import inventory_manifest, inventory_name, legacy_inventory_name
from reconciler.sync.isolated import bounded_map
from reconciler.sync.listrepair import REPAIR_MANAGER, ListRepair, without_manager
from reconciler.sync.model import (
    CREATED_FOR_LABEL,
    SYSTEM_NAMESPACE,
    Action,
    ApplyResult,
    Change,
    InventoryEntry,
    TargetPlan,
)


def apply_plan(
    cluster: ClusterClient,
    plan: TargetPlan,
    policy: SyncPolicy,
    progress: PassProgress | None = None,
) -> ApplyResult:
    """Carry out a plan: namespaces, CRDs, the rest by kind, inventory, then prune.

    A plan with nothing pending and an unchanged inventory sends no write request at all.
    ``progress`` counts the objects to write and written.
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

    if progress is not None:
        progress.add(objects=len(to_apply) + len(prunes))
    _ensure_namespaces(cluster, plan, to_apply, result)
    first = [c for c in to_apply if c.ref.kind in ("CustomResourceDefinition", "Namespace")]
    rest = [c for c in to_apply if c not in first]
    if not result.failed:
        _apply_stage(cluster, first, result, progress)
    crds = [c.ref for c in first if c.ref.kind == "CustomResourceDefinition"]
    if crds and not result.failed:
        try:
            cluster.wait_established([ref.name for ref in crds])
        except KubeError as err:  # created, but nothing of its kinds can be applied
            result.failed += [(ref, err.message) for ref in crds]
    # Dependents of a failed CRD/Namespace would only fail the same way: stop there, but
    # still list in the inventory what was written.
    if not result.failed:
        for _, group in groupby(sorted(rest, key=lambda c: c.ref.sort_key()), key=_rank):
            _apply_stage(cluster, list(group), result, progress)

    inventory = _written_inventory(plan, to_apply, result)
    # Awaiting prune: listed (and an inventory under its old name deleted once written);
    # unwritten, nothing is pruned that the inventory could forget.
    changed = inventory != plan.inventory or plan.legacy_inventory
    if inventory and changed and not _write_inventory(cluster, plan, inventory.values(), result):
        return result
    if result.failed:
        return result  # prune only after everything desired is in place

    _prune(cluster, prunes, result)
    if progress is not None:
        for _ in prunes:
            progress.done(objects=1)
    for ref in result.pruned:
        inventory.pop(ref, None)
    if not inventory:  # nothing left here: forget the app on this cluster
        _delete_inventory(cluster, inventory_name(plan.app, plan.instance, plan.cluster), result)
        if plan.legacy_inventory:
            _delete_inventory(cluster, legacy_inventory_name(plan.app, plan.instance), result)
    elif result.pruned:
        _write_inventory(cluster, plan, inventory.values(), result)
    return result


def _written_inventory(
    plan: TargetPlan, to_apply: list[Change], result: ApplyResult
) -> dict[ObjectRef, InventoryEntry]:
    """The inventory after the writes: the plan's, except that an object not written (it
    failed, or the apply stopped before it) keeps its previous entry, or none. What was
    written is listed even when a later step failed, so it can be pruned."""
    written = set(result.created) | set(result.configured)
    not_written = {ref for ref, _ in result.failed} | {c.ref for c in to_apply}
    inventory = dict(plan.desired_inventory)
    for ref in not_written - written:
        if ref in plan.inventory:
            inventory[ref] = plan.inventory[ref]
        else:
            inventory.pop(ref, None)
    return inventory


def _rank(change: Change) -> int:
    return kind_rank(change.ref.kind)


def _apply_stage(
    cluster: ClusterClient,
    changes: list[Change],
    result: ApplyResult,
    progress: PassProgress | None = None,
) -> None:
    def apply_one(change: Change) -> tuple[Change, Manifest | str]:
        assert change.desired is not None
        try:
            if change.repair is not None:
                return change, _repair(cluster, change, change.repair)
            return change, cluster.apply(change.desired, force=change.force)
        except KubeError as err:
            return change, err.message
        finally:
            if progress is not None:
                progress.done(objects=1)

    for change, answer in bounded_map(apply_one, changes):
        assert change.desired is not None
        result.writes += 1 if change.repair is None else 3
        if isinstance(answer, str):
            result.failed.append((change.ref, answer))
            continue
        result.live[change.ref] = answer
        if change.repair is None:  # applying the same again over the answer changes nothing
            cluster.settled[change.ref] = (content_hash(change.desired), content_version(answer))
        (result.created if change.action is Action.CREATE else result.configured).append(change.ref)
        if change.drift is not None:
            result.corrected.append(change.ref)


def _repair(cluster: ClusterClient, change: Change, repair: ListRepair) -> Manifest:
    """Replace the re-keyed list, apply, then leave the list to our apply alone (listrepair)."""
    assert change.desired is not None
    ref = change.ref
    resource = cluster.resource(change.api_version, ref.kind)
    cluster.patch_json(
        resource, ref.namespace, ref.name, repair.operations(), field_manager=REPAIR_MANAGER
    )
    applied = cluster.apply(change.desired, force=True)
    version = str(applied["metadata"]["resourceVersion"])
    return cluster.patch_json(
        resource,
        ref.namespace,
        ref.name,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version},
            {
                "op": "replace",
                "path": "/metadata/managedFields",
                "value": without_manager(applied, REPAIR_MANAGER),
            },
        ],
    )


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
        try:
            _ensure_namespace(cluster, plan, namespaces, name, result)
        except KubeError as err:
            ref = ObjectRef("", "Namespace", "", name)
            result.failed.append((ref, f"namespace not created: {err.message}"))


def _ensure_namespace(
    cluster: ClusterClient, plan: TargetPlan, namespaces: Resource, name: str, result: ApplyResult
) -> None:
    if cluster.get(namespaces, "", name) is not None:
        return
    labels = {"app.kubernetes.io/managed-by": FIELD_MANAGER, CREATED_FOR_LABEL: plan.app}
    cluster.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    )
    result.writes += 1


def _write_inventory(
    cluster: ClusterClient, plan: TargetPlan, entries: Iterable[InventoryEntry], result: ApplyResult
) -> bool:
    """Write the inventory; False (and a failure in the result) when it could not be."""
    manifest = inventory_manifest(plan.app, plan.revision, plan.instance, plan.cluster, entries)
    try:
        cluster.apply(manifest, force=True)
    except KubeError as err:
        result.failed.append((ObjectRef.of(manifest), f"inventory not written: {err.message}"))
        return False
    result.writes += 1
    if plan.legacy_inventory:  # moved to its per-cluster name: the old one goes
        _delete_inventory(cluster, legacy_inventory_name(plan.app, plan.instance), result)
        plan.legacy_inventory = False
    return True


def _delete_inventory(cluster: ClusterClient, name: str, result: ApplyResult) -> None:
    configmaps = cluster.resource("v1", "ConfigMap")
    try:
        if cluster.delete(configmaps, SYSTEM_NAMESPACE, name):
            result.writes += 1
    except KubeError as err:
        ref = ObjectRef("", "ConfigMap", SYSTEM_NAMESPACE, name)
        result.failed.append((ref, f"inventory not deleted: {err.message}"))


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
