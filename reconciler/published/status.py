"""One member cluster's status as a replica publishes it: encode to ConfigMap data, decode back.

Compact by design: per app one JSON value (sync state, message, revision, health, the open
drift with its field lines, what a rollout gate reads), no managedFields-sized detail, values
of long fields cut, Secret values masked. ``content_hash`` covers what means something
(not the times that move on every pass), so a replica writes only when the status changed and
an idle fleet sends no writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.fields import Drift, FieldChange
from reconciler.health import Health, TargetHealth
from reconciler.masking import is_secret_name, mask_changes
from reconciler.presentation import clip, format_compact
from reconciler.rollout.model import Observation
from reconciler.store.rows import DriftRow, HealthRow, State, StatusRow

FORMAT = "v1"
APP_PREFIX = "app."  # one data key per app: "app.<name>"
MAX_DRIFT_OBJECTS = 20  # open drift records published per app; the count says how many more
MAX_VALUE_JSON = 200  # a field value whose JSON is longer is published cut, as text
_SECRET = {"kind": "Secret", "apiVersion": "v1"}


@dataclass(frozen=True)
class PublishedTarget:
    """One app on the cluster as published: status, health, open drift, rollout observation."""

    status: StatusRow
    health: HealthRow | None = None
    drift: tuple[DriftRow, ...] = ()
    drift_open: int = 0  # open drift records, including those not published
    observation: Observation | None = None


@dataclass(frozen=True)
class ClusterStatus:
    """What one replica published about one member cluster."""

    cluster: str
    replica: str
    targets: tuple[PublishedTarget, ...] = field(default=())

    def target(self, app: str) -> PublishedTarget | None:
        return next((t for t in self.targets if t.status.app == app), None)


def encode(status: ClusterStatus) -> dict[str, str]:
    """ConfigMap ``data``: ``format``, ``cluster``, ``replica`` and one ``app.<name>`` per app."""
    data = {"format": FORMAT, "cluster": status.cluster, "replica": status.replica}
    for target in sorted(status.targets, key=lambda t: t.status.app):
        data[APP_PREFIX + target.status.app] = json.dumps(
            _target_data(target), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    return data


def content_hash(status: ClusterStatus) -> str:
    """A digest of what the status says, without times that move on every pass (when a row was
    last written or last in sync, when health was last read) and without the replica: the same
    status from a new owner needs no write."""
    meaning = {
        t.status.app: _target_data(t, with_times=False)
        for t in sorted(status.targets, key=lambda t: t.status.app)
    }
    text = json.dumps(meaning, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{status.cluster}\0{text}".encode()).hexdigest()[:32]


def decode(data: Mapping[str, str]) -> ClusterStatus:
    """The inverse of :func:`encode`. Raises ValueError on a document it cannot read."""
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown format {data.get('format')!r} (expected {FORMAT!r})")
    cluster, replica = data.get("cluster"), data.get("replica")
    if not cluster or not replica:
        raise ValueError("no cluster or replica")
    targets = []
    for key, value in sorted(data.items()):
        if not key.startswith(APP_PREFIX):
            continue
        app = key[len(APP_PREFIX) :]
        try:
            targets.append(_target_from(app, cluster, json.loads(value)))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"app {app}: {type(err).__name__}: {err}") from None
    return ClusterStatus(cluster, replica, tuple(targets))


def build(
    cluster: str,
    replica: str,
    status: Iterable[StatusRow],
    health: Iterable[HealthRow],
    drift: Iterable[DriftRow],
    observations: Mapping[str, Observation] | None = None,
) -> ClusterStatus:
    """The status of ``cluster`` from the store's rows (its open drift) and, per app, what the
    rollouts observed; Secret values masked, at most ``MAX_DRIFT_OBJECTS`` drift records an app."""
    by_app_health = {h.app: h for h in health if h.cluster == cluster}
    by_app_drift: dict[str, list[DriftRow]] = {}
    for record in drift:
        if record.cluster == cluster and record.open:
            by_app_drift.setdefault(record.app, []).append(record)
    seen = observations or {}
    targets = []
    for row in sorted(status, key=lambda r: r.app):
        if row.cluster != cluster:
            continue
        records = sorted(by_app_drift.get(row.app, []), key=lambda d: (d.object, str(d.kind)))
        targets.append(
            PublishedTarget(
                status=row,
                health=by_app_health.get(row.app),
                drift=tuple(_masked(d) for d in records[:MAX_DRIFT_OBJECTS]),
                drift_open=len(records),
                observation=seen.get(row.app),
            )
        )
    return ClusterStatus(cluster, replica, tuple(targets))


def rows(
    statuses: Iterable[ClusterStatus],
) -> tuple[
    list[StatusRow], dict[tuple[str, str], HealthRow], list[DriftRow], dict[tuple[str, str], str]
]:
    """Status rows, health by target, open drift records and the replica of each target, as a
    local store would give them to ``status`` and ``drift``."""
    status: list[StatusRow] = []
    health: dict[tuple[str, str], HealthRow] = {}
    drift: list[DriftRow] = []
    replicas: dict[tuple[str, str], str] = {}
    for published in statuses:
        for target in published.targets:
            key = (target.status.app, target.status.cluster)
            status.append(target.status)
            replicas[key] = published.replica
            if target.health is not None:
                health[key] = target.health
            drift.extend(target.drift)
    return status, health, drift, replicas


def observations(status: ClusterStatus) -> dict[str, Observation]:
    """Per app, what the owning replica's rollouts observed (for a driver on another replica)."""
    return {t.status.app: t.observation for t in status.targets if t.observation is not None}


# -- one target ---------------------------------------------------------------------------------


def _masked(row: DriftRow) -> DriftRow:
    if not is_secret_name(row.object):
        return row
    masked = mask_changes(_SECRET, list(row.fields))
    return DriftRow(
        row.id,
        row.app,
        row.cluster,
        row.object,
        row.kind,
        masked,
        row.revision,
        row.detected_at,
        row.corrected_at,
    )


def _time(value: datetime | None) -> float | int | None:
    """Seconds since the epoch, to the millisecond (shorter than ISO text, exact enough)."""
    if value is None:
        return None
    seconds = round(value.timestamp(), 3)
    return int(seconds) if seconds == int(seconds) else seconds


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value is not None else None


def _same(value: str | None, revision: str | None) -> str | None:
    """A revision that is the target's own is left out (it is 40 characters each time)."""
    return None if value == revision else value


def _value(value: Any) -> Any:
    """A field value as is when short, else its compact JSON cut (a string)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return value if len(text) <= MAX_VALUE_JSON else clip(format_compact(value), MAX_VALUE_JSON)


def _target_data(target: PublishedTarget, *, with_times: bool = True) -> dict[str, Any]:
    row = target.status
    out: dict[str, Any] = {"sync": str(row.state), "revision": row.revision}
    if row.message:
        out["message"] = row.message
    if with_times:
        out["updatedAt"] = _time(row.updated_at)
        if row.last_synced_at is not None:
            out["syncedAt"] = _time(row.last_synced_at)
    if target.health is not None:
        h = target.health
        health: dict[str, Any] = {"health": str(h.health.health), "since": _time(h.since)}
        if h.health.reason:
            health["reason"] = h.health.reason
        if h.revision != row.revision:
            health["revision"] = h.revision
        if h.health.ready is not None or h.health.desired is not None:
            health["ready"], health["desired"] = h.health.ready, h.health.desired
        if with_times:
            health["assessedAt"] = _time(h.assessed_at)
        out["health"] = health
    if target.drift_open:
        out["driftOpen"] = target.drift_open
        out["drift"] = [
            {
                "id": d.id,
                "object": d.object,
                "kind": str(d.kind),
                **({"revision": d.revision} if d.revision != row.revision else {}),
                "detectedAt": _time(d.detected_at),
                "fields": [
                    {
                        "path": f.path,
                        "git": _value(f.git),
                        "live": _value(f.live),
                        **({"manager": f.manager} if f.manager else {}),
                        **({"time": _time(f.time)} if f.time else {}),
                    }
                    for f in d.fields
                ],
            }
            for d in target.drift
        ]
    o = target.observation
    if o is not None:
        # Fresh: health was read after the revision was applied (what a gate asks); the time
        # of the latest read itself moves on every check and is not published.
        fresh = o.health_at is not None and (o.applied_at is None or o.health_at > o.applied_at)
        observed: dict[str, Any] = {
            "appliedAt": o.applied_at,
            "health": o.health,
            "healthSince": o.health_since,
            "fresh": fresh,
        }
        if o.applied != row.revision:
            observed["applied"] = o.applied
        if o.health_reason:
            observed["reason"] = o.health_reason
        if not o.reachable:
            observed["reachable"] = False
        out["observed"] = observed
    return out


def _target_from(app: str, cluster: str, raw: Mapping[str, Any]) -> PublishedTarget:
    updated = _parse_time(raw.get("updatedAt"))
    status = StatusRow(
        app=app,
        cluster=cluster,
        state=State(raw["sync"]),
        message=raw.get("message", ""),
        revision=raw.get("revision"),
        updated_at=updated or datetime.fromtimestamp(0, UTC),
        last_synced_at=_parse_time(raw.get("syncedAt")),
    )
    health = None
    if "health" in raw:
        h = raw["health"]
        since = _parse_time(h.get("since")) or status.updated_at
        health = HealthRow(
            app=app,
            cluster=cluster,
            health=TargetHealth(
                Health(h["health"]), h.get("reason", ""), h.get("ready"), h.get("desired")
            ),
            revision=h.get("revision", status.revision),
            assessed_at=_parse_time(h.get("assessedAt")) or since,
            since=since,
        )
    drift = tuple(
        DriftRow(
            id=int(d["id"]),
            app=app,
            cluster=cluster,
            object=d["object"],
            kind=Drift(d["kind"]),
            fields=[
                FieldChange(
                    f["path"],
                    f.get("git"),
                    f.get("live"),
                    f.get("manager"),
                    _parse_time(f.get("time")),
                )
                for f in d.get("fields", [])
            ],
            revision=d.get("revision", status.revision),
            detected_at=_parse_time(d["detectedAt"]) or status.updated_at,
            corrected_at=None,
        )
        for d in raw.get("drift", [])
    )
    observation = None
    if "observed" in raw:
        o = raw["observed"]
        applied_at = o.get("appliedAt")
        observation = Observation(
            applied=o.get("applied", status.revision),
            applied_at=applied_at,
            health=o.get("health", "Unknown"),
            health_since=o.get("healthSince"),
            # A fresh read is one after the apply: any time after it says the same to a gate.
            health_at=((applied_at or 0.0) + 1e-3) if o.get("fresh") else None,
            health_reason=o.get("reason", ""),
            reachable=bool(o.get("reachable", True)),
        )
    return PublishedTarget(
        status, health, drift, int(raw.get("driftOpen", len(drift))), observation
    )
