"""One fact, one type: how a live object differs from Git, and a field where they differ.

``git`` is what Git says (the server-side-apply dry-run of the desired object), ``live`` what the
cluster holds; ``manager`` is who last set the live value (from managedFields), at ``time``.
The same value travels from the diff through drift and the store to every report, so no reader
has to know which way an arrow points. ``None`` on a side: the field is absent there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Drift(StrEnum):
    """How an object differs from Git: a field we declared differs live (modified, with its
    ``FieldChange``s), an object we applied is gone (missing), or an object carries our label
    but is not in Git (unmanaged)."""

    MODIFIED = "modified"
    MISSING = "missing"
    UNMANAGED = "unmanaged"


@dataclass(frozen=True)
class FieldChange:
    path: str
    git: Any
    live: Any
    manager: str | None = None
    time: datetime | None = None


def parse_time(text: str | None) -> datetime | None:
    """A Kubernetes timestamp (``2026-11-22T12:03:41Z``) as an aware datetime; None if unusable."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
