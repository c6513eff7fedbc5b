"""What each target should run: a loaded, rendered revision, with the previous good render kept
for targets whose render failed (pure)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from reconciler.config.model import Repo
from reconciler.daemon.follow import Loaded
from reconciler.daemon.status import short
from reconciler.errors import RenderError
from reconciler.placement import place
from reconciler.render import TargetResult

TargetKey = tuple[str, str]  # (app, cluster)


@dataclass(frozen=True)
class Desired:
    """What the clusters should run: a loaded, rendered revision (or the last good one)."""

    generation: int
    revision: str  # the revision being applied
    head: str  # the newest revision seen (differs when it is invalid)
    repo: Repo
    targets: Mapping[str, tuple[TargetResult, ...]]  # per non-paused cluster
    revisions: Mapping[TargetKey, str | None]  # where each target's objects come from
    invalid: Mapping[TargetKey, str]  # targets whose newest config did not render
    paused: frozenset[TargetKey] = frozenset()
    repo_error: str | None = None  # the head revision does not load: why

    def problem(self, key: TargetKey) -> str | None:
        return self.invalid.get(key) or self.repo_error


def build_desired(loaded: Loaded, previous: Desired | None, generation: int) -> Desired:
    """Desired state from a loaded revision; failed renders keep their previous good render."""
    repo = loaded.repo
    assert repo is not None
    kept: dict[TargetKey, tuple[TargetResult, str | None]] = {}
    if previous is not None:
        for results in previous.targets.values():
            for t in results:
                if t.rendered is not None:
                    kept[(t.app, t.cluster)] = (t, previous.revisions.get((t.app, t.cluster)))
    targets: dict[str, list[TargetResult]] = {
        name: [] for name, cluster in repo.clusters.items() if not cluster.paused
    }
    revisions: dict[TargetKey, str | None] = {}
    invalid: dict[TargetKey, str] = {}
    for target in loaded.rendered:
        key = (target.app, target.cluster)
        if target.cluster not in targets:
            continue
        if target.error is None:
            targets[target.cluster].append(target)
            revisions[key] = loaded.sha
            continue
        good = kept.get(key)
        if good is not None:
            targets[target.cluster].append(good[0])
            revisions[key] = good[1]
            invalid[key] = f"{target.error}; {short(good[1])} stays applied"
        else:
            targets[target.cluster].append(target)
            revisions[key] = loaded.last_good.get(target.app)
            invalid[key] = str(target.error)
    paused = frozenset(
        (app.name, p.cluster)
        for app in repo.apps.values()
        for p in place(repo, app)
        if p.placed and p.paused
    )
    return Desired(
        generation=generation,
        revision=loaded.sha,
        head=loaded.sha,
        repo=repo,
        targets={name: tuple(ts) for name, ts in targets.items()},
        revisions=revisions,
        invalid=invalid,
        paused=paused,
    )


def digest(target: TargetResult) -> str | None:
    """A hash of the objects a target renders (None when it did not render)."""
    if target.rendered is None:
        return None
    text = json.dumps(target.rendered.objects, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RenderBook:
    """The renders of each revision some target may run (head, a rollout's bases, pins)."""

    renders: dict[str, dict[TargetKey, TargetResult]] = field(default_factory=dict)
    _digests: dict[tuple[str, TargetKey], str | None] = field(default_factory=dict)

    def add(self, revision: str, rendered: Iterable[TargetResult]) -> None:
        self.renders[revision] = {(t.app, t.cluster): t for t in rendered}

    def has(self, revision: str) -> bool:
        return revision in self.renders

    def get(self, revision: str, key: TargetKey) -> TargetResult | None:
        return self.renders.get(revision, {}).get(key)

    def digest(self, revision: str, key: TargetKey) -> str | None:
        if (revision, key) not in self._digests:
            target = self.get(revision, key)
            self._digests[(revision, key)] = digest(target) if target is not None else None
        return self._digests[(revision, key)]

    def keep(self, revisions: Collection[str]) -> None:
        """Forget every revision but these (memory stays bounded as commits go by)."""
        for sha in list(self.renders):
            if sha not in revisions:
                del self.renders[sha]
        self._digests = {k: v for k, v in self._digests.items() if k[0] in revisions}


def with_revisions(desired: Desired, chosen: Mapping[TargetKey, str], book: RenderBook) -> Desired:
    """``desired`` with each target in ``chosen`` rendered from that revision instead.

    A revision whose render is not loaded (yet) makes the target an error: nothing is applied
    or pruned for it until it is, never the head's objects in its place.
    """
    targets = {cluster: list(results) for cluster, results in desired.targets.items()}
    revisions = dict(desired.revisions)
    invalid = dict(desired.invalid)
    for (app, cluster), revision in sorted(chosen.items()):
        if cluster not in targets or revisions.get((app, cluster)) == revision:
            continue
        render = book.get(revision, (app, cluster))
        if render is None or render.rendered is None:
            why = f"revision {short(revision)} is not loaded yet: nothing is applied until it is"
            render = TargetResult(app, cluster, error=RenderError(why, app=app, cluster=cluster))
            invalid[(app, cluster)] = why
        else:
            invalid.pop((app, cluster), None)
        results = [t for t in targets[cluster] if t.app != app]
        targets[cluster] = sorted([*results, render], key=lambda t: t.app)
        revisions[(app, cluster)] = revision
    return replace(
        desired,
        targets={name: tuple(results) for name, results in targets.items()},
        revisions=revisions,
        invalid=invalid,
    )
