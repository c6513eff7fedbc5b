"""What each target should run (pure): per target (app x cluster), a revision and its render.

The unit of state is the target. A new revision moves every target whose config loaded and
rendered there; a target whose app, cluster or group file is broken at that revision (see
``daemon.blast``), or whose render failed, stays on the revision it runs, rendered from that
revision (kept from the previous ``Desired``, or after a restart loaded from the revision the
store says it should run). ``revisions`` says which revision each target runs.

For rollouts: this is where "target (app, cluster) should run revision R" is decided, once per
installed revision. ``build_desired`` resolves each target to the newest revision it can run;
a rollout that keeps a target on its base revision passes ``choose`` (below) returning the
revision that target runs now, and the target keeps its render from ``previous`` exactly as a
held one does. Each cluster's pass reconciles with ``view(cluster)``: the cluster and the apps as
of the revisions its targets run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property

from reconciler.config.model import App, Cluster, Repo
from reconciler.daemon.blast import Holds
from reconciler.daemon.follow import Loaded
from reconciler.daemon.status import short
from reconciler.errors import RenderError
from reconciler.placement import place
from reconciler.render import TargetResult
from reconciler.store.rows import State, StatusRow

TargetKey = tuple[str, str]  # (app, cluster)
# (target, the newest revision it can run, the revision it runs now) -> the one it should run
Choose = Callable[[TargetKey, str, str | None], str | None]


@dataclass(frozen=True)
class Desired:
    """What the clusters should run: per target a revision and its render.

    ``revision`` is the newest revision installed (most targets run it), ``head`` the newest
    seen (differs when it is invalid or held). ``repo`` is ``revision``'s repo as far as it
    loaded; ``views`` per cluster the repo its pass uses (that cluster, and each app as of the
    revision its target runs there); a cluster without a view uses ``repo``.
    """

    generation: int
    revision: str  # the revision being applied
    head: str  # the newest revision seen (differs when it is invalid)
    repo: Repo
    targets: Mapping[str, tuple[TargetResult, ...]]  # per non-paused cluster
    revisions: Mapping[TargetKey, str | None]  # where each target's objects come from
    invalid: Mapping[TargetKey, str]  # targets held on their revision, and why
    paused: frozenset[TargetKey] = frozenset()
    repo_error: str | None = None  # the head revision does not load: why
    views: Mapping[str, Repo] = field(default_factory=dict)
    hold: str | None = None  # the head is held by the prune guard: why (nothing of it applies)

    def problem(self, key: TargetKey) -> str | None:
        return self.hold or self.invalid.get(key) or self.repo_error

    def view(self, cluster: str) -> Repo:
        """The repo a pass on ``cluster`` reconciles with."""
        return self.views.get(cluster, self.repo)

    def revisions_on(self, cluster: str) -> dict[TargetKey, str | None]:
        """``revisions`` of the targets on ``cluster`` (indexed once: a pass per cluster would
        otherwise walk every target of the fleet)."""
        return dict(self._revisions_by_cluster.get(cluster, {}))

    @cached_property
    def _revisions_by_cluster(self) -> dict[str, dict[TargetKey, str | None]]:
        out: dict[str, dict[TargetKey, str | None]] = {}
        for key, revision in self.revisions.items():
            out.setdefault(key[1], {})[key] = revision
        return out

    def runs(self, key: TargetKey) -> tuple[TargetResult, str | None, Repo] | None:
        """What target ``key`` runs: its render, revision and view, if it has a render."""
        for target in self.targets.get(key[1], ()):
            if target.app == key[0] and target.rendered is not None:
                return target, self.revisions.get(key), self.view(key[1])
        return None


@dataclass
class _Current:
    """What one target runs now, with the app and cluster as of that revision."""

    result: TargetResult
    revision: str | None
    app: App | None
    cluster: Cluster | None


def _current(
    key: TargetKey, previous: Desired | None, loaded: Loaded, stored: Mapping[TargetKey, str | None]
) -> _Current | None:
    if previous is not None:
        runs = previous.runs(key)
        if runs is not None:
            result, revision, view = runs
            return _Current(result, revision, view.apps.get(key[0]), view.clusters.get(key[1]))
    sha = stored.get(key)
    other = loaded.others.get(sha) if sha is not None else None
    if other is None or other.repo is None:
        return None
    for target in other.rendered:
        if (target.app, target.cluster) == key and target.rendered is not None:
            repo = other.repo
            return _Current(target, sha, repo.apps.get(key[0]), repo.clusters.get(key[1]))
    return None


def build_desired(
    loaded: Loaded,
    previous: Desired | None,
    generation: int,
    holds: Holds | None = None,
    stored: Mapping[TargetKey, str | None] | None = None,
    choose: Choose | None = None,
) -> Desired:
    """Desired state from a loaded revision (see the module docstring).

    ``holds``: what the revision's broken files hold. ``stored``: the revision each target
    should run as the store remembers it (a restart). ``choose``: the revision a target should
    run given the newest it can run and the one it runs now (default: the newest).
    """
    repo = loaded.repo
    assert repo is not None
    holds = holds or Holds()
    stored = stored or {}
    targets: dict[str, list[TargetResult]] = {
        name: [] for name, cluster in repo.clusters.items() if not cluster.paused
    }
    clusters: dict[str, Cluster] = {n: repo.clusters[n] for n in targets}
    apps: dict[str, dict[str, App]] = {n: dict(repo.apps) for n in targets}
    revisions: dict[TargetKey, str | None] = {}
    invalid: dict[TargetKey, str] = {}

    def keep(key: TargetKey, why: str, failed: TargetResult | None) -> None:
        """Target ``key`` stays on what it runs (``why``); ``failed``: its render here."""
        app, name = key
        now = _current(key, previous, loaded, stored)
        if now is None or (name not in targets and now.cluster is None):
            if name not in targets:
                return  # a held cluster nothing is known about: no pass, nothing pruned
            error = RenderError(why, app=app, cluster=name)
            targets[name].append(failed or TargetResult(app, name, error=error))
            revisions[key] = loaded.last_good.get(app) or stored.get(key)
            invalid[key] = why
            return
        if name not in targets:
            assert now.cluster is not None
            targets[name], clusters[name], apps[name] = [], now.cluster, dict(repo.apps)
        targets[name].append(now.result)
        if now.app is not None:
            apps[name][app] = now.app
        revisions[key] = now.revision
        invalid[key] = f"{why}; {short(now.revision)} stays applied"

    for target in loaded.rendered:
        key = (target.app, target.cluster)
        if target.cluster not in targets:
            continue
        why = holds.reason(key)
        if why is None and target.error is None:
            running = _current(key, previous, loaded, stored) if choose else None
            wanted = (
                choose(key, loaded.sha, running.revision if running else None)
                if (choose)
                else loaded.sha
            )
            if wanted == loaded.sha or running is None:
                targets[target.cluster].append(target)
                revisions[key] = loaded.sha
            else:
                keep(key, f"waits for revision {short(loaded.sha)}", None)
                invalid.pop(key, None)
            continue
        keep(key, why or str(target.error), target if target.error is not None else None)

    known: set[TargetKey] = set(stored)
    if previous is not None:
        known |= {(t.app, name) for name, ts in previous.targets.items() for t in ts}
    for key in sorted(known - set(revisions)):
        why = holds.reason(key)
        if why is not None:
            keep(key, why, None)

    paused = frozenset(
        (app.name, p.cluster)
        for app in repo.apps.values()
        for p in place(repo, app)
        if p.placed and p.paused
    )
    views = {
        name: Repo(
            root=repo.root,
            clusters={name: clusters[name]},
            groups=repo.groups,
            apps=apps[name],
            settings=repo.settings,
        )
        for name in targets
    }
    return Desired(
        generation=generation,
        revision=loaded.sha,
        head=loaded.sha,
        repo=repo,
        targets={name: tuple(ts) for name, ts in targets.items()},
        revisions=revisions,
        invalid=invalid,
        paused=paused,
        views=views,
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
    repos: dict[str, Repo] = field(default_factory=dict)
    _digests: dict[tuple[str, TargetKey], str | None] = field(default_factory=dict)

    def add(self, revision: str, rendered: Iterable[TargetResult], repo: Repo | None) -> None:
        self.renders[revision] = {(t.app, t.cluster): t for t in rendered}
        # A revision rendered again (its charts resolved at last): digests of its old renders go.
        self._digests = {k: v for k, v in self._digests.items() if k[0] != revision}
        if repo is not None:
            self.repos[revision] = repo

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
                self.repos.pop(sha, None)
        self._digests = {k: v for k, v in self._digests.items() if k[0] in revisions}


def with_revisions(desired: Desired, chosen: Mapping[TargetKey, str], book: RenderBook) -> Desired:
    """``desired`` with each target in ``chosen`` rendered from that revision instead.

    A revision whose render is not loaded (yet) makes the target an error: nothing is applied
    or pruned for it until it is, never the head's objects in its place.
    """
    targets = {cluster: list(results) for cluster, results in desired.targets.items()}
    revisions = dict(desired.revisions)
    invalid = dict(desired.invalid)
    views = dict(desired.views)
    for (app, cluster), revision in sorted(chosen.items()):
        if cluster not in targets or revisions.get((app, cluster)) == revision:
            continue
        render = book.get(revision, (app, cluster))
        older = book.repos.get(revision)
        if render is None or render.rendered is None or older is None:
            why = f"revision {short(revision)} is not loaded yet: nothing is applied until it is"
            render = TargetResult(app, cluster, error=RenderError(why, app=app, cluster=cluster))
            invalid[(app, cluster)] = why
        else:
            invalid.pop((app, cluster), None)
            view = desired.view(cluster)
            if app in older.apps:  # the app as of the revision it runs (its sync policy)
                views[cluster] = replace(view, apps={**view.apps, app: older.apps[app]})
        results = [t for t in targets[cluster] if t.app != app]
        targets[cluster] = sorted([*results, render], key=lambda t: t.app)
        revisions[(app, cluster)] = revision
    return replace(
        desired,
        targets={name: tuple(results) for name, results in targets.items()},
        revisions=revisions,
        invalid=invalid,
        views=views,
    )


# ---- status rows a decision about desired state implies (pure; ``record`` writes them) ------


def timed_out_rows(desired: Desired, cluster: str, message: str, now: datetime) -> list[StatusRow]:
    """The cluster's targets after its pass overran: failed, or still invalid (and why)."""
    rows = []
    for target in desired.targets.get(cluster, ()):
        key = (target.app, cluster)
        problem = desired.problem(key)
        rows.append(
            StatusRow(
                app=target.app,
                cluster=cluster,
                state=State.INVALID_CONFIG if problem else State.FAILED,
                message=f"{problem} (meanwhile: {message})" if problem else message,
                revision=desired.revisions.get(key),
                updated_at=now,
            )
        )
    return rows


def crashed_rows(desired: Desired, cluster: str, message: str, now: datetime) -> list[StatusRow]:
    """The cluster's targets after its pass crashed (a bug): failed with ``message``."""
    return [
        StatusRow(
            target.app,
            cluster,
            State.FAILED,
            message,
            desired.revisions.get((target.app, cluster)),
            now,
        )
        for target in desired.targets.get(cluster, ())
    ]


def paused_rows(
    desired: Desired, previous: Mapping[TargetKey, StatusRow], now: datetime
) -> list[StatusRow]:
    """Targets on paused clusters: shown paused, with the revision they last ran."""
    rows = []
    for app, cluster in sorted(desired.paused):
        old = previous.get((app, cluster))
        rows.append(
            StatusRow(
                app=app,
                cluster=cluster,
                state=State.PAUSED,
                message="cluster paused (spec.paused: true): nothing is applied or pruned",
                revision=old.revision if old is not None else None,
                updated_at=now,
            )
        )
    return rows
