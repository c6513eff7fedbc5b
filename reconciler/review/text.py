"""A plan as plain text, for terminals and logs: everything, no size cap."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.presentation import clusters_phrase, plural
from reconciler.review.model import AppStatus, ClusterStatus, LiveTarget, Review
from reconciler.review.summary import (
    app_headline,
    blocking_problems,
    error_message,
    live_by_cluster,
    live_lines,
    notes,
    object_headline,
    override_headline,
    placement_line,
    rollout_lines,
    same_details,
    summary,
)


def to_text(review: Review) -> str:
    """Plain text for terminals and logs: everything, no size cap."""
    lines = [f"reconciler plan {review.base.short}..{review.head.short}"]
    if review.blocking:
        lines.append(
            f"BLOCKING: head does not validate ({plural(len(review.blocking), 'problem')})"
        )
        lines += [f"  {p.line()}" for p in blocking_problems(review)]
    lines.append(summary(review))
    lines += [f"note: {n}" for n in notes(review)]
    if review.inventory:
        lines.append("cluster inventory:")
        lines += [f"  {i}" for i in review.inventory]
    for app in review.changed_apps:
        lines.append(f"app {app.app}: {app_headline(app)}")
        lines += [f"  app.yaml: {s}" for s in app.spec_changes]
        lines += [f"  {line}" for line in rollout_lines(app)]
        for names, c in same_details(app.app, app.clusters, placement=True):
            where = clusters_phrase(names)
            if not c.differs:
                lines.append(f"  {where}: unchanged")
                continue
            lines.append(f"  {where}: {c.status}")
            if c.status in (ClusterStatus.GAINED, ClusterStatus.LOST, ClusterStatus.PAUSED):
                lines.append(f"    placement: {placement_line(c, names)}")
            if c.error:
                lines.append(f"    error: {error_message(app.app, c)}")
            if c.note:
                lines.append(f"    note: {c.note}")
            for o in c.overrides:
                lines.append(f"    {override_headline(o)}")
                lines += [f"        {x}" for x in o.changes]
                lines += [f"        was: {x}" for x in o.before]
            for obj in c.objects:
                lines.append(f"    {object_headline(obj)}")
                lines += [f"        {x}" for x in obj.diff.splitlines()]
    unchanged = [a.app for a in review.apps if a.status is AppStatus.UNCHANGED]
    if unchanged:
        lines.append(f"unchanged apps: {', '.join(unchanged)}")
    if review.live is not None:
        lines.append(f"live dry-run of head (instance {review.live_instance}):")
        lines += _live_text(review.live)
    if not review.has_changes and not review.blocking:
        lines.append("no changes")
    return "\n".join(lines)


def _live_text(live: Sequence[LiveTarget]) -> list[str]:
    lines: list[str] = []
    for cluster, targets in live_by_cluster(live).items():
        down = next((t for t in targets if t.unreachable), None)
        if down is not None:
            lines.append(f"  cluster {cluster}: UNREACHABLE: {down.error}")
            continue
        lines.append(f"  cluster {cluster}:")
        for t in targets:
            label = f"    app {t.app}" + (" (no longer placed here)" if t.departed else "")
            if t.error:
                lines.append(f"{label}: error: {t.error}")
            elif not t.changes:
                lines.append(f"{label}: no changes")
            else:
                lines.append(label)
                lines += [f"      {x}" for x in (y for c in t.changes for y in live_lines(c))]
    if not live:
        lines.append("  nothing placed on any cluster")
    return lines
