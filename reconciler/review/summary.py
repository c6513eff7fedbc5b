"""What every output format of a plan says the same way: the summary line and headlines."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.presentation import field_line, plural
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


def placement_line(c: ClusterReview) -> str:
    text = f"{c.status} {c.cluster}"
    if c.reasons:
        text += ": " + "; ".join(c.reasons)
    if c.causes:
        text += " — because " + "; ".join(c.causes)
    if c.before:
        text += " (before: " + "; ".join(c.before) + ")"
    return text


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
