"""How values, times, counts and field changes are written for people, the same everywhere:
one value format (one truncation length), plurals, and Markdown code, fences and table cells
that survive backticks and pipes in the text. Pure; no reconciler imports but ``fields``."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from reconciler.fields import FieldChange

MAX_VALUE = 120  # characters of one value on a line; longer ones end in "…"


def format_value(value: Any) -> str:
    """A field value on one line: JSON (strings quoted), ``(unset)`` for None, long ones cut."""
    if value is None:
        return "(unset)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return clip(text, MAX_VALUE)


def format_compact(value: Any) -> str:
    """A value as compact JSON (``{"a":1}``), for override lines; long ones cut."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return clip(text, MAX_VALUE)


def format_time(value: datetime | None) -> str:
    """``2026-11-22T12:03:41Z``; empty for None."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plural(n: int, word: str) -> str:
    """``1 cluster``, ``2 clusters``, ``3 policies``."""
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1] + 'ies' if word.endswith('y') and word[-2:] != 'ey' else word + 's'}"


def field_line(change: FieldChange) -> str:
    """One field with both sides named, never an arrow to decode:
    ``spec.replicas: git 5, live 7 (live set by kubectl-edit at 2026-11-22T12:03:41Z)``."""
    line = f"{change.path}: git {format_value(change.git)}, live {format_value(change.live)}"
    if not change.manager:
        return line
    when = f" at {format_time(change.time)}" if change.time else ""
    return f"{line} (live set by {change.manager}{when})"


def fields_json(
    changes: Iterable[FieldChange], *, git: str, live: str, time: str = "time"
) -> list[dict[str, Any]]:
    """Field changes for JSON output, under the key names each format released with (``diff``
    says ``desired``/``live``, ``drift`` ``before``/``after``, ``plan`` ``head``/``live``)."""
    return [
        {
            "path": f.path,
            git: f.git,
            live: f.live,
            "manager": f.manager,
            time: format_time(f.time) or None,
        }
        for f in changes
    ]


# ---- Markdown ------------------------------------------------------------------------------


def _longest_backtick_run(text: str) -> int:
    longest = current = 0
    for ch in text:
        current = current + 1 if ch == "`" else 0
        longest = max(longest, current)
    return longest


def md_code(text: str) -> str:
    """Inline code that survives any run of backticks in the text (one line)."""
    text = text.replace("\n", " ")
    fence = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(body: str, lang: str = "") -> list[str]:
    """A fenced block whose fence is longer than any backtick run in ``body``."""
    fence = "`" * max(3, _longest_backtick_run(body) + 1)
    return [f"{fence}{lang}", *body.splitlines(), fence]


def md_cell(text: str) -> str:
    """Text for one Markdown table cell: pipes and backslashes escaped, one line."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def html(text: str) -> str:
    """Text safe inside HTML (``<details>`` summaries) and Markdown prose."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_K = TypeVar("_K", bound=Hashable)

CLUSTERS = "\x00clusters\x00"  # where ``once_per_message`` writes the clusters into a line
_LISTED = 5  # clusters named in one line; more are counted


def clusters_phrase(names: Iterable[str], quote: Callable[[str], str] = str) -> str:
    """``cluster a``, ``clusters a, b`` or ``12 clusters (a, b, c, d, e and 7 more)``; each
    name through ``quote`` (``md_code`` for Markdown)."""
    unique = [quote(n) for n in sorted(set(names))]
    if len(unique) == 1:
        return f"cluster {unique[0]}"
    if len(unique) <= _LISTED:
        return f"clusters {', '.join(unique)}"
    shown = ", ".join(unique[:_LISTED])
    return f"{len(unique)} clusters ({shown} and {len(unique) - _LISTED} more)"


def by_message(lines: Iterable[tuple[_K, str]]) -> list[tuple[_K, list[str]]]:
    """Per-cluster ``(message, cluster)`` pairs grouped by message, in first-seen order: each
    message once with the clusters it was given on (``message`` is any hashable key)."""
    clusters: dict[_K, list[str]] = {}
    for message, cluster in lines:
        clusters.setdefault(message, []).append(cluster)
    return list(clusters.items())


def once_per_message(
    lines: Iterable[tuple[str, str]], quote: Callable[[str], str] = str
) -> list[str]:
    """Per-cluster lines that say the same thing, once: each ``(template, cluster)`` whose
    template holds ``CLUSTERS`` where the cluster(s) go; the templates in first-seen order."""
    return [t.replace(CLUSTERS, clusters_phrase(names, quote)) for t, names in by_message(lines)]
