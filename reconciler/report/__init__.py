"""Pure formatting of the daemon's state for people and tools: tables, JSON, Markdown.

No store, file or clock access: callers pass rows and print the returned strings. Output is
deterministic for the same input (rows are sorted here, times are shown in UTC to the second).
With ``color=True`` tables are rendered by ``rich`` with ANSI colours; with ``color=False`` they
are plain aligned text, fit for pipes, logs and tests. One module per report: ``source``,
``status``, ``drift``, ``health`` (transitions), over ``formats``.
"""

from reconciler.report.drift import drift_document, drift_json, drift_markdown, drift_table
from reconciler.report.formats import HEALTH_STYLE, KIND_STYLE, NO_TARGET, STATE_STYLE
from reconciler.report.health import (
    health_changes_json,
    health_changes_markdown,
    health_changes_table,
)
from reconciler.report.source import source_line
from reconciler.report.status import status_document, status_json, status_table

__all__ = [
    "HEALTH_STYLE",
    "KIND_STYLE",
    "NO_TARGET",
    "STATE_STYLE",
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
