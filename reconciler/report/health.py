"""Targets' health transitions: a table, JSON and a Markdown section, newest first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text

from reconciler.presentation import format_time
from reconciler.report.formats import (
    HEALTH_STYLE,
    NO_TARGET,
    md_section,
    md_table,
    one_line,
    printed,
    table,
)
from reconciler.store.rows import HealthChange


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
            one_line(r.reason),
        ]
        for r in ordered
    ]

    def style(r: HealthChange, line: list[Text]) -> None:
        line[4].stylize(HEALTH_STYLE.get(r.health, ""))

    return table(headers, ordered, plain, color, style)


def health_changes_document(rows: Sequence[HealthChange]) -> list[dict[str, Any]]:
    """Health transitions as data, newest first (:func:`health_changes_json` prints them)."""
    return [
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


health_changes_json = printed(health_changes_document)


def health_changes_markdown(rows: Sequence[HealthChange]) -> str:
    if not rows:
        return md_section("Health changes", ["No health changes recorded."])
    return md_section(
        "Health changes",
        md_table(
            ["at", "app", "cluster", "was", "now", "reason"],
            [
                [format_time(r.at), r.app, r.cluster, _was(r), str(r.health), r.reason]
                for r in _sorted_changes(rows)
            ],
        ),
    )
