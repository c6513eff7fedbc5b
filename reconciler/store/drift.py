"""Drift history: one record per drift (object and kind) while open, closed when corrected,
pruned when old."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from reconciler.fields import FieldChange
from reconciler.store.codec import (
    DRIFT_COLUMNS,
    drift_row,
    dt,
    fields_json,
    opt_ts,
    paths_json,
    ts,
)
from reconciler.store.core import Tables, limited, where
from reconciler.store.rows import (
    DriftKey,
    DriftRow,
    drift_key,
)


class DriftTables(Tables):
    """Drift records."""

    def record_drift(
        self,
        app: str,
        cluster: str,
        object: str,
        kind: str,
        fields: Sequence[FieldChange],
        revision: str | None,
        now: datetime,
    ) -> DriftRow:
        """Record a drift observation, or update the still-open record of the same drift.

        Same drift = same app, cluster, object and kind. An open record keeps its id, revision
        and detection time; its field paths, values, managers and change times are refreshed to
        this latest observation (a drift whose set of fields changed was not corrected).
        """
        key = drift_key(object, kind, fields)
        encoded = fields_json(fields)
        with self._write() as conn:
            open_row = conn.execute(
                f"SELECT {DRIFT_COLUMNS} FROM drift WHERE app = ? AND cluster = ? AND object = ?"
                " AND kind = ? AND corrected_at IS NULL",
                (app, cluster, object, key.kind.value),
            ).fetchone()
            if open_row is not None:
                conn.execute(
                    "UPDATE drift SET fields = ?, paths = ? WHERE id = ?",
                    (encoded, paths_json(key), open_row["id"]),
                )
                drift_id = int(open_row["id"])
            else:
                cursor = conn.execute(
                    "INSERT INTO drift (app, cluster, object, kind, paths, fields, revision,"
                    " detected_at, corrected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                    (
                        app,
                        cluster,
                        object,
                        key.kind.value,
                        paths_json(key),
                        encoded,
                        revision,
                        ts(now),
                    ),
                )
                drift_id = int(cursor.lastrowid or 0)
            row = conn.execute(
                f"SELECT {DRIFT_COLUMNS} FROM drift WHERE id = ?", (drift_id,)
            ).fetchone()
        return drift_row(row)

    def mark_corrected(self, id: int, at: datetime) -> bool:
        """Close an open drift record; False if it does not exist or was already closed."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE drift SET corrected_at = ? WHERE id = ? AND corrected_at IS NULL",
                (ts(at), id),
            )
            return cursor.rowcount > 0

    def mark_healed(self, ids: Iterable[int], user: str, at: datetime) -> int:
        """Mark drift records as healed by ``user`` at ``at`` (a one-shot heal), closing those
        still open; how many were marked. A record the daemon closed meanwhile (it saw the
        heal) keeps its closing time and is marked too."""
        with self._write() as conn:
            marked = 0
            for id in ids:
                cursor = conn.execute(
                    "UPDATE drift SET corrected_at = COALESCE(corrected_at, ?), healed_by = ?,"
                    " healed_at = ? WHERE id = ?",
                    (ts(at), user, ts(at), id),
                )
                marked += cursor.rowcount
            return marked

    def healed_since(self, app: str, cluster: str, since: datetime) -> set[str]:
        """The objects of ``app`` on ``cluster`` whose drift was healed by hand at ``since`` or
        later (a pass that read them before then saw what the heal has since corrected)."""
        rows = self._read(
            "SELECT DISTINCT object FROM drift WHERE app = ? AND cluster = ?"
            " AND healed_at IS NOT NULL AND healed_at >= ?",
            (app, cluster, ts(since)),
        )
        return {str(row["object"]) for row in rows}

    def close_resolved(
        self, app: str, cluster: str, still_open_keys: Iterable[DriftKey], now: datetime
    ) -> list[DriftRow]:
        """Close every open drift of ``app`` on ``cluster`` whose key was not seen in the latest
        check (``still_open_keys``, see :attr:`DriftRow.key`; matched on object and kind, see
        :attr:`DriftKey.ident`); return the records closed."""
        keep = {DriftKey(*k).ident for k in still_open_keys}
        closed: list[DriftRow] = []
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {DRIFT_COLUMNS} FROM drift"
                " WHERE app = ? AND cluster = ? AND corrected_at IS NULL ORDER BY id",
                (app, cluster),
            ).fetchall()
            for row in rows:
                record = drift_row(row)
                if record.key.ident in keep:
                    continue
                conn.execute("UPDATE drift SET corrected_at = ? WHERE id = ?", (ts(now), record.id))
                closed.append(replace(record, corrected_at=dt(ts(now))))
        return closed

    def list_drift(
        self,
        app: str | None = None,
        cluster: str | None = None,
        since: datetime | None = None,
        open_only: bool = False,
        limit: int | None = None,
    ) -> list[DriftRow]:
        """Drift records, newest first; ``since`` keeps those detected at or after it,
        ``open_only`` those not corrected yet, ``limit`` at most that many (newest)."""
        clause, params = where(
            ("app = ?", app),
            ("cluster = ?", cluster),
            ("detected_at >= ?", opt_ts(since)),
            ("corrected_at IS NULL", True if open_only else None),
        )
        clause, params = limited(clause + " ORDER BY detected_at DESC, id DESC", params, limit)
        rows = self._read(f"SELECT {DRIFT_COLUMNS} FROM drift{clause}", params)
        return [drift_row(row) for row in rows]

    def open_drift_counts(
        self, app: str | None = None, cluster: str | None = None
    ) -> dict[tuple[str, str], int]:
        """How many drift records are open per ``(app, cluster)``, whatever their number (a
        list with a ``limit`` cannot say how many it left out)."""
        clause, params = where(
            ("app = ?", app), ("cluster = ?", cluster), ("corrected_at IS NULL", True)
        )
        rows = self._read(
            f"SELECT app, cluster, COUNT(*) AS n FROM drift{clause} GROUP BY app, cluster", params
        )
        return {(str(row["app"]), str(row["cluster"])): int(row["n"]) for row in rows}

    def prune_drift(self, older_than: timedelta, now: datetime) -> int:
        """Delete drift records corrected before ``now - older_than``; open records are always
        kept. Returns how many were deleted."""
        cutoff = ts(now - older_than)
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM drift WHERE corrected_at IS NOT NULL AND corrected_at < ?", (cutoff,)
            )
            return cursor.rowcount
