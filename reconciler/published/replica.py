"""One replica's own state as it publishes it: how fetching the config repo goes and the newest
revision it saw (what ``reconciler status`` prints above its table). Pure.

``content_hash`` leaves out what moves on every fetch (the time of the last good fetch, the
count of failed attempts), so a replica writes only when something says more: a new revision,
fetching starting or stopping to fail, a new error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.store.rows import RevisionRow, SourceStatus

FORMAT = "v1"


@dataclass(frozen=True)
class ReplicaStatus:
    replica: str
    source: SourceStatus | None = None
    revision: RevisionRow | None = None


def encode(status: ReplicaStatus) -> dict[str, str]:
    data = {"format": FORMAT, "replica": status.replica}
    if status.source is not None:
        data["source"] = _dump(_source(status.source))
    if status.revision is not None:
        data["revision"] = _dump(_revision(status.revision))
    return data


def content_hash(status: ReplicaStatus) -> str:
    meaning: dict[str, Any] = {}
    if status.source is not None:
        source = _source(status.source)
        for moving in ("lastSuccessAt", "lastErrorAt", "consecutiveFailures"):
            source.pop(moving, None)
        meaning["source"] = source
    if status.revision is not None:
        meaning["revision"] = _revision(status.revision)
    return hashlib.sha256(_dump(meaning).encode()).hexdigest()[:32]


def decode(data: Mapping[str, str]) -> ReplicaStatus:
    """The inverse of :func:`encode`. Raises ValueError on a document it cannot read."""
    if data.get("format") != FORMAT or not data.get("replica"):
        raise ValueError(f"unknown format {data.get('format')!r} or no replica")
    try:
        source = None
        if data.get("source"):
            s = json.loads(data["source"])
            source = SourceStatus(
                s["location"],
                s.get("branch"),
                _time(s.get("lastSuccessAt")),
                s.get("lastSuccessSha"),
                s.get("lastError"),
                _time(s.get("lastErrorAt")),
                _time(s.get("failingSince")),
                int(s.get("consecutiveFailures", 0)),
            )
        revision = None
        if data.get("revision"):
            r = json.loads(data["revision"])
            seen = _time(r["seenAt"])
            assert seen is not None
            revision = RevisionRow(r["sha"], seen, bool(r["valid"]), r.get("error"), r.get("held"))
    except (KeyError, TypeError, ValueError, AssertionError) as err:
        raise ValueError(f"replica {data['replica']}: {type(err).__name__}: {err}") from None
    return ReplicaStatus(data["replica"], source, revision)


def _source(source: SourceStatus) -> dict[str, Any]:
    return {
        "location": source.location,
        "branch": source.branch,
        "lastSuccessAt": _stamp(source.last_success_at),
        "lastSuccessSha": source.last_success_sha,
        "lastError": source.last_error,
        "lastErrorAt": _stamp(source.last_error_at),
        "failingSince": _stamp(source.failing_since),
        "consecutiveFailures": source.consecutive_failures,
    }


def _revision(revision: RevisionRow) -> dict[str, Any]:
    return {
        "sha": revision.sha,
        "seenAt": _stamp(revision.seen_at),
        "valid": revision.valid,
        "error": revision.error,
        "held": revision.held,
    }


def _stamp(value: datetime | None) -> float | None:
    return round(value.timestamp(), 3) if value is not None else None


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value is not None else None


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
