"""Drift records: a table, the drift document (JSON, and the web API's data), and a Markdown
report ready to paste into an issue."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text

from reconciler.fields import Drift
from reconciler.presentation import field_line, fields_json, format_time, md_code, plural
from reconciler.report.formats import KIND_STYLE, md_section, md_table, printed, table
from reconciler.store.rows import DriftRow

_NO_FIELDS = {
    Drift.MISSING: "the object is missing from the cluster",
    Drift.UNMANAGED: "the object carries our label but is not in Git",
    Drift.MODIFIED: "modified (no field details recorded)",
}


def _sorted_drift(rows: Iterable[DriftRow]) -> list[DriftRow]:
    """Newest first, like the store returns them; id breaks ties."""
    return sorted(rows, key=lambda r: (r.detected_at, r.id), reverse=True)


def _corrected(row: DriftRow) -> str:
    if row.healed_by is not None:
        return f"{format_time(row.healed_at)} healed by {row.healed_by}"
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

    def style(r: DriftRow, line: list[Text]) -> None:
        line[4].stylize(KIND_STYLE.get(r.kind, ""))
        line[8].stylize("green" if r.corrected_at else "bold red")

    return table(headers, ordered, plain, color, style)


def drift_document(rows: Sequence[DriftRow]) -> list[dict[str, Any]]:
    """Drift records, newest first, field values as stored (already masked);
    :func:`drift_json` prints them, the web API serves the same."""
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
            "healed_by": r.healed_by,
            "healed_at": format_time(r.healed_at) or None,
        }
        for r in _sorted_drift(rows)
    ]


drift_json = printed(drift_document)


def drift_markdown(rows: Sequence[DriftRow]) -> str:
    """A drift report ready to paste into an issue: heading, summary, table, field details."""
    if not rows:
        return md_section("Drift report", ["No drift recorded."])
    ordered = _sorted_drift(rows)
    clusters = {r.cluster for r in ordered}
    still_open = sum(1 for r in ordered if r.corrected_at is None)
    lines = [
        f"{plural(len(ordered), 'drift record')} on {plural(len(clusters), 'cluster')}"
        f" ({still_open} open, {len(ordered) - still_open} corrected).",
        "",
    ]
    lines += md_table(
        ["app", "cluster", "object", "kind", "detected", "corrected"],
        [
            [r.app, r.cluster, r.object, str(r.kind), format_time(r.detected_at), _corrected(r)]
            for r in ordered
        ],
    )
    for r in ordered:
        revision = f" at revision {md_code(r.revision[:12])}" if r.revision else ""
        lines += ["", f"### #{r.id} {r.app} on {r.cluster}: {md_code(r.object)} ({r.kind})", ""]
        lines.append(f"Detected {format_time(r.detected_at)}{revision}; {_status_phrase(r)}.")
        lines.append("")
        if r.fields:
            lines += [f"- {md_code(field_line(f))}" for f in r.fields]
        else:
            lines.append(f"- {_NO_FIELDS.get(r.kind, str(r.kind))}")
    return md_section("Drift report", lines)


def _status_phrase(row: DriftRow) -> str:
    if row.corrected_at is None:
        return "still open"
    if row.healed_by is not None:
        return f"healed by {row.healed_by} at {format_time(row.healed_at)}"
    return f"corrected {format_time(row.corrected_at)}"
