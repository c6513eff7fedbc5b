"""The rollout state machine: (state, observations, commands, now) -> (state, actions, events).

Pure and deterministic: the caller supplies the clock and persists the returned state before it
acts on it, so a restart resumes from exactly the last step. What each cluster should run is a
function of the state (``RolloutState.desired``); the actions only name the changes of a step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from reconciler.rollout.model import (
    IN_FLIGHT,
    REACHED,
    Approval,
    ClusterPhase,
    ClusterState,
    Command,
    CommandKind,
    Event,
    Observation,
    OnFailure,
    PlannedStage,
    RolloutPhase,
    RolloutPlan,
    RolloutState,
    SetRevision,
    Step,
)

HEALTHY = "Healthy"
DEGRADED = "Degraded"
# A gate passes when every object works or is deliberately not running (a suspended CronJob,
# a paused Deployment): a target's health is its worst object's, so Suspended means that.
PASSING = frozenset({HEALTHY, "Suspended"})
_UNSEEN = Observation(applied=None, reachable=False, health_reason="no observation")


def start(
    app: str,
    revision: str,
    plan: RolloutPlan,
    bases: Mapping[str, str | None],
    now: float,
    unchanged: frozenset[str] = frozenset(),
) -> RolloutState:
    """A new rollout of ``revision``: every planned cluster Pending at its base revision.

    Clusters in ``unchanged`` render the same at ``revision`` as at their base: they move at
    once and take no place in a batch.
    """
    clusters: list[ClusterState] = []
    for index, stage in enumerate(plan.stages):
        changed = [c for c in stage.clusters if c not in unchanged]
        size = max(1, stage.max_concurrent)
        for cluster in stage.clusters:
            base = bases.get(cluster)
            if cluster in unchanged:
                clusters.append(
                    ClusterState.at_once(
                        cluster,
                        index,
                        base,
                        now,
                        "renders the same: at once"
                        if base is not None
                        else "not running the app yet: at once",
                        unchanged=True,
                    )
                )
            else:
                clusters.append(ClusterState(cluster, index, changed.index(cluster) // size, base))
    return RolloutState(app, revision, plan, tuple(clusters), started_at=now, updated_at=now)


def supersede(state: RolloutState, by: str, now: float) -> RolloutState:
    """Stop ``state`` for a newer revision. Its clusters keep what they were told to run; the
    newer rollout starts from its first stage with those as its bases."""
    if state.finished:
        return state
    return replace(
        state,
        phase=RolloutPhase.SUPERSEDED,
        reason=f"superseded by {by[:12]}",
        finished_at=now,
        updated_at=now,
    )


def step(
    state: RolloutState,
    observations: Mapping[str, Observation],
    commands: Sequence[Command],
    now: float,
    watching_since: float | None = None,
) -> Step:
    """Advance ``state`` as far as ``now`` and the observations allow.

    ``watching_since``: when the caller started observing (a daemon's start). A cluster's
    progress deadline counts from no earlier than that: health from before it is not known, so
    a restart gives clusters in flight a whole deadline again instead of failing them at once.
    """
    run = _Run(state, observations, now, watching_since)
    for command in commands:
        run.command(command)
    if run.state.phase == RolloutPhase.ROLLING_BACK:
        run.watch_rollback()
    elif not run.state.finished:
        run.judge(run.observe())
        if run.may_advance():
            run.advance()
    return run.result(state)


class _Run:
    """One step's working copy of the state."""

    def __init__(
        self,
        state: RolloutState,
        observations: Mapping[str, Observation],
        now: float,
        watching_since: float | None = None,
    ):
        self.state = state
        self.obs = observations
        self.now = now
        self.watching_since = watching_since
        self.clusters = {c.cluster: c for c in state.clusters}
        self.actions: list[SetRevision] = []
        self.events: list[Event] = []

    # -- helpers ------------------------------------------------------------------------------

    def _stage_name(self, index: int) -> str | None:
        stages = self.state.plan.stages
        return stages[index].name if 0 <= index < len(stages) else None

    def _set(self, cluster: ClusterState, **changes: object) -> ClusterState:
        updated = replace(cluster, **changes)  # type: ignore[arg-type]
        self.clusters[cluster.cluster] = updated
        return updated

    def _event(
        self, message: str, cluster: ClusterState | None = None, level: str = "info"
    ) -> None:
        stage = cluster.stage if cluster is not None else self.state.stage
        name = cluster.cluster if cluster is not None else None
        self.events.append(Event(message, self._stage_name(stage), name, level))

    def _finish(self, phase: RolloutPhase, reason: str) -> None:
        self.state = replace(self.state, phase=phase, reason=reason, finished_at=self.now)

    def _sync_clusters(self) -> None:
        self.state = replace(
            self.state, clusters=tuple(self.clusters[c.cluster] for c in self.state.clusters)
        )

    def may_advance(self) -> bool:
        return not self.state.finished and self.state.phase != RolloutPhase.ROLLING_BACK

    # -- operator commands --------------------------------------------------------------------

    def command(self, command: Command) -> None:
        state = self.state
        if state.finished:
            self._event(f"{command.kind} by {command.user} ignored: rollout {state.phase}", None)
            return
        if command.kind == CommandKind.APPROVE:
            stage = command.stage
            if stage is None:
                waiting = state.phase == RolloutPhase.WAITING_APPROVAL
                stage = self._stage_name(state.stage) if waiting else None
            if stage is None or stage not in {s.name for s in state.plan.stages}:
                what = f"stage {command.stage}" if command.stage else "no stage waits"
                self._event(f"approval by {command.user} ignored: {what}", None, "warning")
                return
            if state.approved(stage) is None:
                approval = Approval(stage, command.user, command.at)
                self.state = replace(state, approvals=(*state.approvals, approval))
                self.events.append(Event(f"approved by {command.user}", stage))
        elif command.kind == CommandKind.PAUSE:
            self.state = replace(state, paused=True)
            self._event(f"paused by {command.user}")
        elif command.kind == CommandKind.RESUME:
            self.state = replace(state, paused=False)
            self._event(f"resumed by {command.user}")
        elif command.kind == CommandKind.ABORT:
            self._finish(RolloutPhase.ABORTED, f"aborted by {command.user}")
            self._event(f"aborted by {command.user}; clusters keep what they run", None, "warning")

    # -- clusters in flight -------------------------------------------------------------------

    def observe(self) -> list[ClusterState]:
        """Move in-flight clusters on by what is observed; return those that failed now."""
        failed: list[ClusterState] = []
        for cluster in list(self.clusters.values()):
            if cluster.phase not in IN_FLIGHT:
                continue
            stage = self.state.plan.stages[cluster.stage]
            updated = self._observe_one(cluster, stage, self.obs.get(cluster.cluster, _UNSEEN))
            if updated.phase == ClusterPhase.FAILED:
                failed.append(updated)
        self._sync_clusters()
        return failed

    def _observe_one(self, c: ClusterState, stage: PlannedStage, o: Observation) -> ClusterState:
        now = self.now
        if o.pinned:
            return self._skip_pinned(c)
        revision = self.state.revision_of(c)
        applied = o.applied == revision
        # Health read before the apply describes the old objects.
        fresh = (
            applied
            and o.reachable
            and o.health_at is not None
            and (o.applied_at is None or o.health_at > o.applied_at)
        )
        if fresh and o.health == DEGRADED and not _inherited(o):
            reason = f"Degraded: {o.health_reason}".rstrip(": ")
            self._event(f"failed: {reason}", c, "warning")
            return self._set(c, phase=ClusterPhase.FAILED, finished_at=now, reason=reason)
        if fresh and o.health in PASSING:
            marks = [t for t in (o.health_since, o.applied_at, c.started_at) if t is not None]
            since = max(marks) if marks else now
            if c.phase != ClusterPhase.SOAKING:
                c = self._set(c, phase=ClusterPhase.SOAKING, healthy_since=since, reason="")
                if stage.min_healthy_time > 0:
                    self._event(f"healthy; soaking {stage.min_healthy_time:g}s", c)
            if now >= (c.healthy_since or since) + stage.min_healthy_time:
                self._event("succeeded", c)
                return self._set(c, phase=ClusterPhase.SUCCEEDED, finished_at=now, reason="")
            return c
        why = _waiting_for(o, applied, revision)
        if c.phase == ClusterPhase.SOAKING:
            # It was healthy: the deadline to be healthy again counts from now.
            self._event(f"no longer healthy ({why}); soak restarts", c, "warning")
            c = self._set(c, phase=ClusterPhase.PROGRESSING, healthy_since=None, progress_from=now)
        if now >= deadline_of(c, stage, self.watching_since):
            reason = f"{why} after the progress deadline ({stage.progress_deadline:g}s)"
            self._event(f"failed: {reason}", c, "warning")
            return self._set(c, phase=ClusterPhase.FAILED, finished_at=now, reason=reason)
        return self._set(c, reason=why)

    def _skip_pinned(self, c: ClusterState) -> ClusterState:
        """A pin holds ``c`` when the rollout reaches it: passed over while the pin exists;
        released, it runs the new revision (``RolloutState.desired``)."""
        revision = self.state.revision_of(c)[:12]
        self._event(f"pinned: skipped by the rollout; runs {revision} once released", c)
        return self._set(
            c,
            phase=ClusterPhase.SKIPPED,
            finished_at=self.now,
            reason=f"pinned: runs {revision} once the pin is released",
            pinned=True,
        )

    # -- failure policy -----------------------------------------------------------------------

    def judge(self, newly_failed: list[ClusterState]) -> None:
        """Apply the failure policy of the stage whose clusters just failed."""
        for index in sorted({c.stage for c in newly_failed}):
            if self.state.finished or self.state.phase == RolloutPhase.ROLLING_BACK:
                return
            stage = self.state.plan.stages[index]
            failed = [
                c
                for c in self.clusters.values()
                if c.stage == index and c.phase == ClusterPhase.FAILED
            ]
            if len(failed) <= stage.max_failures:
                continue
            names = ", ".join(c.cluster for c in failed)
            summary = (
                f"stage {stage.name}: {len(failed)} failed ({names}), "
                f"maxFailures {stage.max_failures}"
            )
            if stage.on_failure == OnFailure.CONTINUE:
                self.events.append(Event(f"{summary}; continuing", stage.name, level="warning"))
            elif stage.on_failure == OnFailure.HALT:
                self._finish(RolloutPhase.HALTED, summary)
                self.events.append(Event(f"{summary}; halted", stage.name, level="warning"))
            else:
                self.events.append(Event(f"{summary}; rolling back", stage.name, level="warning"))
                self.roll_back(summary)

    def roll_back(self, reason: str) -> None:
        rolling = False
        for c in list(self.clusters.values()):
            # A cluster passed over for a pin would run the new revision once released: it
            # goes back too (at once if it is still pinned, see ``watch_rollback``).
            skipped_for_pin = c.phase == ClusterPhase.SKIPPED and c.pinned
            if (c.phase not in REACHED and not skipped_for_pin) or c.unchanged:
                continue
            if c.base is None:
                self._event("no earlier revision to roll back to: left as it is", c, "warning")
                continue
            if c.base == self.state.revision:
                continue
            self._set(
                c,
                phase=ClusterPhase.ROLLING_BACK,
                reason=f"rolling back to {c.base[:12]}",
                pinned=False,
            )
            self.actions.append(SetRevision(c.cluster, c.base, "rollback"))
            self._event(f"rolling back to {c.base[:12]}", c, "warning")
            rolling = True
        self._sync_clusters()
        if rolling:
            self.state = replace(self.state, phase=RolloutPhase.ROLLING_BACK, reason=reason)
        else:
            self._finish(RolloutPhase.ROLLED_BACK, reason)

    def watch_rollback(self) -> None:
        """A cluster is rolled back once it applied its base, or at once when the rollback
        cannot wait for that: a pin holds it elsewhere (it runs its base once released), or
        the app is no longer placed on it."""
        for c in list(self.clusters.values()):
            if c.phase != ClusterPhase.ROLLING_BACK:
                continue
            o = self.obs.get(c.cluster, _UNSEEN)
            base = (c.base or "")[:12]
            if o.applied is not None and o.applied == c.base:
                self._set(c, phase=ClusterPhase.ROLLED_BACK, finished_at=self.now, reason="")
                self._event("rolled back", c)
            elif o.pinned:
                reason = f"pinned: not waited for; runs {base} once the pin is released"
                self._set(c, phase=ClusterPhase.ROLLED_BACK, finished_at=self.now, reason=reason)
                self._event(f"rolled back: {reason}", c, "warning")
            elif not o.targeted:
                reason = "no longer a target (unplaced, paused or gone): not waited for"
                self._set(c, phase=ClusterPhase.ROLLED_BACK, finished_at=self.now, reason=reason)
                self._event(f"rolled back: {reason}", c, "warning")
        self._sync_clusters()
        if not any(c.phase == ClusterPhase.ROLLING_BACK for c in self.clusters.values()):
            self._finish(RolloutPhase.ROLLED_BACK, self.state.reason)
            self._event("rolled back", None, "warning")

    # -- moving on ----------------------------------------------------------------------------

    def advance(self) -> None:
        while True:
            state = self.state
            stages = state.plan.stages
            if state.stage >= len(stages):
                self._finish(RolloutPhase.SUCCEEDED, "")
                self._event("succeeded")
                return
            stage = stages[state.stage]
            batches = state.batch_count(state.stage)
            if state.batch >= batches:
                self._next_stage(stage, batches)
                continue
            if not state.batch_started:
                if state.batch == 0 and stage.approval and state.approved(stage.name) is None:
                    if state.phase != RolloutPhase.WAITING_APPROVAL:
                        self._event("waits for manual approval (reconciler rollout approve)")
                    self.state = replace(state, phase=RolloutPhase.WAITING_APPROVAL)
                    return
                if state.next_at is not None and self.now < state.next_at:
                    self.state = replace(state, phase=RolloutPhase.WAITING)
                    return
                if state.paused:
                    return
                self._start_batch(stage)
                continue
            members = state.batch_members(state.stage, state.batch)
            if any(c.phase in IN_FLIGHT for c in members):
                self.state = replace(state, phase=RolloutPhase.PROGRESSING)
                return
            # The batch is done: the next one waits out the interval.
            last = state.batch + 1 >= batches
            wait = None if last or stage.interval <= 0 else self.now + stage.interval
            self.state = replace(state, batch=state.batch + 1, batch_started=False, next_at=wait)

    def _next_stage(self, stage: PlannedStage, batches: int) -> None:
        if batches:
            self._event("stage done")
        else:
            self._event("nothing to change in this stage")
        self.state = replace(
            self.state, stage=self.state.stage + 1, batch=0, batch_started=False, next_at=None
        )

    def _start_batch(self, stage: PlannedStage) -> None:
        state = self.state
        number = f"batch {state.batch + 1}/{state.batch_count(state.stage)}"
        for c in state.batch_members(state.stage, state.batch):
            o = self.obs.get(c.cluster)
            if c.phase != ClusterPhase.PENDING:
                continue  # skipped before its batch (it left the app's targets)
            if o is not None and o.pinned:
                self._skip_pinned(c)
                continue
            self._set(
                c,
                phase=ClusterPhase.PROGRESSING,
                started_at=self.now,
                progress_from=None,
                reason="applying",
            )
            revision = state.revision_of(c)
            self.actions.append(SetRevision(c.cluster, revision, f"{stage.name} {number}"))
            self._event(f"{number}: applying {revision[:12]}", c)
        self._sync_clusters()
        self.state = replace(
            self.state, batch_started=True, next_at=None, phase=RolloutPhase.PROGRESSING
        )

    # -- result -------------------------------------------------------------------------------

    def result(self, before: RolloutState) -> Step:
        self._sync_clusters()
        state = self.state
        changed = state != before
        if changed:
            state = replace(state, updated_at=self.now)
        wake = wake_at(state, self.watching_since)
        return Step(state, tuple(self.actions), tuple(self.events), wake, changed)


def _inherited(o: Observation) -> bool:
    """Degraded since before the revision was applied: the state the revision may fix (a
    Deployment past its deadline for want of the ConfigMap this revision adds). Like any state
    short of healthy it fails the cluster at the progress deadline, not at once."""
    return (
        o.health_since is not None and o.applied_at is not None and o.health_since <= o.applied_at
    )


def _waiting_for(o: Observation, applied: bool, revision: str) -> str:
    if not o.reachable:
        return "unreachable"
    if not applied:
        return f"not yet applied ({revision[:12]})"
    if o.health_at is None or (o.applied_at is not None and o.health_at <= o.applied_at):
        return "health not yet read"
    reason = f": {o.health_reason}" if o.health_reason else ""
    if o.health == DEGRADED and _inherited(o):
        return f"{o.health} since before the apply{reason}"
    return f"{o.health}{reason}"


def deadline_of(c: ClusterState, stage: PlannedStage, watching_since: float | None) -> float:
    """When an in-flight cluster not healthy yet fails: ``progressDeadline`` after it was told
    to update, or after it dropped out of its soak, and never before a whole deadline has
    passed since the caller started watching (``step``'s ``watching_since``)."""
    marks = [t for t in (c.progress_from or c.started_at, watching_since) if t is not None]
    return (max(marks) if marks else math.inf) + stage.progress_deadline


def wake_at(state: RolloutState, watching_since: float | None = None) -> float | None:
    """When the clock alone could next change this rollout (a deadline, a soak, an interval)."""
    if state.finished or state.phase == RolloutPhase.ROLLING_BACK:
        return None
    times: list[float] = []
    if state.next_at is not None and not state.batch_started:
        times.append(state.next_at)
    for c in state.clusters:
        stage = state.plan.stages[c.stage]
        if c.phase == ClusterPhase.PROGRESSING and c.started_at is not None:
            times.append(deadline_of(c, stage, watching_since))
        elif c.phase == ClusterPhase.SOAKING and c.healthy_since is not None:
            times.append(c.healthy_since + stage.min_healthy_time)
    return min(times) if times else None
