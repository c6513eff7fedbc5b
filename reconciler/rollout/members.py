"""Clusters that leave or join an app's targets while its rollout exists (pure).

A commit that only pauses, unplaces, removes or breaks a cluster (or undoes that) renders the
app the same and starts no rollout, but the rollout's clusters are no longer the app's targets:

- a cluster that left (paused, no longer placed, removed from the inventory, its cluster file
  broken) before the rollout was done with it is **skipped**, with the reason: it is not
  failed, and the rollout goes on with the others;
- a cluster that joins (back) and ran the app before keeps what it ran until the rollout reaches
  it: it takes a place in its stage (by the strategy's stage targets; in the stage in flight when
  its own is done), in a batch not started yet. One that renders the same at the rollout's
  revision as at what it runs moves at once. After the rollout is over it gets the revision at
  once if the rollout succeeded, else it keeps what it runs (a halt stands for it too);
- a cluster that never ran the app is none of the rollout's business: it takes the newest
  revision at once (README, "When a rollout starts").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from reconciler.config.model import Repo
from reconciler.rollout.model import (
    IN_FLIGHT,
    ClusterPhase,
    ClusterState,
    Event,
    PlannedStage,
    RolloutPhase,
    RolloutPlan,
    RolloutState,
)

Digest = str  # a hash of one target's rendered objects


@dataclass(frozen=True)
class Targets:
    """An app's targets as the newest revision ``head`` places them: what a new rollout starts
    from and an existing one is fitted to.

    ``running`` maps each cluster of ``plan`` to the revision it should run now (None: not the
    app yet), as the latest rollout left it; ``digests`` maps (revision, cluster) to the render
    digest, for ``head``, every revision in ``running`` and the latest rollout's (a missing one
    counts as different); ``left`` says why a cluster of the latest rollout is no longer in
    ``plan`` (paused, unplaced, ...).
    """

    head: str
    plan: RolloutPlan
    running: Mapping[str, str | None]
    digests: Mapping[tuple[str, str], Digest]
    left: Mapping[str, str] = field(default_factory=dict)


def why_left(repo: Repo, cluster: str, broken: Collection[str]) -> str:
    """Why ``cluster`` is no longer one of an app's targets at ``repo`` (``broken``: clusters
    whose file does not load there)."""
    if cluster in broken:
        return "its cluster file is broken"
    found = repo.clusters.get(cluster)
    if found is None:
        return "removed from the inventory"
    if found.paused:
        return "paused"
    return "no longer placed"


@dataclass(frozen=True)
class Refit:
    state: RolloutState
    events: tuple[Event, ...] = ()


def same_render(
    digests: Mapping[tuple[str, str], Digest], a: str, b: str | None, cluster: str
) -> bool:
    """Whether revisions ``a`` and ``b`` render the same on ``cluster`` (a missing digest
    counts as different)."""
    if b is None:
        return False
    if a == b:
        return True
    left, right = digests.get((a, cluster)), digests.get((b, cluster))
    return left is not None and left == right


def refit(state: RolloutState, targets: Targets, now: float) -> Refit:
    """``state`` with its clusters made the app's ``targets`` again.

    A cluster joining that the rollout's revision was not rendered for (it was paused then)
    runs ``head`` instead once reached, which renders as the rollout's revision on the
    rollout's clusters (else ``head`` would have started a rollout of its own).
    """
    clusters = list(state.clusters)
    stages = list(state.plan.stages)
    events: list[Event] = []
    planned = set(targets.plan.clusters)
    active = not state.finished and state.phase != RolloutPhase.ROLLING_BACK

    def stage_name(index: int) -> str:
        return stages[index].name

    if active:
        for i, c in enumerate(clusters):
            if c.cluster in planned or c.phase not in (ClusterPhase.PENDING, *IN_FLIGHT):
                continue
            why = targets.left.get(c.cluster, "no longer a target of the app")
            clusters[i] = replace(
                c, phase=ClusterPhase.SKIPPED, finished_at=now, reason=why, left=True
            )
            events.append(Event(f"skipped: {why}", stage_name(c.stage), c.cluster))

    at = {c.cluster: i for i, c in enumerate(clusters)}
    for name in targets.plan.clusters:
        found = at.get(name)
        old = clusters[found] if found is not None else None
        if old is not None and not (old.left and old.phase == ClusterPhase.SKIPPED):
            continue
        base = old.base if old is not None else targets.running.get(name)
        if base is None:
            continue  # never ran the app: it takes the newest revision at once
        runs = old.runs if old is not None else None
        if runs is None and (state.revision, name) not in targets.digests:
            runs = targets.head
        revision = runs or state.revision
        if active:
            index, stage = _stage_for(stages, targets.plan, name, state)
            if index == len(stages):
                stages.append(stage)
        else:
            index = old.stage if old is not None else len(stages) - 1
        if same_render(targets.digests, revision, base, name):
            joined = ClusterState.at_once(
                name,
                index,
                base,
                now,
                "joined; renders the same: at once",
                unchanged=True,
                runs=runs,
            )
        elif state.phase == RolloutPhase.SUCCEEDED:
            joined = ClusterState.at_once(
                name, index, base, now, "joined after the rollout succeeded: at once", runs=runs
            )
        elif not active:
            joined = ClusterState(
                name,
                index,
                -1,
                base,
                ClusterPhase.SKIPPED,
                finished_at=now,
                reason=f"joined; the rollout is {state.phase}: keeps {base[:12]}",
            )
        else:
            others = [c for c in clusters if c.cluster != name]
            batch = _batch_for(state, others, index, stages[index])
            joined = ClusterState(
                name,
                index,
                batch,
                base,
                reason="joined the rollout: waits for its stage",
                runs=runs,
            )
        stages = [replace(s, clusters=tuple(c for c in s.clusters if c != name)) for s in stages]
        target = stages[joined.stage]
        stages[joined.stage] = replace(target, clusters=(*target.clusters, name))
        events.append(Event(joined.reason, stages[joined.stage].name, name))
        if found is None:
            at[name] = len(clusters)
            clusters.append(joined)
        else:
            clusters[found] = joined

    if not events:
        return Refit(state)
    refitted = replace(
        state,
        plan=replace(state.plan, stages=tuple(stages)),
        clusters=tuple(clusters),
        updated_at=now,
    )
    return Refit(refitted, tuple(events))


def _stage_for(
    stages: list[PlannedStage], plan: RolloutPlan, name: str, state: RolloutState
) -> tuple[int, PlannedStage]:
    """The stage ``name`` joins: its stage in ``plan`` by name (appended at the end when the
    rollout's plan has none such), or the stage in flight when that one is done."""
    own = plan.stage_of(name)
    assert own is not None
    wanted = plan.stages[own]
    for index, stage in enumerate(stages):
        if stage.name == wanted.name:
            if index < state.stage:
                return state.stage, stages[state.stage]
            return index, stage
    return len(stages), replace(wanted, clusters=())


def _batch_for(
    state: RolloutState, others: list[ClusterState], index: int, stage: PlannedStage
) -> int:
    """A batch of stage ``index`` not started yet: its last one if it has room, else a new one
    after it."""
    batches = [c.batch for c in others if c.stage == index and c.batch >= 0]
    count = 1 + max(batches, default=-1)
    last = count - 1

    def started(batch: int) -> bool:
        if index != state.stage:
            return index < state.stage
        return batch < state.batch or (batch == state.batch and state.batch_started)

    if last >= 0 and not started(last) and batches.count(last) < max(1, stage.max_concurrent):
        return last
    return max(count, state.batch if index == state.stage else 0)
