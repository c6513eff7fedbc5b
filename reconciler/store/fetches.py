"""How the last fetches of the config repo went: the last success and the current run of
failures (one row)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from reconciler.store.codec import (
    SOURCE_COLUMNS,
    opt_ts,
    source_row,
    ts,
)
from reconciler.store.core import Tables
from reconciler.store.rows import (
    SourceStatus,
)


class FetchTables(Tables):
    """The config repo's fetches."""

    def record_fetch_success(
        self, location: str, branch: str | None, sha: str, at: datetime
    ) -> SourceStatus:
        """The repo was read at ``sha``: remember when, and clear any run of failures."""
        with self._write() as conn:
            self._upsert_source(
                conn,
                location,
                branch,
                last_success_at=ts(at),
                last_success_sha=sha,
                last_error=None,
                last_error_at=None,
                failing_since=None,
                consecutive_failures=0,
            )
            return self._source_status(conn)

    def record_fetch_failure(
        self, location: str, branch: str | None, error: str, at: datetime
    ) -> SourceStatus:
        """Reading the repo failed with ``error`` (already free of credentials): one more
        consecutive failure; the last success is kept."""
        with self._write() as conn:
            old = conn.execute(f"SELECT {SOURCE_COLUMNS} FROM source WHERE id = 1").fetchone()
            same = old is not None and (old["location"], old["branch"]) == (location, branch)
            previous = source_row(old) if same else SourceStatus(location, branch)
            self._upsert_source(
                conn,
                location,
                branch,
                last_success_at=opt_ts(previous.last_success_at),
                last_success_sha=previous.last_success_sha,
                last_error=error,
                last_error_at=ts(at),
                failing_since=ts(previous.failing_since or at),
                consecutive_failures=previous.consecutive_failures + 1,
            )
            return self._source_status(conn)

    def source_status(self) -> SourceStatus | None:
        """How the last fetches of the config repo went; None before the first one."""
        rows = self._read(f"SELECT {SOURCE_COLUMNS} FROM source WHERE id = 1")
        return source_row(rows[0]) if rows else None

    @staticmethod
    def _upsert_source(
        conn: sqlite3.Connection, location: str, branch: str | None, **values: str | int | None
    ) -> None:
        """Replace the one source row (another location or branch starts a new history)."""
        columns = ["id", "location", "branch", *values]
        conn.execute(
            f"INSERT OR REPLACE INTO source ({', '.join(columns)})"
            f" VALUES ({', '.join('?' for _ in columns)})",
            (1, location, branch, *values.values()),
        )

    @staticmethod
    def _source_status(conn: sqlite3.Connection) -> SourceStatus:
        return source_row(
            conn.execute(f"SELECT {SOURCE_COLUMNS} FROM source WHERE id = 1").fetchone()
        )
