"""A plan as a pull-request comment in Markdown, under a size cap, byte-stable."""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.presentation import CLUSTERS, html, md_code, md_fence, once_per_message, plural
from reconciler.review.model import AppReview, AppStatus, ClusterReview, ClusterStatus, Review
from reconciler.review.summary import (
    Problem,
    app_headline,
    blocking_problems,
    error_message,
    live_by_cluster,
    live_lines,
    notes,
    same_details,
    summary,
)
from reconciler.rollout import describe

# GitHub rejects comments over 65536 characters; leave room for a CI's own header.
DEFAULT_MAX_CHARS = 60_000
MARKER = "<!-- reconciler-plan -->"
_MAX_LINE = 2000  # one problem or note in Markdown is cut here (text and JSON keep it whole)
_RESERVE = 600  # Markdown: the truncation note and the "... more" lines


def _md_app(app: AppReview, full: bool) -> str:
    lines = [
        f"<details><summary><b>{html(app.app)}</b> · {html(app_headline(app))}</summary>",
        "",
    ]
    if app.spec_changes:
        lines.append("**app.yaml:** " + ", ".join(md_code(s) for s in app.spec_changes))
        lines.append("")
    if app.rollout is not None:
        lines.append(f"**Rollout:** {html(describe.summary(app.rollout))}")
        lines.append("")
        lines += [f"- {html(line)}" for line in describe.stage_lines(app.rollout)]
        if app.at_once:
            at_once = ", ".join(md_code(c) for c in app.at_once)
            lines.append(f"- at once (not running the app yet): {at_once}")
        lines += [f"- warning: {html(w)}" for w in app.rollout.warnings]
        lines.append("")
    placement = [c for c in app.clusters if c.status is not ClusterStatus.CHANGED]
    moved = [c for c in placement if c.status is not ClusterStatus.UNCHANGED]
    if moved:
        lines.append("**Placement**")
        lines.append("")
        why = ((f"- **{c.status}** {CLUSTERS}" + _md_why(c), c.cluster) for c in moved)
        lines += once_per_message(why, md_code)
        lines.append("")
    same = [c.cluster for c in app.clusters if c.status is ClusterStatus.UNCHANGED]
    if same:
        lines.append("Unchanged on " + ", ".join(md_code(c) for c in same) + ".")
        lines.append("")
    detailed = [c for c in app.clusters if c.differs and c.status is not ClusterStatus.PAUSED]
    for names, c in same_details(app.app, detailed):
        lines.append(f"#### {', '.join(md_code(n) for n in names)} · {c.status}")
        lines.append("")
        if c.error:
            lines += [f"**render error:** {md_code(_clip(error_message(app.app, c)))}", ""]
        if c.note:
            lines += [f"_Note: {html(c.note)}_", ""]
        for o in c.overrides:
            reason = f" — {html(o.reason)}" if o.reason else ""
            lines.append(
                f"- override {md_code(o.name)} ({md_code(o.where)}) **{o.status}**{reason}"
            )
            lines += [f"  - {md_code(x)}" for x in o.changes]
            lines += [f"  - was: {md_code(x)}" for x in o.before]
        if c.overrides:
            lines.append("")
        for obj in c.objects:
            note = f" — {html(obj.note)}" if obj.note else ""
            lines.append(f"- **{obj.action}** {md_code(str(obj.ref))}{note}")
            if full and obj.diff:
                lines.append("")
                lines += ["  " + x if x else x for x in md_fence(obj.diff, "diff")]
        lines.append("")
    if not full and any(c.objects for c in app.clusters):
        lines += ["_Diffs omitted to stay under the size cap._", ""]
    lines += ["</details>", ""]
    return "\n".join(lines)


def _md_why(c: ClusterReview) -> str:
    parts = []
    if c.reasons:
        parts.append(": " + html("; ".join(c.reasons)))
    if c.causes:
        parts.append(" — **because** " + html("; ".join(c.causes)))
    if c.before:
        parts.append(" (before: " + html("; ".join(c.before)) + ")")
    if c.note:
        parts.append(f" _{html(c.note)}_")
    return "".join(parts)


def _clip(text: str, limit: int = _MAX_LINE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(lines: Sequence[str]) -> int:
    return sum(len(line) + 1 for line in lines)


def _fit(items: Sequence[str], budget: int) -> tuple[list[str], int]:
    """The leading ``items`` (lines, or blocks of lines) that fit in ``budget`` characters, and
    how many were left out."""
    shown: list[str] = []
    used = 0
    for item in items:
        used += len(item) + 1
        if used > budget:
            break
        shown.append(item)
    return shown, len(items) - len(shown)


def _md_problem(problem: Problem, limit: int) -> str:
    """``- app `web` on clusters a, b: `<error>``` (clusters named as ``validate`` does)."""
    text = md_code(_clip(problem.text, limit))
    if problem.app is None:
        return f"- {text}"
    return f"- app {md_code(problem.app)} on {problem.where(md_code)}: {text}"


def _md_blocking(review: Review, budget: int) -> tuple[list[str], int]:
    """The blocking section within ``budget``, and how many problems it does not list."""
    problems = blocking_problems(review)
    lines = [
        f"### :x: Blocking: head does not validate ({plural(len(review.blocking), 'problem')})",
        "",
    ]
    room = budget - _size(lines)
    limit = min(_MAX_LINE, max(80, room // 4))  # a small cap still shows a few problems
    shown, missing = _fit([_md_problem(p, limit) for p in problems], room)
    lines += shown
    hidden = sum(p.count for p in problems[len(shown) :]) if missing else 0
    if hidden:
        more = plural(hidden, "more problem")
        lines.append(f"- … {more} (size cap: `-o text` lists them all)")
    lines.append("")
    return lines, hidden


def _md_capped(items: Sequence[str], budget: int, more: str, noun: str) -> tuple[list[str], int]:
    """``items`` that fit in ``budget``, then ``more`` with the count left out: ``{} notes``."""
    shown, missing = _fit(items, budget)
    if missing:
        shown.append(more.format(plural(missing, f"more {noun}")))
    return shown, missing


def _md_live(review: Review, full: bool, budget: int | None = None) -> str:
    """The live section; with ``budget``, the targets that fit and a count of the rest."""
    assert review.live is not None
    lines = [f"### Live dry-run of head (instance {md_code(review.live_instance)})", ""]
    if not review.live:
        lines += ["Nothing is placed on any cluster.", ""]
    items: list[str] = []  # one per unreachable cluster or per target, each a block of lines
    for cluster, targets in live_by_cluster(review.live).items():
        down = next((t for t in targets if t.unreachable), None)
        if down is not None:
            error = _clip(down.error or "")
            items.append(f"- {md_code(cluster)}: **unreachable** — {md_code(error)}\n")
            continue
        for t in targets:
            label = f"- {md_code(cluster)} / {md_code(t.app)}"
            if t.departed:
                label += " (no longer placed here)"
            if t.error:
                items.append(f"{label}: **error** {md_code(_clip(t.error))}")
            elif not t.changes:
                items.append(f"{label}: no changes")
            else:
                drifted = sum(1 for c in t.changes if c.drift)
                extra = f", {drifted} drifted" if drifted else ""
                block = [f"{label}: {plural(len(t.changes), 'change')}{extra}"]
                if full:
                    body = "\n".join(x for c in t.changes for x in live_lines(c))
                    block += ["", *("  " + x for x in md_fence(body, "diff")), ""]
                items.append("\n".join(block))
    if budget is not None:
        room = budget - _size(lines) - 100
        items, _ = _md_capped(items, room, "- … {} (size cap)", "target")
    lines += items
    if not full:
        lines += ["", "_Live diffs omitted to stay under the size cap._"]
    lines.append("")
    return "\n".join(lines)


def to_markdown(review: Review, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """A pull-request comment: blocking problems first, summary, one collapsible per app.

    Everything counts against ``max_chars``: identical render errors are listed once for all
    their clusters, and what does not fit is counted instead of listed (blocking problems,
    notes, inventory, live targets); app sections lose their diffs first, then are cut to one
    line. A visible note says so. The same review always gives the same bytes.
    """
    head = [
        MARKER,
        f"## reconciler plan {md_code(review.base.short)} → {md_code(review.head.short)}",
        "",
    ]
    summary_lines = [f"**Summary:** {html(summary(review))}", ""]
    budget = max_chars - _size(head) - _size(summary_lines) - _RESERVE
    left_out: list[str] = []  # for the truncation note
    if review.blocking:
        blocking, hidden = _md_blocking(review, budget // 2)
        if hidden:
            left_out.append(f"{plural(hidden, 'blocking problem')} not listed")
        head += blocking
        budget -= _size(blocking)
    head += summary_lines
    limit = min(_MAX_LINE, max(80, budget // 8))  # a small cap still shows a note
    noted = [f"> **Note:** {html(_clip(n, limit))}\n" for n in notes(review)]
    more = "> **Note:** … {} (size cap)\n"
    shown, missing = _md_capped(noted, budget // 4, more, "note")
    if missing:
        left_out.append(f"{plural(missing, 'note')} not listed")
    head += shown
    budget -= _size(shown)
    if review.inventory:
        items = [f"- {html(_clip(i, limit))}" for i in review.inventory]
        shown, missing = _md_capped(items, budget // 4, "- … {} (size cap)", "change")
        if missing:
            left_out.append(f"{plural(missing, 'inventory change')} not listed")
        inventory = ["**Cluster inventory**", "", *shown, ""]
        head += inventory
        budget -= _size(inventory)
    if not review.has_changes and not review.blocking:
        head += ["No changes.", ""]

    tail = []
    unchanged = [md_code(a.app) for a in review.apps if a.status is AppStatus.UNCHANGED]
    if unchanged:
        names, missing = _fit([f"{n}, " for n in unchanged], budget // 4)
        more = f"and {missing} more" if missing else ""
        tail += [("Unchanged apps: " + "".join(names) + more).removesuffix(", "), ""]
        budget -= _size(tail)

    live = ""
    shortened = omitted = 0
    if review.live is not None:
        live = _md_live(review, full=True)
        if len(live) > budget // 2:
            live = _md_live(review, full=False, budget=budget // 2)
            shortened += 1
        budget -= len(live)
    sections: list[str] = []
    if review.changed_apps:
        sections += ["### Apps", ""]
        budget -= _size(sections)
    for app in review.changed_apps:
        full = _md_app(app, full=True)
        if len(full) <= budget:
            sections.append(full)
            budget -= len(full) + 1
            continue
        compact = _md_app(app, full=False)
        if len(compact) <= budget:
            sections.append(compact)
            budget -= len(compact) + 1
            shortened += 1
            continue
        stub = f"- **{html(app.app)}** · {html(app_headline(app))} _(details omitted: size cap)_\n"
        if len(stub) <= budget:
            sections.append(stub)
            budget -= len(stub) + 1
        omitted += 1
    if omitted:
        sections.append("")
    if shortened or omitted or left_out:
        also = "".join(f", {x}" for x in left_out)
        note = (
            f"> **Truncated** to stay under {max_chars} characters: "
            f"{plural(shortened, 'section')} without diffs, {plural(omitted, 'app')} without "
            f"details{also}. Run `reconciler plan` with `-o text` or `-o json` for the full plan."
        )
        head += [note, ""]
    return "\n".join([*head, *sections, live, *tail]).rstrip("\n") + "\n"
