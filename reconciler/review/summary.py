"""What every output format of a plan says the same way: the summary line, headlines, and what
several clusters share (blocking render errors, base's render errors, details) said once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.errors import app_prefix, without_target
from reconciler.presentation import (
    CLUSTERS,
    by_message,
    clusters_phrase,
    field_line,
    once_per_message,
    plural,
)
from reconciler.review.model import (
    AppReview,
    AppStatus,
    ClusterReview,
    ClusterStatus,
    LiveChange,
    LiveTarget,
    ObjectAction,
    ObjectDiff,
    OverrideDiff,
    Review,
)
from reconciler.rollout import describe
from reconciler.sync.model import Action


def summary(review: Review) -> str:
    """One line of counts: apps, clusters, objects (and live changes)."""
    if review.blocking and not review.apps:
        return f"head is invalid: {plural(len(review.blocking), 'problem')}, nothing to compare"
    apps = {s: sum(1 for a in review.apps if a.status is s) for s in AppStatus}
    clusters = [c for a in review.apps for c in a.clusters]
    gained = sum(1 for c in clusters if c.status is ClusterStatus.GAINED)
    lost = sum(1 for c in clusters if c.status is ClusterStatus.LOST)
    objects = {a: sum(c.count(a) for c in clusters) for a in ObjectAction}
    parts = [
        f"apps: {apps[AppStatus.ADDED]} added, {apps[AppStatus.REMOVED]} removed, "
        f"{apps[AppStatus.CHANGED]} changed, {apps[AppStatus.UNCHANGED]} unchanged",
        f"clusters: {gained} gained, {lost} lost",
        f"objects: {objects[ObjectAction.CREATED]} created, {objects[ObjectAction.DELETED]} "
        f"deleted, {objects[ObjectAction.CHANGED]} changed",
    ]
    if review.blocking:
        parts.insert(0, f"BLOCKED by {plural(len(review.blocking), 'problem')}")
    if review.live is not None:
        changes = sum(len(t.changes) for t in review.live)
        drifted = sum(1 for t in review.live for c in t.changes if c.drift)
        down = sorted({t.cluster for t in review.live if t.unreachable})
        live = f"live: {plural(changes, 'change')}, {drifted} drifted"
        if down:
            live += f", {plural(len(down), 'cluster')} unreachable"
        parts.append(live)
    return "; ".join(parts)


def app_headline(app: AppReview) -> str:
    bits = [str(app.status)]
    for status in (ClusterStatus.GAINED, ClusterStatus.LOST, ClusterStatus.PAUSED):
        n = len(app.with_status(status))
        if n:
            bits.append(f"{plural(n, 'cluster')} {status}")
    for action in ObjectAction:
        n = sum(c.count(action) for c in app.clusters)
        if n:
            bits.append(f"{plural(n, 'object')} {action}")
    errors = sum(1 for c in app.clusters if c.error)
    if errors:
        bits.append(f"{plural(errors, 'render error')}")
    return " · ".join(bits)


def placement_line(c: ClusterReview, names: Sequence[str] = ()) -> str:
    """``gained clusters a, b: <reasons> — because <edits> (before: <reasons>)``; ``names``
    are the clusters that share ``c``'s placement (``c``'s own cluster when none)."""
    text = f"{c.status} {clusters_phrase(names or [c.cluster])}"
    if c.reasons:
        text += ": " + "; ".join(c.reasons)
    if c.causes:
        text += " — because " + "; ".join(c.causes)
    if c.before:
        text += " (before: " + "; ".join(c.before) + ")"
    return text


@dataclass(frozen=True)
class Problem:
    """A blocking problem: one config problem, or one render error of an app on every cluster
    where it is the same."""

    text: str
    app: str | None = None
    clusters: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        """How many entries of ``Review.blocking`` this stands for."""
        return max(1, len(self.clusters))

    def where(self, quote: Callable[[str], str] = str) -> str:
        """``cluster a``, ``clusters a, b`` or ``12 clusters (a, … and 7 more)``."""
        return clusters_phrase(self.clusters, quote)

    def line(self) -> str:
        """``app web, clusters a, b: <error>``, as ``validate`` says it; or the problem."""
        return self.text if self.app is None else app_prefix(self.app, self.where()) + self.text


def blocking_problems(review: Review) -> list[Problem]:
    """``review.blocking`` in order, a render error of an app on several clusters once."""
    render: dict[str, tuple[str, str, str]] = {}
    for a in review.apps:
        for c in a.clusters:
            if c.error:
                render[c.error] = (a.app, c.cluster, error_message(a.app, c))
    keyed: list[tuple[tuple[str | None, str], str]] = []
    for problem in review.blocking:
        app, cluster, text = render.get(problem, (None, "", problem))
        keyed.append(((app, text), cluster))
    return [
        Problem(text, app, tuple(clusters) if app is not None else ())
        for (app, text), clusters in by_message(keyed)
    ]


def notes(review: Review) -> list[str]:
    """The plan's notes for people: base's render errors once across clusters."""
    head = f"base {review.base.short} does not render: app"
    failed = ((f"{head} {e.app}, {CLUSTERS}: {e.message}", e.cluster) for e in review.base_errors)
    return [*review.notes, *once_per_message(failed)]


def error_message(app: str, c: ClusterReview) -> str:
    """A cluster's render error without the ``app A, cluster C:`` that its heading says."""
    return without_target(c.error or "", app, c.cluster)


def same_details(
    app: str, clusters: Sequence[ClusterReview], *, placement: bool = False
) -> list[tuple[list[str], ClusterReview]]:
    """Clusters with identical details (status, objects, overrides, error, note) once, each
    with the first such cluster: 100 edge clusters, one diff. ``placement``: also the same
    placement reasons and causes (for output that says them in the group)."""
    by_name = {c.cluster: c for c in clusters}

    def details(c: ClusterReview) -> Any:
        if not c.differs:
            return c.status
        error = error_message(app, c) if c.error else None
        why = (tuple(c.reasons), tuple(c.before), tuple(c.causes)) if placement else ()
        return (c.status, tuple(c.objects), tuple(c.overrides), error, c.note, why)

    groups = by_message((details(c), c.cluster) for c in clusters)
    return [(names, by_name[names[0]]) for _, names in groups]


def override_headline(o: OverrideDiff) -> str:
    reason = f" — {o.reason}" if o.reason else ""
    return f"override {o.name} ({o.where}) {o.status}{reason}"


def object_headline(o: ObjectDiff) -> str:
    note = f" ({o.note})" if o.note else ""
    return f"{o.ref} {o.action}{note}"


LIVE_SYMBOL = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.PRUNE: "-",
    Action.CONFLICT: "!",
    Action.KEEP: "=",
    Action.UNCHANGED: " ",
}


def live_lines(change: LiveChange) -> list[str]:
    if change.drift == "modified":
        verb = "drifted: " + (
            "the merge would overwrite it" if change.self_heal else "kept (selfHeal is off)"
        )
    elif change.drift == "missing":
        verb = "missing: " + (
            "would be re-created" if change.self_heal else "kept missing (selfHeal is off)"
        )
    elif change.drift == "unmanaged":
        verb = "unmanaged"
    else:
        verb = {Action.CREATE: "create", Action.UPDATE: "update", Action.PRUNE: "prune"}.get(
            change.action, str(change.action)
        )
    symbol = "!" if change.drift else LIVE_SYMBOL[change.action]
    message = f" ({change.message})" if change.message and change.drift != "missing" else ""
    lines = [f"{symbol} {change.ref} {verb}{message}"]
    lines += [f"    {field_line(f)}" for f in change.fields]
    return lines


def live_by_cluster(live: Sequence[LiveTarget]) -> dict[str, list[LiveTarget]]:
    out: dict[str, list[LiveTarget]] = {}
    for target in live:
        out.setdefault(target.cluster, []).append(target)
    return dict(sorted(out.items()))


def rollout_lines(app: AppReview) -> list[str]:
    """``rollout: canary beijing-1, then ...`` and one line per stage with its gates."""
    plan = app.rollout
    if plan is None:
        return []
    lines = [f"rollout: {describe.summary(plan)}"]
    lines += [f"  {line}" for line in describe.stage_lines(plan)]
    if app.at_once:
        lines.append(f"  at once (not running the app yet): {', '.join(app.at_once)}")
    lines += [f"  warning: {w}" for w in plan.warnings]
    return lines
