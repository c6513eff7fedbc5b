"""What a plan and an apply say: actions, drift, changes per object, the inventory, results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.errors import ReconcilerError
from reconciler.fields import Drift, FieldChange
from reconciler.objects import Manifest, ObjectRef
from reconciler.sync.listrepair import ListRepair

SYSTEM_NAMESPACE = "reconciler-system"
INVENTORY_LABEL = "reconciler.io/inventory"
INSTANCE_LABEL = "reconciler.io/instance"  # which reconciler instance owns an object/inventory
CLUSTER_LABEL = "reconciler.io/cluster"  # which Cluster entry of the repo applied an object
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
    # With drift: the paths that drifted (None: every field). The others are Git's changes
    # since the last apply, pending, never drift.
    drift_paths: frozenset[str] | None = None
    repair: ListRepair | None = None  # a list another manager re-keyed: repaired before apply

    def drifted(self, f: FieldChange) -> bool:
        """Whether a field of this change is drift (someone else's), not a pending Git change."""
        return self.drift is not None and (self.drift_paths is None or f.path in self.drift_paths)

    @property
    def drift_fields(self) -> list[FieldChange]:
        return [f for f in self.fields if self.drifted(f)]


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
    live: dict[ObjectRef, Manifest] = field(default_factory=dict)  # what the plan read
    legacy_inventory: bool = False  # read from the pre-cluster-label name: rewrite, then drop it

    @property
    def pending(self) -> list[Change]:
        """Changes that apply would act on (not unchanged)."""
        return [c for c in self.changes if c.action is not Action.UNCHANGED]

    @property
    def drifted(self) -> list[Change]:
        return [c for c in self.changes if c.drift is not None]

    @property
    def inventory_changed(self) -> bool:
        return self.legacy_inventory or self.inventory != self.desired_inventory


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
    live: dict[ObjectRef, Manifest] = field(default_factory=dict)  # the server's answers

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        """How many objects each action took, in the order reports list them."""
        return {
            "created": len(self.created),
            "configured": len(self.configured),
            "unchanged": len(self.unchanged),
            "pruned": len(self.pruned),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
        }


def live_after(plan: TargetPlan, result: ApplyResult | None) -> dict[ObjectRef, Manifest | None]:
    """Every desired object's live state after a pass (``None``: not on the cluster), from
    what the pass already read and wrote: the plan's GETs and LISTs, and the server's answer to
    each apply. Health is judged on it without a request of its own."""
    written = result.live if result is not None else {}
    return {
        c.ref: written.get(c.ref, plan.live.get(c.ref))
        for c in plan.changes
        if c.desired is not None and c.action is not Action.PRUNE
    }


class SyncError(ReconcilerError):
    """The sync of one app on one cluster was refused or failed as a whole."""


@dataclass(frozen=True)
class Claims:
    """What the apps of one instance and Cluster entry want on the cluster in one pass.

    An object that moves from one app to another in one revision is handed over: the app it
    leaves keeps it (never prunes it), the app it joins takes it over (relabels it by its
    apply) instead of reporting a conflict. Without claims (one app alone) nothing is handed.
    """

    wants: Mapping[ObjectRef, frozenset[str]] = field(default_factory=dict)  # ref -> its apps
    rendered: frozenset[str] = frozenset()  # apps whose objects here this pass knows
    failed: frozenset[str] = frozenset()  # apps whose render failed: what they want is unknown
    whole: bool = False  # the whole repo was rendered: an app not rendered wants nothing here
    # (group, kind, name) -> apps, of namespaced refs: a custom kind the render took for
    # namespaced may be cluster-scoped (its ref then has no namespace).
    names: Mapping[tuple[str, str, str], frozenset[str]] = field(default_factory=dict)

    def apps_wanting(self, ref: ObjectRef) -> frozenset[str]:
        found = self.wants.get(ref, frozenset())
        if not ref.namespace:
            found |= self.names.get((ref.group, ref.kind, ref.name), frozenset())
        return found

    def wanted_elsewhere(self, ref: ObjectRef, app: str) -> str | None:
        """Another app that wants ``ref`` in this pass, or None."""
        others = sorted(self.apps_wanting(ref) - {app})
        return others[0] if others else None

    def released(self, ref: ObjectRef, holder: str) -> bool:
        """Whether ``holder`` (the app a live object is labelled for) gives ``ref`` up in this
        pass: it is known not to want it."""
        if holder in self.failed or holder in self.apps_wanting(ref):
            return False
        return self.whole or holder in self.rendered
