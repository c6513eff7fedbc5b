"""``reconciler rollback`` pins: app (on some clusters or all) held at a revision."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reconciler.store.codec import (
    pin_row,
    ts,
)
from reconciler.store.core import Tables
from reconciler.store.rows import (
    Pin,
)


class PinTables(Tables):
    """Pins."""

    def pin(
        self, app: str, clusters: Sequence[str], revision: str, user: str, at: datetime
    ) -> None:
        """Pin ``app`` on ``clusters`` (``[ALL_CLUSTERS]``: the whole app) to ``revision``."""
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO pins (app, cluster, revision, user, at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (app, cluster) DO UPDATE SET revision = excluded.revision,"
                " user = excluded.user, at = excluded.at",
                [(app, c, revision, user, ts(at)) for c in clusters],
            )

    def unpin(self, app: str, clusters: Sequence[str] | None = None) -> int:
        """Release ``app``'s pins (only on ``clusters`` if given); how many were released."""
        with self._write() as conn:
            if clusters is None:
                cursor = conn.execute("DELETE FROM pins WHERE app = ?", (app,))
            else:
                cursor = conn.executemany(
                    "DELETE FROM pins WHERE app = ? AND cluster = ?",
                    [(app, c) for c in clusters],
                )
            return cursor.rowcount

    def list_pins(self, app: str | None = None) -> list[Pin]:
        if app is None:
            rows = self._read("SELECT * FROM pins ORDER BY app, cluster")
        else:
            rows = self._read("SELECT * FROM pins WHERE app = ? ORDER BY cluster", (app,))
        return [pin_row(row) for row in rows]
