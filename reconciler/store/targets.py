"""Per app x cluster target: the revision it should run and the one it applied (with its
objects), and its status row."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from reconciler.store.codec import (
    STATUS_COLUMNS,
    TARGET_COLUMNS,
    opt_ts,
    status_row,
    target_revision,
    ts,
)
from reconciler.store.core import Tables
from reconciler.store.rows import (
    State,
    StatusRow,
    TargetRevision,
)

# (app, cluster, revision): the revision the target should run; what it applied is kept.
SET_DESIRED = (
    "INSERT INTO targets (app, cluster, desired) VALUES (?, ?, ?)"
    " ON CONFLICT (app, cluster) DO UPDATE SET desired = excluded.desired"
)


class TargetTables(Tables):
    """Targets' revisions and status rows."""

    def set_desired(self, targets: Iterable[tuple[str, str, str | None]]) -> None:
        """Record for each (app, cluster, revision) the revision that target should run, in
        one transaction; what it applied is kept."""
        with self._write() as conn:
            conn.executemany(
                SET_DESIRED,
                list(targets),
            )

    def record_applied(
        self, app: str, cluster: str, revision: str, objects: Iterable[str], at: datetime
    ) -> None:
        """A pass applied ``revision`` of ``app`` to ``cluster`` in full: these are its objects."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO targets (app, cluster, desired, applied, applied_at, objects)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (app, cluster) DO UPDATE SET applied = excluded.applied,"
                " applied_at = excluded.applied_at, objects = excluded.objects",
                (app, cluster, revision, revision, ts(at), json.dumps(sorted(set(objects)))),
            )

    def list_targets(self, cluster: str | None = None) -> list[TargetRevision]:
        """Every target's revisions (only ``cluster``'s if given), by app then cluster."""
        return self._per_target("targets", TARGET_COLUMNS, target_revision, cluster)

    def delete_target(self, app: str, cluster: str) -> None:
        """Forget a target: the app left the cluster and nothing of it is left there."""
        with self._write() as conn:
            conn.execute("DELETE FROM targets WHERE app = ? AND cluster = ?", (app, cluster))

    def set_status(self, row: StatusRow) -> None:
        """Upsert the status of ``row.app`` on ``row.cluster``.

        A ``last_synced_at`` of None keeps the previous value: a failure does not erase when the
        app was last in sync.
        """
        with self._write() as conn:
            conn.execute(
                "INSERT INTO status"
                " (app, cluster, state, message, revision, updated_at, last_synced_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (app, cluster) DO UPDATE SET"
                " state = excluded.state, message = excluded.message,"
                " revision = excluded.revision, updated_at = excluded.updated_at,"
                " last_synced_at = COALESCE(excluded.last_synced_at, status.last_synced_at)",
                (
                    row.app,
                    row.cluster,
                    State(row.state).value,
                    row.message,
                    row.revision,
                    ts(row.updated_at),
                    opt_ts(row.last_synced_at),
                ),
            )

    def list_status(self, cluster: str | None = None, app: str | None = None) -> list[StatusRow]:
        """Status rows, ordered by app then cluster; only ``cluster``'s and/or ``app``'s if
        given."""
        return self._per_target("status", STATUS_COLUMNS, status_row, cluster, app)

    def delete_status(self, app: str, cluster: str) -> None:
        """Forget an app on a cluster (the app no longer targets it): status and health."""
        with self._write() as conn:
            conn.execute("DELETE FROM status WHERE app = ? AND cluster = ?", (app, cluster))
            conn.execute("DELETE FROM health WHERE app = ? AND cluster = ?", (app, cluster))
