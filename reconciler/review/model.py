"""The plan as data: per app, cluster and object what merging head into base changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.errors import RenderError
from reconciler.fields import FieldChange
from reconciler.objects import ObjectRef
from reconciler.rollout.model import RolloutPlan
from reconciler.sync.model import DEFAULT_INSTANCE, Action


class AppStatus(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


class ClusterStatus(StrEnum):
    GAINED = "gained"  # the app is deployed here after the merge, not before
    LOST = "lost"  # the app leaves this cluster: its objects are pruned
    PAUSED = "paused"  # still placed, but the cluster is now paused: nothing changes there
    CHANGED = "changed"
    UNCHANGED = "unchanged"


class ObjectAction(StrEnum):
    CREATED = "created"
    DELETED = "deleted"
    CHANGED = "changed"


@dataclass(frozen=True)
class ObjectDiff:
    """One object that differs between base and head on one cluster; ``diff`` is masked."""

    ref: ObjectRef
    action: ObjectAction
    diff: str
    note: str = ""


@dataclass(frozen=True)
class OverrideDiff:
    """An override whose effect on one cluster differs between base and head, and why."""

    name: str
    where: str
    status: str  # "applies" (gained cluster), "now applies", "no longer applies", "changed"
    reason: str
    changes: tuple[str, ...] = ()  # what it does in head (base for "no longer applies")
    before: tuple[str, ...] = ()  # what it did in base ("changed" only)


@dataclass
class ClusterReview:
    cluster: str
    status: ClusterStatus
    reasons: list[str] = field(default_factory=list)  # placement in head (base when lost)
    before: list[str] = field(default_factory=list)  # placement in base, when it changed
    causes: list[str] = field(default_factory=list)  # the edits that changed placement
    overrides: list[OverrideDiff] = field(default_factory=list)
    objects: list[ObjectDiff] = field(default_factory=list)
    error: str | None = None  # head does not render here (blocking)
    note: str | None = None
    error_in_base: bool = False  # base fails here with the same error: not this change's doing

    def count(self, action: ObjectAction) -> int:
        return sum(1 for o in self.objects if o.action is action)

    @property
    def differs(self) -> bool:
        return bool(
            self.status in (ClusterStatus.GAINED, ClusterStatus.LOST, ClusterStatus.PAUSED)
            or self.objects
            or self.overrides
            or (self.error and not self.error_in_base)
        )


@dataclass
class AppReview:
    app: str
    status: AppStatus
    spec_changes: list[str] = field(default_factory=list)
    clusters: list[ClusterReview] = field(default_factory=list)
    # The rollout a merge starts (spec.rollout): the clusters whose render changes, by stage;
    # ``at_once`` are those that take head without a stage (they do not run the app yet).
    rollout: RolloutPlan | None = None
    at_once: tuple[str, ...] = ()

    def with_status(self, status: ClusterStatus) -> list[ClusterReview]:
        return [c for c in self.clusters if c.status is status]


@dataclass(frozen=True)
class Revision:
    rev: str
    sha: str

    @property
    def short(self) -> str:
        return self.sha[:12]


@dataclass(frozen=True)
class LiveChange:
    """What the dry-run of head found for one live object (fields are masked for Secrets)."""

    ref: ObjectRef
    action: Action
    drift: str | None
    message: str
    managers: tuple[str, ...]
    fields: tuple[FieldChange, ...]  # git: head's dry-run; live: the cluster
    self_heal: bool = True


@dataclass
class LiveTarget:
    app: str
    cluster: str
    changes: list[LiveChange] = field(default_factory=list)
    departed: bool = False
    error: str | None = None
    unreachable: bool = False


@dataclass
class Review:
    """The whole plan: base and head, blocking problems, notes, per-app review, live results.

    ``blocking`` has one entry per problem and per target that does not render in head;
    ``base_errors`` are the targets that do not render in base (notes, not blocking)."""

    base: Revision
    head: Revision
    blocking: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    base_errors: list[RenderError] = field(default_factory=list)
    inventory: list[str] = field(default_factory=list)
    apps: list[AppReview] = field(default_factory=list)
    live: list[LiveTarget] | None = None
    live_instance: str = DEFAULT_INSTANCE

    @property
    def changed_apps(self) -> list[AppReview]:
        return [a for a in self.apps if a.status is not AppStatus.UNCHANGED]

    @property
    def has_errors(self) -> bool:
        live_errors = any(t.error for t in self.live or [])
        return bool(self.blocking) or live_errors

    @property
    def has_changes(self) -> bool:
        live_changes = any(t.changes for t in self.live or [])
        return bool(self.changed_apps or self.inventory) or live_changes
