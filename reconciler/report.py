"""Pure formatting of state for people and tools: tables, JSON, Markdown.

No store, file or clock access: callers pass rows and print the returned strings. Output is
deterministic for the same input (rows are sorted here, times are shown in UTC to the second).
With ``color=True`` tables are rendered by ``rich`` with ANSI colours; with ``color=False`` they
are plain aligned text, fit for pipes, logs and tests.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciler.health import Health
from reconciler.presentation import (
    field_line,
    fields_json,
    format_time,
    md_cell,
    md_code,
    plural,
)
from reconciler.store.rows import (
    DriftKind,
    DriftRow,
    HealthChange,
    HealthRow,
    Pin,
    RevisionRow,
    RolloutRow,
    SourceStatus,
    State,
    StatusRow,
)

__all__ = [
    "HEALTH_STYLE",
    "drift_document",
    "drift_json",
    "drift_markdown",
    "drift_table",
    "health_changes_json",
    "health_changes_markdown",
    "health_changes_table",
    "source_line",
    "status_document",
    "status_json",
    "status_table",
]

NO_TARGET = "-"  # the app does not target this cluster

STATE_STYLE: dict[State, str] = {
    State.SYNCED: "green",
    State.OUT_OF_SYNC: "yellow",
    State.PROGRESSING: "cyan",
    State.DRIFTED: "magenta",
    State.FAILED: "bold red",
    State.UNREACHABLE: "red",
    State.PAUSED: "dim",
    State.INVALID_CONFIG: "bold red",
    State.HELD: "bold yellow",
}
HEALTH_STYLE: dict[Health, str] = {
    Health.HEALTHY: "green",
    Health.SUSPENDED: "dim",
    Health.PROGRESSING: "cyan",
    Health.UNKNOWN: "yellow",
    Health.MISSING: "red",
    Health.DEGRADED: "bold red",
}
KIND_STYLE: dict[DriftKind, str] = {
    DriftKind.MODIFIED: "yellow",
    DriftKind.MISSING: "red",
    DriftKind.UNMANAGED: "magenta",
}
_QUIET_STATES = {State.SYNCED, State.PAUSED}


def _one_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


# -- table rendering --------------------------------------------------------------------------


def _plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *rows]
    ]
    return "\n".join(lines) + "\n"


def _rich_table(headers: Sequence[str], rows: Sequence[Sequence[Text]]) -> str:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    _console(out).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def _render_text(text: Text) -> str:
    """One styled line with ANSI colours, never wrapped."""
    out = io.StringIO()
    _console(out).print(text, soft_wrap=True)
    return out.getvalue()


def _console(out: io.StringIO) -> Console:
    return Console(
        file=out,
        force_terminal=True,
        color_system="standard",
        width=10_000,  # never wrap: the terminal does that, or `less -S`
        legacy_windows=False,
        highlight=False,
    )


# -- source -----------------------------------------------------------------------------------


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
    tail = f": {_one_line(source.last_error or '')}; " + (
        f"last good fetch {good}" if good else "no good fetch yet"
    )
    if not color:
        return f"{head}{failing}{tail}\n"
    return _render_text(Text(head) + Text(failing, style="bold red") + Text(tail))


def _source_json(source: SourceStatus | None) -> dict[str, Any] | None:
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


# -- status -----------------------------------------------------------------------------------


def _sorted_status(rows: Iterable[StatusRow]) -> list[StatusRow]:
    return sorted(rows, key=lambda r: (r.app, r.cluster))


def status_table(
    rows: Sequence[StatusRow],
    color: bool,
    health: Mapping[tuple[str, str], HealthRow] | None = None,
    replicas: Mapping[tuple[str, str], str] | None = None,
) -> str:
    """One line per target (app × cluster), sync and health side by side, like ``vela status``:
    ``web  beijing-1  Synced  Healthy  3/3  1a2b3c4d5e6f``; then one line per target that needs
    attention, with its message or its health's reason. With ``replicas`` (status read from the
    management cluster), a last column says which replica published each target."""
    if not rows:
        return "No status recorded yet.\n"
    health = health or {}
    ordered = _sorted_status(rows)
    headers = ["APP", "CLUSTER", "SYNC", "HEALTH", "READY", "REVISION"]
    plain: list[list[str]] = []
    for r in ordered:
        judged = health.get((r.app, r.cluster))
        plain.append(
            [
                r.app,
                r.cluster,
                str(r.state),
                str(judged.health.health) if judged is not None else NO_TARGET,
                judged.health.ready_text if judged is not None else NO_TARGET,
                (r.revision or NO_TARGET)[:12],
                *([replicas.get((r.app, r.cluster), NO_TARGET)] if replicas is not None else []),
            ]
        )
    if replicas is not None:
        headers.append("REPLICA")
    if color:
        styled = []
        for r, cells in zip(ordered, plain, strict=True):
            line = [Text(cell) for cell in cells]
            line[2] = _state_text(r.state)
            judged = health.get((r.app, r.cluster))
            if judged is not None:
                line[3].stylize(HEALTH_STYLE.get(judged.health.health, ""))
            else:
                line[3].stylize("dim")
            styled.append(line)
        table = _rich_table(headers, styled)
    else:
        table = _plain_table(headers, plain)
    notes = []
    for r in ordered:
        if r.message and r.state not in _QUIET_STATES:
            notes.append(f"{r.app} on {r.cluster}: {r.state}: {r.message}")
        judged = health.get((r.app, r.cluster))
        if judged is not None and judged.health.health is not Health.HEALTHY:
            notes.append(f"{r.app} on {r.cluster}: {judged.health}")
    return table + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _health_json(row: HealthRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        **row.health.to_json(),
        "revision": row.revision,
        "assessed_at": format_time(row.assessed_at),
        "since": format_time(row.since),
    }


def _state_text(state: State | None) -> Text:
    if state is None:
        return Text(NO_TARGET, style="dim")
    return Text(str(state), style=STATE_STYLE.get(state, ""))


def status_json(
    rows: Sequence[StatusRow],
    source: SourceStatus | None = None,
    revision: RevisionRow | None = None,
    daemon_running: bool | None = None,
    health: Mapping[tuple[str, str], HealthRow] | None = None,
    rollouts: Sequence[RolloutRow] = (),
    pins: Sequence[Pin] = (),
    replicas: Mapping[tuple[str, str], str] | None = None,
) -> str:
    """``{"source": …, "revision": …, "targets": [...], "rollouts": [...], "pins": [...]}``:
    how fetching the repo goes, the newest revision seen (null before the first fetch), the
    rows by app and cluster, each with its ``health`` (null until judged), each app's newest
    rollout and the pins."""
    document = status_document(
        rows, source, revision, daemon_running, health, rollouts, pins, replicas
    )
    return json.dumps(document, indent=2) + "\n"


def status_document(
    rows: Sequence[StatusRow],
    source: SourceStatus | None = None,
    revision: RevisionRow | None = None,
    daemon_running: bool | None = None,
    health: Mapping[tuple[str, str], HealthRow] | None = None,
    rollouts: Sequence[RolloutRow] = (),
    pins: Sequence[Pin] = (),
    replicas: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    """What :func:`status_json` prints, as data (the web API serves the same); with
    ``replicas``, each target also names the replica that published it."""
    health = health or {}
    targets = [
        {
            "app": r.app,
            "cluster": r.cluster,
            "state": str(r.state),
            "message": r.message,
            "revision": r.revision,
            "updated_at": format_time(r.updated_at),
            "last_synced_at": format_time(r.last_synced_at) or None,
            "health": _health_json(health.get((r.app, r.cluster))),
            **({"replica": replicas.get((r.app, r.cluster))} if replicas is not None else {}),
        }
        for r in _sorted_status(rows)
    ]
    newest = None
    if revision is not None:
        newest = {
            "sha": revision.sha,
            "seen_at": format_time(revision.seen_at),
            "valid": revision.valid,
            "error": revision.error,
        }
    return {
        "daemon_running": daemon_running,
        "source": _source_json(source),
        "revision": newest,
        "targets": targets,
        "rollouts": [r.data for r in sorted(rollouts, key=lambda r: r.app)],
        "pins": [
            {
                "app": p.app,
                "cluster": p.cluster,
                "revision": p.revision,
                "user": p.user,
                "at": format_time(p.at),
            }
            for p in sorted(pins, key=lambda p: (p.app, p.cluster))
        ],
    }


# -- drift ------------------------------------------------------------------------------------


def _sorted_drift(rows: Iterable[DriftRow]) -> list[DriftRow]:
    """Newest first, like the store returns them; id breaks ties."""
    return sorted(rows, key=lambda r: (r.detected_at, r.id), reverse=True)


def _corrected(row: DriftRow) -> str:
    return format_time(row.corrected_at) if row.corrected_at else "open"


def _managers(row: DriftRow) -> str:
    return ", ".join(sorted({f.manager for f in row.fields if f.manager}))


def drift_table(rows: Sequence[DriftRow], color: bool) -> str:
    """One line per drift record, newest first."""
    if not rows:
        return "No drift recorded.\n"
    headers = ["ID", "APP", "CLUSTER", "OBJECT", "DRIFT", "FIELDS", "BY", "DETECTED", "CORRECTED"]
    ordered = _sorted_drift(rows)
    plain = [
        [
            str(r.id),
            r.app,
            r.cluster,
            r.object,
            str(r.kind),
            ", ".join(f.path for f in r.fields),
            _managers(r),
            format_time(r.detected_at),
            _corrected(r),
        ]
        for r in ordered
    ]
    if not color:
        return _plain_table(headers, plain)
    styled = []
    for r, cells in zip(ordered, plain, strict=True):
        row = [Text(cell) for cell in cells]
        row[4].stylize(KIND_STYLE.get(r.kind, ""))
        row[8].stylize("green" if r.corrected_at else "bold red")
        styled.append(row)
    return _rich_table(headers, styled)


def drift_json(rows: Sequence[DriftRow]) -> str:
    """Drift records as a JSON array, newest first, field values as stored (already masked)."""
    return json.dumps(drift_document(rows), indent=2, sort_keys=False) + "\n"


def drift_document(rows: Sequence[DriftRow]) -> list[dict[str, Any]]:
    """What :func:`drift_json` prints, as data (the web API serves the same)."""
    return [
        {
            "id": r.id,
            "app": r.app,
            "cluster": r.cluster,
            "object": r.object,
            "kind": str(r.kind),
            "fields": fields_json(r.fields, git="before", live="after", time="changed_at"),
            "revision": r.revision,
            "detected_at": format_time(r.detected_at),
            "corrected_at": format_time(r.corrected_at) or None,
        }
        for r in _sorted_drift(rows)
    ]


_NO_FIELDS = {
    DriftKind.MISSING: "the object is missing from the cluster",
    DriftKind.UNMANAGED: "the object carries our label but is not in Git",
    DriftKind.MODIFIED: "modified (no field details recorded)",
}


def drift_markdown(rows: Sequence[DriftRow]) -> str:
    """A drift report ready to paste into an issue: heading, summary, table, field details."""
    lines = ["## Drift report", ""]
    if not rows:
        return "\n".join([*lines, "No drift recorded."]) + "\n"
    ordered = _sorted_drift(rows)
    clusters = {r.cluster for r in ordered}
    still_open = sum(1 for r in ordered if r.corrected_at is None)
    lines += [
        f"{plural(len(ordered), 'drift record')} on {plural(len(clusters), 'cluster')}"
        f" ({still_open} open, {len(ordered) - still_open} corrected).",
        "",
        "| app | cluster | object | kind | detected | corrected |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        "| "
        + " | ".join(
            md_cell(cell)
            for cell in (
                r.app,
                r.cluster,
                r.object,
                str(r.kind),
                format_time(r.detected_at),
                _corrected(r),
            )
        )
        + " |"
        for r in ordered
    ]
    for r in ordered:
        revision = f" at revision {md_code(r.revision[:12])}" if r.revision else ""
        lines += ["", f"### #{r.id} {r.app} on {r.cluster}: {md_code(r.object)} ({r.kind})", ""]
        lines.append(f"Detected {format_time(r.detected_at)}{revision}; {_status_phrase(r)}.")
        lines.append("")
        if r.fields:
            lines += [f"- {md_code(field_line(f))}" for f in r.fields]
        else:
            lines.append(f"- {_NO_FIELDS.get(r.kind, str(r.kind))}")
    return "\n".join(lines) + "\n"


def _status_phrase(row: DriftRow) -> str:
    if row.corrected_at is None:
        return "still open"
    return f"corrected {format_time(row.corrected_at)}"


# -- health transitions -------------------------------------------------------------------------


def _sorted_changes(rows: Iterable[HealthChange]) -> list[HealthChange]:
    return sorted(rows, key=lambda r: (r.at, r.id), reverse=True)


def _was(row: HealthChange) -> str:
    return str(row.previous) if row.previous is not None else NO_TARGET


def health_changes_table(rows: Sequence[HealthChange], color: bool) -> str:
    """One line per health transition of a target, newest first."""
    if not rows:
        return "No health changes recorded.\n"
    headers = ["AT", "APP", "CLUSTER", "WAS", "NOW", "REVISION", "REASON"]
    ordered = _sorted_changes(rows)
    plain = [
        [
            format_time(r.at),
            r.app,
            r.cluster,
            _was(r),
            str(r.health),
            (r.revision or NO_TARGET)[:12],
            _one_line(r.reason),
        ]
        for r in ordered
    ]
    if not color:
        return _plain_table(headers, plain)
    styled = []
    for r, cells in zip(ordered, plain, strict=True):
        line = [Text(cell) for cell in cells]
        line[4].stylize(HEALTH_STYLE.get(r.health, ""))
        styled.append(line)
    return _rich_table(headers, styled)


def health_changes_json(rows: Sequence[HealthChange]) -> str:
    data = [
        {
            "id": r.id,
            "app": r.app,
            "cluster": r.cluster,
            "previous": str(r.previous) if r.previous is not None else None,
            "health": str(r.health),
            "reason": r.reason,
            "revision": r.revision,
            "at": format_time(r.at),
        }
        for r in _sorted_changes(rows)
    ]
    return json.dumps(data, indent=2) + "\n"


def health_changes_markdown(rows: Sequence[HealthChange]) -> str:
    lines = ["## Health changes", ""]
    if not rows:
        return "\n".join([*lines, "No health changes recorded."]) + "\n"
    lines += ["| at | app | cluster | was | now | reason |", "|---|---|---|---|---|---|"]
    lines += [
        "| "
        + " | ".join(
            md_cell(c)
            for c in (format_time(r.at), r.app, r.cluster, _was(r), str(r.health), r.reason)
        )
        + " |"
        for r in _sorted_changes(rows)
    ]
    return "\n".join(lines) + "\n"
