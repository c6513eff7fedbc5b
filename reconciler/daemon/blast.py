"""Blast radius of a revision's broken files (pure): which targets stay on their revision.

A problem in one app's own files (its app.yaml, manifests, chart, kustomization) holds that
app's targets only. A broken cluster file holds the targets on that cluster; a broken group file
holds the apps whose placement or overrides name the group. Where a broken file does not say
what it defines (it does not parse) the previous revision says what lived in that file; when
nothing does, everything is held, with the reason. Problems no single file owns (the repo
itself, ``reconciler.yaml``) hold everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.config.model import App, Broken, PartialRepo, Repo
from reconciler.errors import Problem

__all__ = ["Holds", "holds"]

TargetKey = tuple[str, str]  # (app, cluster)


@dataclass(frozen=True)
class Holds:
    """What a revision cannot move: everything, some apps (every cluster), some clusters
    (every app), each with the located reason."""

    everything: str | None = None
    apps: Mapping[str, str] = field(default_factory=dict)
    clusters: Mapping[str, str] = field(default_factory=dict)

    def reason(self, key: TargetKey) -> str | None:
        """Why target (app, cluster) stays on its revision; None: it moves."""
        return self.everything or self.apps.get(key[0]) or self.clusters.get(key[1])

    @property
    def any(self) -> bool:
        return bool(self.everything or self.apps or self.clusters)


def _why(problems: tuple[Problem, ...] | list[Problem]) -> str:
    ordered = sorted(problems)
    more = f" (and {len(ordered) - 1} more problems)" if len(ordered) > 1 else ""
    return f"{ordered[0]}{more}"


def _folder(app: App) -> str:
    return app.file.rpartition("/")[0]


def _names_at(broken: Broken, previous: Repo | None) -> set[str]:
    """The names ``broken`` defines: as read now, and as its file defined them before."""
    names = set(broken.names)
    if previous is None:
        return names
    if broken.kind == "Cluster":
        names |= {c.name for c in previous.clusters.values() if c.file == broken.file}
    elif broken.kind == "ClusterGroup":
        names |= {g.name for g in previous.groups.values() if g.file == broken.file}
    elif broken.kind == "App":
        names |= {a.name for a in previous.apps.values() if _folder(a) == broken.file}
    return names


def holds(partial: PartialRepo, previous: Repo | None) -> Holds:
    """What the broken parts of ``partial`` hold, given the ``previous`` revision's repo."""
    if partial.repo_problems:
        return Holds(everything=_why(partial.repo_problems))
    apps: dict[str, str] = {}
    clusters: dict[str, str] = {}
    unnamed_app: str | None = None
    for broken in partial.broken:
        why = _why(broken.problems)
        names = _names_at(broken, previous)
        if broken.kind == "App":
            if not names:
                unnamed_app = unnamed_app or why
            for name in names:
                apps.setdefault(name, why)
            continue
        if not names:
            return Holds(everything=f"cannot tell what {broken.file} defines: {why}")
        if broken.kind == "Cluster":
            for name in names:
                clusters.setdefault(name, why)
        elif broken.kind == "ClusterGroup":
            pass  # the apps naming it are ``partial.dependents``
        else:
            return Holds(everything=why)
    for name, problem in partial.dependents:
        apps.setdefault(name, str(problem))
    if unnamed_app is not None and previous is not None:
        # An app folder whose App cannot be read may be an existing app, renamed or moved:
        # no app that disappears in this revision is removed while one cannot be read.
        for name in previous.apps:
            if name not in partial.repo.apps:
                apps.setdefault(name, unnamed_app)
    return Holds(apps=apps, clusters=clusters)
