"""The data of a rollout: its plan, its persisted state, what it observes and what it asks for.

Times are seconds since the epoch (floats); the caller owns the clock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import StrEnum


class OnFailure(StrEnum):
    """What a stage does when more of its clusters failed than ``maxFailures`` allows."""

    HALT = "halt"  # stop; updated clusters keep the new revision
    ROLLBACK = "rollback"  # every cluster this rollout updated goes back to its base revision
    CONTINUE = "continue"  # note the failures and go on


class ClusterPhase(StrEnum):
    PENDING = "Pending"  # not reached yet: runs its base revision
    PROGRESSING = "Progressing"  # told to run the new revision; waiting for it to be healthy
    SOAKING = "Soaking"  # healthy; waiting out minHealthyTime
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLING_BACK = "RollingBack"  # told to run its base revision again
    ROLLED_BACK = "RolledBack"
    # Passed over: pinned by `reconciler rollback` when its batch came (``ClusterState.pinned``:
    # the pin holds it; released, it runs the rollout's revision), left the app's targets
    # (paused, unplaced, removed, its cluster file broken), joined after the rollout ended, or
    # took no batch.
    SKIPPED = "Skipped"


class RolloutPhase(StrEnum):
    PROGRESSING = "Progressing"  # a batch is in flight
    WAITING = "Waiting"  # the interval between batches
    WAITING_APPROVAL = "WaitingApproval"
    SUCCEEDED = "Succeeded"
    HALTED = "Halted"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    SUPERSEDED = "Superseded"


# A rollout in one of these phases changes nothing any more (RollingBack still has work).
FINISHED = frozenset(
    {
        RolloutPhase.SUCCEEDED,
        RolloutPhase.HALTED,
        RolloutPhase.ROLLED_BACK,
        RolloutPhase.ABORTED,
        RolloutPhase.SUPERSEDED,
    }
)
IN_FLIGHT = frozenset({ClusterPhase.PROGRESSING, ClusterPhase.SOAKING})
# Clusters this rollout told to run its revision (what a rollback must undo).
REACHED = frozenset(
    {ClusterPhase.PROGRESSING, ClusterPhase.SOAKING, ClusterPhase.SUCCEEDED, ClusterPhase.FAILED}
)


@dataclass(frozen=True)
class PlannedStage:
    """One stage with every quantity resolved against its own clusters."""

    name: str
    clusters: tuple[str, ...]  # in rollout order
    max_concurrent: int  # clusters per batch, >= 1
    min_healthy_time: float = 0.0  # soak: seconds a cluster must stay healthy
    interval: float = 0.0  # seconds between the end of a batch and the start of the next
    approval: bool = False  # the stage starts only after `rollout approve`
    progress_deadline: float = 600.0  # seconds for a cluster to become healthy
    max_failures: int = 0  # failed clusters the stage tolerates
    on_failure: OnFailure = OnFailure.HALT

    def batches(self) -> tuple[tuple[str, ...], ...]:
        size = max(1, self.max_concurrent)
        return tuple(self.clusters[i : i + size] for i in range(0, len(self.clusters), size))


@dataclass(frozen=True)
class RolloutPlan:
    stages: tuple[PlannedStage, ...]
    warnings: tuple[str, ...] = ()

    def stage_of(self, cluster: str) -> int | None:
        for index, stage in enumerate(self.stages):
            if cluster in stage.clusters:
                return index
        return None

    @property
    def clusters(self) -> tuple[str, ...]:
        return tuple(c for stage in self.stages for c in stage.clusters)

    def only(self, clusters: Collection[str]) -> RolloutPlan:
        """The plan of just these clusters (stages left empty dropped), for display."""
        stages = [
            replace(s, clusters=tuple(c for c in s.clusters if c in clusters)) for s in self.stages
        ]
        return RolloutPlan(tuple(s for s in stages if s.clusters), self.warnings)


@dataclass(frozen=True)
class ClusterState:
    cluster: str
    stage: int
    batch: int
    base: str | None  # the revision it ran when the rollout started (None: none yet)
    phase: ClusterPhase = ClusterPhase.PENDING
    started_at: float | None = None  # when it was told to run the new revision
    healthy_since: float | None = None
    finished_at: float | None = None
    reason: str = ""
    unchanged: bool = False  # renders the same at the new revision: moved without a batch
    # Skipped only because a pin held it: once the pin is released it runs the new revision,
    # as the rest of its batch does (a rollback takes it back to its base like them).
    pinned: bool = False
    left: bool = False  # skipped because it left the app's targets: it rejoins if it comes back
    progress_from: float | None = None  # the progress deadline counts from here (else started_at)
    # What it runs once reached when the rollout's revision was not rendered for it (it joined
    # later, paused then): a newer revision that renders as the rollout's everywhere else.
    runs: str | None = None

    @classmethod
    def at_once(
        cls,
        cluster: str,
        stage: int,
        base: str | None,
        now: float,
        reason: str,
        *,
        unchanged: bool = False,
        runs: str | None = None,
    ) -> ClusterState:
        """A cluster that needs no batch (it renders the same, or joined once the rollout had
        succeeded): done at ``now``."""
        return cls(
            cluster,
            stage,
            -1,
            base,
            ClusterPhase.SUCCEEDED,
            started_at=now,
            finished_at=now,
            reason=reason,
            unchanged=unchanged,
            runs=runs,
        )


@dataclass(frozen=True)
class Approval:
    stage: str
    user: str
    at: float


@dataclass(frozen=True)
class RolloutState:
    """A rollout of ``revision`` of ``app``: persisted after every step, so a restart resumes."""

    app: str
    revision: str
    plan: RolloutPlan
    clusters: tuple[ClusterState, ...]
    started_at: float
    updated_at: float
    phase: RolloutPhase = RolloutPhase.PROGRESSING
    stage: int = 0  # index into plan.stages (== len when every stage is done)
    batch: int = 0  # index into the current stage's batches
    batch_started: bool = False
    next_at: float | None = None  # the current batch may start at this time (interval)
    paused: bool = False
    approvals: tuple[Approval, ...] = ()
    reason: str = ""
    finished_at: float | None = None

    def cluster(self, name: str) -> ClusterState:
        for state in self.clusters:
            if state.cluster == name:
                return state
        raise KeyError(name)

    def desired(self, cluster: str) -> str | None:
        """The revision this rollout wants ``cluster`` to run: the new one once reached (or
        passed over only for a pin: a pin wins while it exists, see the daemon), its base
        before that and after a rollback."""
        state = self.cluster(cluster)
        if state.phase in REACHED or (state.phase == ClusterPhase.SKIPPED and state.pinned):
            return self.revision_of(state)
        return state.base

    def revision_of(self, cluster: ClusterState) -> str:
        """The revision ``cluster`` runs once this rollout reaches it."""
        return cluster.runs or self.revision

    def batch_count(self, stage: int) -> int:
        return 1 + max((c.batch for c in self.clusters if c.stage == stage), default=-1)

    def batch_members(self, stage: int, batch: int) -> tuple[ClusterState, ...]:
        return tuple(c for c in self.clusters if c.stage == stage and c.batch == batch)

    def approved(self, stage: str) -> Approval | None:
        return next((a for a in self.approvals if a.stage == stage), None)

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    @property
    def running(self) -> bool:
        """Not finished, or rolling back (clusters still move)."""
        return not self.finished or self.phase == RolloutPhase.ROLLING_BACK

    @property
    def current_stage(self) -> PlannedStage | None:
        if self.stage < len(self.plan.stages):
            return self.plan.stages[self.stage]
        return None


@dataclass(frozen=True)
class Observation:
    """What the daemon knows about one target (app x cluster) at ``now``.

    ``health_at`` is when the live objects the health was computed from were read: health
    read at or before the new revision was applied (``applied_at``) says nothing about it.
    """

    applied: str | None  # the revision last applied successfully
    applied_at: float | None = None
    health: str = "Unknown"  # Healthy | Progressing | Degraded | Missing | Suspended | Unknown
    health_since: float | None = None
    health_at: float | None = None
    health_reason: str = ""
    reachable: bool = True
    pinned: bool = False
    targeted: bool = True  # the app is still placed on the (unpaused) cluster at head


class CommandKind(StrEnum):
    APPROVE = "approve"
    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"


@dataclass(frozen=True)
class Command:
    """An operator's request (from `reconciler rollout ...`), for the rollout of ``revision``."""

    kind: CommandKind
    user: str
    at: float
    stage: str | None = None  # approve: the stage; None approves the stage that waits


@dataclass(frozen=True)
class SetRevision:
    """Make ``cluster`` run ``revision`` of the app (None: leave it alone)."""

    cluster: str
    revision: str | None
    reason: str


@dataclass(frozen=True)
class Event:
    """One thing that happened, for the log: a message with its stage and cluster."""

    message: str
    stage: str | None = None
    cluster: str | None = None
    level: str = "info"


@dataclass(frozen=True)
class Step:
    state: RolloutState
    actions: tuple[SetRevision, ...] = ()
    events: tuple[Event, ...] = ()
    wake_at: float | None = None  # the next time a step could change something by the clock
    changed: bool = field(default=False)
