"""Revisions seen (valid, broken, held), prune-guard releases, the remote charts each revision
rendered, and the last good revision per app."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from reconciler.store.codec import (
    REVISION_COLUMNS,
    dt,
    revision_row,
    ts,
)
from reconciler.store.core import Tables
from reconciler.store.rows import (
    Release,
    RevisionRow,
)


class RevisionTables(Tables):
    """Revisions, releases, revision charts, last good revisions."""

    def record_revision(
        self, sha: str, seen_at: datetime, valid: bool, error: str | None, held: str | None = None
    ) -> None:
        """Remember that ``sha`` was seen at ``seen_at``, whether its config was valid and
        whether the prune guard holds it (``held``: why)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO revisions (sha, seen_at, valid, error, held) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (sha) DO UPDATE SET"
                " seen_at = excluded.seen_at, valid = excluded.valid, error = excluded.error,"
                " held = excluded.held",
                (sha, ts(seen_at), int(valid), error, held),
            )

    def set_held(self, sha: str, held: str | None) -> None:
        """Set or clear (None) why the prune guard holds the already recorded ``sha``."""
        with self._write() as conn:
            conn.execute("UPDATE revisions SET held = ? WHERE sha = ?", (held, sha))

    def revision(self, sha: str) -> RevisionRow | None:
        """The recorded revision ``sha`` (a full sha)."""
        rows = self._read(f"SELECT {REVISION_COLUMNS} FROM revisions WHERE sha = ?", (sha,))
        return revision_row(rows[0]) if rows else None

    def find_revisions(self, prefix: str) -> list[RevisionRow]:
        """Recorded revisions whose sha starts with ``prefix`` (lowercase hex), newest first."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        rows = self._read(
            f"SELECT {REVISION_COLUMNS} FROM revisions WHERE sha >= ? AND sha < ?"
            " ORDER BY seen_at DESC, rowid DESC",
            (prefix, prefix + "g"),
        )
        return [revision_row(row) for row in rows]

    def last_revision(self) -> RevisionRow | None:
        """The most recently seen revision."""
        rows = self._read(
            f"SELECT {REVISION_COLUMNS} FROM revisions ORDER BY seen_at DESC, rowid DESC LIMIT 1"
        )
        return revision_row(rows[0]) if rows else None

    def last_valid_revision(self) -> RevisionRow | None:
        """The most recently seen revision whose config was valid (what a restart falls back on
        when the newest one is not)."""
        rows = self._read(
            f"SELECT {REVISION_COLUMNS} FROM revisions WHERE valid = 1"
            " ORDER BY seen_at DESC, rowid DESC LIMIT 1"
        )
        return revision_row(rows[0]) if rows else None

    def valid_revisions(self, limit: int = 50) -> list[RevisionRow]:
        """Revisions whose config was valid, most recently seen first, at most ``limit`` (the
        candidates a restart on an invalid head may fall back on)."""
        rows = self._read(
            f"SELECT {REVISION_COLUMNS} FROM revisions WHERE valid = 1"
            " ORDER BY seen_at DESC, rowid DESC LIMIT ?",
            (max(0, limit),),
        )
        return [revision_row(row) for row in rows]

    def release(self, sha: str, user: str, at: datetime) -> Release:
        """Record that ``user`` released revision ``sha`` from the prune guard at ``at`` (the
        first release is kept)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO releases (sha, released_by, released_at) VALUES (?, ?, ?)"
                " ON CONFLICT (sha) DO NOTHING",
                (sha, user, ts(at)),
            )
            row = conn.execute(
                "SELECT sha, released_by, released_at FROM releases WHERE sha = ?", (sha,)
            ).fetchone()
        return Release(row["sha"], row["released_by"], dt(row["released_at"]))

    def released(self, sha: str) -> Release | None:
        """The release of ``sha``, if someone released it."""
        rows = self._read(
            "SELECT sha, released_by, released_at FROM releases WHERE sha = ?", (sha,)
        )
        if not rows:
            return None
        return Release(rows[0]["sha"], rows[0]["released_by"], dt(rows[0]["released_at"]))

    def record_charts(self, sha: str, charts: Mapping[str, tuple[str, str, str]]) -> None:
        """Remember app -> (source, version, digest) of the remote charts ``sha`` rendered."""
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO revision_charts (sha, app, source, version, digest)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha, app) DO UPDATE SET"
                " source = excluded.source, version = excluded.version, digest = excluded.digest",
                [(sha, app, *chart) for app, chart in sorted(charts.items())],
            )

    def revision_charts(self, sha: str) -> dict[str, tuple[str, str, str]]:
        """app -> (source, version, digest) recorded for ``sha``."""
        rows = self._read(
            "SELECT app, source, version, digest FROM revision_charts WHERE sha = ?", (sha,)
        )
        return {
            str(r["app"]): (str(r["source"]), str(r["version"]), str(r["digest"])) for r in rows
        }

    def chart_pins(self, limit: int = 50) -> dict[str, dict[str, tuple[str, str]]]:
        """sha -> app -> (version, digest) for the ``limit`` revisions seen last."""
        rows = self._read(
            "SELECT sha, app, version, digest FROM revision_charts WHERE sha IN"
            " (SELECT sha FROM revisions ORDER BY seen_at DESC, rowid DESC LIMIT ?)",
            (max(0, limit),),
        )
        pins: dict[str, dict[str, tuple[str, str]]] = {}
        for r in rows:
            pins.setdefault(str(r["sha"]), {})[str(r["app"])] = (
                str(r["version"]),
                str(r["digest"]),
            )
        return pins

    def set_last_good(self, app: str, sha: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO last_good (app, sha) VALUES (?, ?)"
                " ON CONFLICT (app) DO UPDATE SET sha = excluded.sha",
                (app, sha),
            )

    def last_good(self, app: str) -> str | None:
        rows = self._read("SELECT sha FROM last_good WHERE app = ?", (app,))
        return str(rows[0]["sha"]) if rows else None

    def last_goods(self) -> dict[str, str]:
        """Every app's last good revision."""
        return {str(r["app"]): str(r["sha"]) for r in self._read("SELECT app, sha FROM last_good")}
