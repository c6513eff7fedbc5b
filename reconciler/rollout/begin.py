"""When a new revision starts a rollout, and which revision each target runs meanwhile (pure).

The unit is what a target renders, not the commit: a commit that leaves an app's render the
same on a cluster changes nothing for it. A rollout starts when the newest revision renders
differently on at least one cluster that already runs the app; clusters that do not run it yet
(a new app, a newly placed cluster) get the newest revision at once.

Supersede, from the start: a newer revision that changes the app again while a rollout runs
stops that rollout where it is and starts a new one from the first stage, with each cluster's
base being what the old rollout left it running. Canaries see every new render first; approvals
are per rollout and asked again. A newer revision that renders the same as the running
rollout's does not disturb it, nor does it restart a halted or rolled back one; its clusters
are made the app's targets again (``members``: a cluster that left is skipped, one that joins
waits for its stage).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.rollout.machine import start, supersede
from reconciler.rollout.members import Refit, Targets, refit, same_render
from reconciler.rollout.model import RolloutState


@dataclass(frozen=True)
class Begin:
    """What a new head revision does to one app's rollouts."""

    started: RolloutState | None = None  # a new rollout to save and step
    superseded: RolloutState | None = None  # the old one, stopped, to save
    reason: str = ""
    refitted: Refit | None = None  # the latest one, its clusters changed (left, joined), to save


def begin(app: str, targets: Targets, latest: RolloutState | None, now: float) -> Begin:
    """Decide whether ``targets.head`` starts a rollout of ``app`` (``latest``: its newest)."""
    head, plan, running, digests = targets.head, targets.plan, targets.running, targets.digests
    if latest is not None:
        refitted = refit(latest, targets, now)
        changes = refitted if refitted.events else None
        if latest.revision == head:
            return Begin(reason="a rollout of this revision exists", refitted=changes)
        # Same render as the latest rollout (running, done or stopped): nothing new to roll
        # out, and a halt or rollback of that render stands. A cluster joining with what it
        # ran before counts too where the rollout's revision was rendered for it (one paused
        # then was not): it waits for the rollout.
        covered = [
            c
            for c in plan.clusters
            if _in(latest, c) or (running.get(c) is not None and (latest.revision, c) in digests)
        ]
        if covered and all(same_render(digests, head, latest.revision, c) for c in covered):
            reason = f"renders as the rollout of {latest.revision[:12]}"
            return Begin(reason=reason, refitted=changes)
    bases = {c: running.get(c) for c in plan.clusters}
    # A cluster that runs no revision of the app yet gets head at once.
    changed = {
        c
        for c in plan.clusters
        if bases[c] is not None and not same_render(digests, head, bases[c], c)
    }
    if not changed:
        return Begin(reason="no cluster that runs the app renders differently")
    unchanged = frozenset(c for c in plan.clusters if c not in changed)
    state = start(app, head, plan, bases, now, unchanged)
    old = supersede(latest, head, now) if latest is not None and not latest.finished else None
    return Begin(started=state, superseded=old, reason="renders differently")


def _in(state: RolloutState, cluster: str) -> bool:
    return any(c.cluster == cluster for c in state.clusters)


def may_supersede(head_behind: bool | None, refetched: bool) -> bool:
    """Whether a replica at ``head`` may decide an app whose rollout another replica decided
    last at another revision (several replicas: each fetches on its own).

    ``head_behind``: whether ``head`` is in that revision's history (None: that revision is not
    known to this replica's Git, not fetched yet). ``refetched``: a fetch this replica started
    after it learned of that revision still returned ``head``. A head behind (or not known to
    be ahead) may be a replica that has not fetched yet: deciding there would take the app back
    to an older commit. It decides once its fetch says the branch really is at ``head`` (taken
    back by a force-push: that revision is rolled out again). A newer head (a descendant) or one
    on another history decides at once.
    """
    return refetched or head_behind is False
