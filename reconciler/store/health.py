"""Health per target as last judged, and its transitions (the health history)."""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciler.health import Health, TargetHealth
from reconciler.store.codec import (
    HEALTH_COLUMNS,
    HEALTH_HISTORY_COLUMNS,
    dt,
    health_change,
    health_json,
    health_row,
    opt_ts,
    ts,
)
from reconciler.store.core import Tables, limited, where
from reconciler.store.rows import (
    HealthChange,
    HealthRow,
)


class HealthTables(Tables):
    """Health and health history."""

    def set_health(
        self, app: str, cluster: str, health: TargetHealth, revision: str | None, now: datetime
    ) -> HealthChange | None:
        """Record a target's health; a change of state (Healthy, Degraded, ...) is also kept as
        a transition, which is returned. A new reason in the same state is no transition."""
        with self._write() as conn:
            old = conn.execute(
                "SELECT health, since FROM health WHERE app = ? AND cluster = ?", (app, cluster)
            ).fetchone()
            previous = Health(old["health"]) if old is not None else None
            changed = previous is not health.health
            since = ts(now) if changed else old["since"]
            conn.execute(
                "INSERT INTO health (app, cluster, health, detail, revision, assessed_at, since)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (app, cluster) DO UPDATE SET health = excluded.health,"
                " detail = excluded.detail, revision = excluded.revision,"
                " assessed_at = excluded.assessed_at, since = excluded.since",
                (
                    app,
                    cluster,
                    health.health.value,
                    health_json(health),
                    revision,
                    ts(now),
                    since,
                ),
            )
            if not changed:
                return None
            cursor = conn.execute(
                "INSERT INTO health_history (app, cluster, health, reason, previous, revision, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    app,
                    cluster,
                    health.health.value,
                    health.reason,
                    previous.value if previous is not None else None,
                    revision,
                    ts(now),
                ),
            )
            assert cursor.lastrowid is not None
            return HealthChange(
                cursor.lastrowid,
                app,
                cluster,
                health.health,
                health.reason,
                previous,
                revision,
                dt(ts(now)),
            )

    def list_health(self, cluster: str | None = None, app: str | None = None) -> list[HealthRow]:
        """Health per target, ordered by app then cluster; only ``cluster``'s and/or ``app``'s."""
        return self._per_target("health", HEALTH_COLUMNS, health_row, cluster, app)

    def health_history(
        self,
        app: str | None = None,
        cluster: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[HealthChange]:
        """Health transitions, newest first."""
        clause, params = where(
            ("app = ?", app), ("cluster = ?", cluster), ("at >= ?", opt_ts(since))
        )
        clause, params = limited(clause + " ORDER BY at DESC, id DESC", params, limit)
        rows = self._read(f"SELECT {HEALTH_HISTORY_COLUMNS} FROM health_history{clause}", params)
        return [health_change(row) for row in rows]

    def prune_health_history(self, older_than: timedelta, now: datetime) -> int:
        """Delete transitions older than ``now - older_than``, except each target's latest."""
        cutoff = ts(now - older_than)
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM health_history WHERE at < ? AND id NOT IN"
                " (SELECT MAX(id) FROM health_history GROUP BY app, cluster)",
                (cutoff,),
            )
            return cursor.rowcount
