"""How fetching the config repo goes: one line for people, a mapping for JSON."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from reconciler.presentation import format_time, plural
from reconciler.report.formats import one_line, render_text
from reconciler.store.rows import SourceStatus


def source_line(source: SourceStatus | None, color: bool) -> str:
    """One line on how fetching the config repo goes, e.g.

    ``Source /srv/repo (branch main): fetch failing since 2026-11-22T12:00:00Z (3 attempts):
    <error>; last good fetch 2026-11-22T11:58:00Z at 1bf2028cdf11``

    Empty (no line) before the daemon's first fetch.
    """
    if source is None:
        return ""
    branch = f"branch {source.branch}" if source.branch else "default branch"
    head = f"Source {source.location} ({branch}): "
    if source.last_success_at is not None:
        good = f"{format_time(source.last_success_at)} at {(source.last_success_sha or '')[:12]}"
    else:
        good = ""
    if not source.failing:
        plain = f"{head}last fetch {good}" if good else f"{head}not fetched yet"
        return plain + "\n"
    failing = (
        f"fetch failing since {format_time(source.failing_since or source.last_error_at)}"
        f" ({plural(source.consecutive_failures, 'attempt')})"
    )
    tail = f": {one_line(source.last_error or '')}; " + (
        f"last good fetch {good}" if good else "no good fetch yet"
    )
    if not color:
        return f"{head}{failing}{tail}\n"
    return render_text(Text(head) + Text(failing, style="bold red") + Text(tail))


def source_json(source: SourceStatus | None) -> dict[str, Any] | None:
    if source is None:
        return None
    return {
        "location": source.location,
        "branch": source.branch,
        "last_success_at": format_time(source.last_success_at) or None,
        "last_success_sha": source.last_success_sha,
        "last_error": source.last_error,
        "last_error_at": format_time(source.last_error_at) or None,
        "failing_since": format_time(source.failing_since) or None,
        "consecutive_failures": source.consecutive_failures,
    }
