"""What every report shares: plain and coloured tables, Markdown tables, JSON text, the styles of
sync states, health and drift kinds."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciler.fields import Drift
from reconciler.health import Health
from reconciler.presentation import md_cell
from reconciler.store.rows import State

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
KIND_STYLE: dict[Drift, str] = {
    Drift.MODIFIED: "yellow",
    Drift.MISSING: "red",
    Drift.UNMANAGED: "magenta",
}

P = ParamSpec("P")
R = TypeVar("R")


def one_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def printed(document: Callable[P, Any]) -> Callable[P, str]:
    """``document``'s data as the JSON text a command prints (indented, one newline)."""

    def text(*args: P.args, **kwargs: P.kwargs) -> str:
        return json.dumps(document(*args, **kwargs), indent=2) + "\n"

    text.__doc__ = f"What :func:`{document.__name__}` returns, as JSON text."
    return text


def table(
    headers: Sequence[str],
    rows: Sequence[R],
    cells: Sequence[Sequence[str]],
    color: bool,
    style: Callable[[R, list[Text]], None],
) -> str:
    """``cells`` (one line per row) as aligned plain text, or with ``color`` as a rich table
    whose cells ``style`` colours per row."""
    if not color:
        return _plain_table(headers, cells)
    styled = []
    for row, line in zip(rows, cells, strict=True):
        texts = [Text(cell) for cell in line]
        style(row, texts)
        styled.append(texts)
    return _rich_table(headers, styled)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table, every cell escaped."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in rows]


def md_section(title: str, lines: Sequence[str]) -> str:
    """A Markdown report: ``## title``, a blank line, then ``lines``."""
    return "\n".join([f"## {title}", "", *lines]) + "\n"


def render_text(text: Text) -> str:
    """One styled line with ANSI colours, never wrapped."""
    out = io.StringIO()
    _console(out).print(text, soft_wrap=True)
    return out.getvalue()


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


def _console(out: io.StringIO) -> Console:
    return Console(
        file=out,
        force_terminal=True,
        color_system="standard",
        width=10_000,  # never wrap: the terminal does that, or `less -S`
        legacy_windows=False,
        highlight=False,
    )
