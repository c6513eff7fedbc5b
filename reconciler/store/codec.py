"""Rows to and from SQLite text: fixed-width UTC times (text order is time order), JSON fields."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from reconciler.fields import FieldChange
from reconciler.health import Health, TargetHealth
from reconciler.store.rows import (
    DriftKey,
    DriftKind,
    DriftRow,
    HealthChange,
    HealthRow,
    Pin,
    RevisionRow,
    RolloutCommandRow,
    RolloutRow,
    SourceStatus,
    State,
    StatusRow,
    TargetRevision,
)


def ts(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"naive datetime {value.isoformat()}: the store takes timezone-aware times"
        )
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def opt_ts(value: datetime | None) -> str | None:
    return None if value is None else ts(value)


def dt(text: str) -> datetime:
    # fromisoformat reads our fixed format ~50x faster than strptime (50,000 rows: 0.05 s)
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def opt_dt(text: str | None) -> datetime | None:
    return None if text is None else dt(text)


# Stored keys predate FieldChange: before = Git's value, after = the live value (kept as they are
# so state.db files stay readable).
def fields_json(fields: Sequence[FieldChange]) -> str:
    return json.dumps(
        [
            {
                "path": f.path,
                "before": f.git,
                "after": f.live,
                "manager": f.manager,
                "changed_at": opt_ts(f.time),
            }
            for f in fields
        ],
        sort_keys=True,
    )


def fields_from_json(text: str) -> list[FieldChange]:
    return [
        FieldChange(
            path=item["path"],
            git=item.get("before"),
            live=item.get("after"),
            manager=item.get("manager"),
            time=opt_dt(item.get("changed_at")),
        )
        for item in json.loads(text)
    ]


def paths_json(key: DriftKey) -> str:
    return json.dumps(list(key.paths))


DRIFT_COLUMNS = (
    "id, app, cluster, object, kind, fields, revision, detected_at, corrected_at,"
    " healed_by, healed_at"
)


STATUS_COLUMNS = "app, cluster, state, message, revision, updated_at, last_synced_at"
SOURCE_COLUMNS = (
    "location, branch, last_success_at, last_success_sha, last_error, last_error_at,"
    " failing_since, consecutive_failures"
)


def status_row(row: sqlite3.Row) -> StatusRow:
    return StatusRow(
        app=row["app"],
        cluster=row["cluster"],
        state=State(row["state"]),
        message=row["message"],
        revision=row["revision"],
        updated_at=dt(row["updated_at"]),
        last_synced_at=opt_dt(row["last_synced_at"]),
    )


REVISION_COLUMNS = "sha, seen_at, valid, error, held"
TARGET_COLUMNS = "app, cluster, desired, applied, applied_at, objects"


def revision_row(row: sqlite3.Row) -> RevisionRow:
    return RevisionRow(
        row["sha"], dt(row["seen_at"]), bool(row["valid"]), row["error"], row["held"]
    )


def target_revision(row: sqlite3.Row) -> TargetRevision:
    return TargetRevision(
        app=row["app"],
        cluster=row["cluster"],
        desired=row["desired"],
        applied=row["applied"],
        applied_at=opt_dt(row["applied_at"]),
        objects=tuple(json.loads(row["objects"])),
    )


def source_row(row: sqlite3.Row) -> SourceStatus:
    return SourceStatus(
        location=row["location"],
        branch=row["branch"],
        last_success_at=opt_dt(row["last_success_at"]),
        last_success_sha=row["last_success_sha"],
        last_error=row["last_error"],
        last_error_at=opt_dt(row["last_error_at"]),
        failing_since=opt_dt(row["failing_since"]),
        consecutive_failures=int(row["consecutive_failures"]),
    )


def drift_row(row: sqlite3.Row) -> DriftRow:
    return DriftRow(
        id=row["id"],
        app=row["app"],
        cluster=row["cluster"],
        object=row["object"],
        kind=DriftKind(row["kind"]),
        fields=fields_from_json(row["fields"]),
        revision=row["revision"],
        detected_at=dt(row["detected_at"]),
        corrected_at=opt_dt(row["corrected_at"]),
        healed_by=row["healed_by"],
        healed_at=opt_dt(row["healed_at"]),
    )


HEALTH_COLUMNS = "app, cluster, detail, revision, assessed_at, since"
HEALTH_HISTORY_COLUMNS = "id, app, cluster, health, reason, previous, revision, at"


def health_json(health: TargetHealth) -> str:
    return json.dumps(health.to_json(), sort_keys=True)


def health_row(row: sqlite3.Row) -> HealthRow:
    return HealthRow(
        app=row["app"],
        cluster=row["cluster"],
        health=TargetHealth.from_json(json.loads(row["detail"])),
        revision=row["revision"],
        assessed_at=dt(row["assessed_at"]),
        since=dt(row["since"]),
    )


def health_change(row: sqlite3.Row) -> HealthChange:
    return HealthChange(
        id=row["id"],
        app=row["app"],
        cluster=row["cluster"],
        health=Health(row["health"]),
        reason=row["reason"],
        previous=Health(row["previous"]) if row["previous"] else None,
        revision=row["revision"],
        at=dt(row["at"]),
    )


def rollout_row(row: sqlite3.Row) -> RolloutRow:
    return RolloutRow(
        app=row["app"],
        revision=row["revision"],
        phase=row["phase"],
        data=json.loads(row["data"]),
        started_at=dt(row["started_at"]),
        updated_at=dt(row["updated_at"]),
    )


def command_row(row: sqlite3.Row) -> RolloutCommandRow:
    return RolloutCommandRow(
        id=row["id"],
        app=row["app"],
        revision=row["revision"],
        kind=row["kind"],
        stage=row["stage"],
        user=row["user"],
        at=dt(row["at"]),
        consumed_at=opt_dt(row["consumed_at"]),
    )


def pin_row(row: sqlite3.Row) -> Pin:
    return Pin(row["app"], row["cluster"], row["revision"], row["user"], dt(row["at"]))
