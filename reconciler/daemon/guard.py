"""The mass-prune guard (pure): hold a revision that would prune too much of what we manage.

What this instance manages is what each target (app x cluster) applied last, as the store
records it. A new revision prunes, per target, the objects it applied that the target no longer
renders, and everything of a target that leaves (its app left Git, or no longer places it
there) on a cluster that still gets passes. A revision is held when it would prune more than
``max_objects`` objects *and* more than ``max_percent`` % of the managed ones: small removals
always pass, and so does removing a few apps of a large fleet; ``git rm -r apps`` does not.

Held means nothing of the revision is applied, on any cluster, until someone releases it
(``reconciler release REV``, recorded with who and when) or a later commit raises the limits in
``reconciler.yaml`` (``spec.pruneGuard``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "PruneEstimate", "PruneLimits", "estimate", "held_message"]

TargetKey = tuple[str, str]  # (app, cluster)


@dataclass(frozen=True)
class PruneLimits:
    """A revision may prune up to ``max_objects`` objects, or up to ``max_percent`` % of the
    managed ones if that is more. ``max_percent`` 100 turns the guard off."""

    max_objects: int = 10
    max_percent: float = 25.0

    def allows(self, pruned: int, managed: int) -> bool:
        return pruned <= self.max_objects or pruned * 100 <= self.max_percent * managed


DEFAULT_LIMITS = PruneLimits()


@dataclass(frozen=True)
class PruneEstimate:
    """What a revision would prune: ``pruned`` of ``managed`` objects, on ``clusters``."""

    pruned: int
    managed: int
    clusters: tuple[str, ...]
    by_target: Mapping[TargetKey, int]

    def exceeds(self, limits: PruneLimits) -> bool:
        return not limits.allows(self.pruned, self.managed)


def estimate(
    managed: Mapping[TargetKey, Collection[str]],
    after: Mapping[TargetKey, Collection[str]],
    reconciled: Collection[str],
) -> PruneEstimate:
    """Objects pruned going from ``managed`` to ``after``.

    ``managed``: per target, the objects it applied last. ``after``: per target, the objects it
    holds once the revision is applied. A caller keeps a target's managed objects in ``after``
    where nothing is pruned (``sync.prune: false``, an empty render without ``allowEmpty``, a
    target that stays on its revision). A target missing from ``after`` leaves: all its objects
    go if its cluster is in ``reconciled`` (a cluster that left the repo or is paused gets no
    pass, so nothing is pruned there).
    """
    by_target: dict[TargetKey, int] = {}
    for key, objects in managed.items():
        if key in after:
            gone = len(set(objects) - set(after[key]))
        elif key[1] in reconciled:
            gone = len(set(objects))
        else:
            gone = 0
        if gone:
            by_target[key] = gone
    return PruneEstimate(
        pruned=sum(by_target.values()),
        managed=sum(len(set(objects)) for objects in managed.values()),
        clusters=tuple(sorted({cluster for _, cluster in by_target})),
        by_target=by_target,
    )


def held_message(revision: str, found: PruneEstimate, limits: PruneLimits) -> str:
    """The one line ``status`` and the log show for a held revision, with how to release it."""
    short = revision[:12]
    clusters = len(found.clusters)
    return (
        f"revision {short} held: would prune {found.pruned} of {found.managed} objects on "
        f"{clusters} cluster{'' if clusters == 1 else 's'} (more than {limits.max_objects} "
        f"objects and more than {limits.max_percent:g}% of those managed); release it with "
        f"`reconciler release {short}`, or raise spec.pruneGuard in reconciler.yaml"
    )
