"""Embedded SQLite state: revisions seen, the revisions each app x cluster target runs and
should run, last good revision per app, status, health and its transitions, drift history,
prune-guard releases, and how the last fetches of the config repo went.

One file, ``<state_dir>/state.db``, in WAL mode so the CLI can read while the daemon writes.
The schema is versioned with ``PRAGMA user_version`` and migrated forward on open by the ordered
``MIGRATIONS`` list (index i takes version i to i+1; never edit a released entry, append one).

The store has no clock: callers pass every timestamp, and every timestamp is timezone-aware and
stored as fixed-width UTC text, so text order is time order. It never logs. Values in drift
fields are stored as given (callers mask Secret values before they get here).

Threads: one connection guarded by a lock, so a daemon's worker threads can share one Store.

Private: the state dir is 0700 and ``state.db`` (hence its ``-wal`` and ``-shm``, which SQLite
creates with the database's mode) 0600, whatever the umask.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.fields import FieldChange
from reconciler.health import Health, TargetHealth
from reconciler.private import private_dir, private_file
from reconciler.store.codec import (
    DRIFT_COLUMNS,
    HEALTH_COLUMNS,
    HEALTH_HISTORY_COLUMNS,
    REVISION_COLUMNS,
    SOURCE_COLUMNS,
    STATUS_COLUMNS,
    TARGET_COLUMNS,
    command_row,
    drift_row,
    dt,
    fields_json,
    health_change,
    health_json,
    health_row,
    opt_ts,
    paths_json,
    pin_row,
    revision_row,
    rollout_row,
    source_row,
    status_row,
    target_revision,
    ts,
)
from reconciler.store.migrations import MIGRATIONS, SCHEMA_VERSION, statements
from reconciler.store.rows import (
    DriftKey,
    DriftRow,
    HealthChange,
    HealthRow,
    Pin,
    Release,
    RevisionRow,
    RolloutCommandRow,
    RolloutRow,
    SourceStatus,
    State,
    StatusRow,
    TargetRevision,
    drift_key,
)

DB_NAME = "state.db"
BUSY_TIMEOUT_MS = 5000


class Store:
    """The daemon's state. Open with :meth:`open` (read-write) or :meth:`open_readonly` (CLI)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, readonly: bool) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path
        self.readonly = readonly

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        """Open (creating if needed) ``state_dir/state.db`` and migrate it to the current schema."""
        path = state_dir / DB_NAME
        try:
            private_dir(state_dir)
            private_file(path)
            for suffix in ("-wal", "-shm"):  # left by an older version, say
                sidecar = path.with_name(path.name + suffix)
                if sidecar.exists():
                    private_file(sidecar)
            conn = cls._connect(str(path), uri=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except (OSError, sqlite3.Error) as err:
            raise ReconcilerError(f"{path}: cannot open state database: {err}") from err
        store = cls(conn, path, readonly=False)
        try:
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def open_readonly(cls, state_dir: Path) -> Store:
        """Open existing state for reading; a clear error when there is none."""
        path = state_dir / DB_NAME
        if not path.is_file():
            raise ReconcilerError(
                f"no state in {state_dir}: is the daemon running with --state-dir {state_dir}?"
            )
        try:
            conn = cls._connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as err:
            raise ReconcilerError(f"{path}: cannot read state database: {err}") from err
        if version != SCHEMA_VERSION:
            conn.close()
            raise ReconcilerError(
                f"{path}: state schema version {version}, this reconciler reads version "
                f"{SCHEMA_VERSION}: run the daemon of this version on it once, or upgrade"
            )
        return cls(conn, path, readonly=True)

    @staticmethod
    def _connect(database: str, *, uri: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(
            database,
            uri=uri,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # shared by threads, serialised by Store._lock
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn

    def _migrate(self) -> None:
        with self._write():
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ReconcilerError(
                    f"{self.path}: state schema version {version} is newer than this reconciler "
                    f"knows ({SCHEMA_VERSION}): upgrade reconciler or use another --state-dir"
                )
            for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements(sql):
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {number}")

    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def data_version(self) -> int:
        """A number that changes when another connection commits to the database (SQLite's
        ``PRAGMA data_version``): a reader learns cheaply whether anything changed."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE so read-then-write cannot race another writer."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    # -- revisions ------------------------------------------------------------------------

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

    # -- prune-guard releases -------------------------------------------------------------

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

    # -- per-target revisions -------------------------------------------------------------

    def set_desired(self, targets: Iterable[tuple[str, str, str | None]]) -> None:
        """Record for each (app, cluster, revision) the revision that target should run, in
        one transaction; what it applied is kept."""
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO targets (app, cluster, desired) VALUES (?, ?, ?)"
                " ON CONFLICT (app, cluster) DO UPDATE SET desired = excluded.desired",
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
        if cluster is None:
            rows = self._read(f"SELECT {TARGET_COLUMNS} FROM targets ORDER BY app, cluster")
        else:
            rows = self._read(
                f"SELECT {TARGET_COLUMNS} FROM targets WHERE cluster = ? ORDER BY app",
                (cluster,),
            )
        return [target_revision(row) for row in rows]

    def delete_target(self, app: str, cluster: str) -> None:
        """Forget a target: the app left the cluster and nothing of it is left there."""
        with self._write() as conn:
            conn.execute("DELETE FROM targets WHERE app = ? AND cluster = ?", (app, cluster))

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

    def valid_revisions(self, limit: int = 50) -> list[RevisionRow]:
        """Revisions whose config was valid, most recently seen first, at most ``limit`` (the
        candidates a restart on an invalid head may fall back on)."""
        rows = self._read(
            f"SELECT {REVISION_COLUMNS} FROM revisions WHERE valid = 1"
            " ORDER BY seen_at DESC, rowid DESC LIMIT ?",
            (max(0, limit),),
        )
        return [revision_row(row) for row in rows]

    # -- the config repo's fetches ------------------------------------------------------------

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

    # -- last good revision per app -------------------------------------------------------

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

    # -- status per app x cluster ---------------------------------------------------------

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
        given (filtered by the database, so one cluster's rows cost the same however many
        clusters there are)."""
        clause, params = _target_filter(cluster, app)
        rows = self._read(
            f"SELECT {STATUS_COLUMNS} FROM status{clause} ORDER BY app, cluster", params
        )
        return [status_row(row) for row in rows]

    def delete_status(self, app: str, cluster: str) -> None:
        """Forget an app on a cluster (the app no longer targets it): status and health."""
        with self._write() as conn:
            conn.execute("DELETE FROM status WHERE app = ? AND cluster = ?", (app, cluster))
            conn.execute("DELETE FROM health WHERE app = ? AND cluster = ?", (app, cluster))

    # -- health per app x cluster ---------------------------------------------------------

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
        clause, params = _target_filter(cluster, app)
        rows = self._read(
            f"SELECT {HEALTH_COLUMNS} FROM health{clause} ORDER BY app, cluster", params
        )
        return [health_row(row) for row in rows]

    def health_history(
        self,
        app: str | None = None,
        cluster: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[HealthChange]:
        """Health transitions, newest first."""
        where: list[str] = []
        params: list[Any] = []
        if app is not None:
            where.append("app = ?")
            params.append(app)
        if cluster is not None:
            where.append("cluster = ?")
            params.append(cluster)
        if since is not None:
            where.append("at >= ?")
            params.append(ts(since))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        clause += " ORDER BY at DESC, id DESC"
        if limit is not None:
            clause += " LIMIT ?"
            params.append(max(0, limit))
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

    # -- drift history --------------------------------------------------------------------

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
        where: list[str] = []
        params: list[Any] = []
        if app is not None:
            where.append("app = ?")
            params.append(app)
        if cluster is not None:
            where.append("cluster = ?")
            params.append(cluster)
        if since is not None:
            where.append("detected_at >= ?")
            params.append(ts(since))
        if open_only:
            where.append("corrected_at IS NULL")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        if limit is not None:
            clause += " ORDER BY detected_at DESC, id DESC LIMIT ?"
            params.append(max(0, limit))
        else:
            clause += " ORDER BY detected_at DESC, id DESC"
        rows = self._read(f"SELECT {DRIFT_COLUMNS} FROM drift{clause}", params)
        return [drift_row(row) for row in rows]

    # -- rollouts -------------------------------------------------------------------------

    def save_rollout(
        self,
        row: RolloutRow,
        desired: Iterable[tuple[str, str, str | None]] = (),
        consumed: Iterable[int] = (),
        at: datetime | None = None,
    ) -> None:
        """Write a rollout's state, the revisions its targets should now run and the commands
        it took, in one transaction: what a step decided is written before it is acted on."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO rollouts (app, revision, phase, data, started_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (app, revision) DO UPDATE SET"
                " phase = excluded.phase, data = excluded.data, updated_at = excluded.updated_at",
                (
                    row.app,
                    row.revision,
                    row.phase,
                    json.dumps(row.data, sort_keys=True),
                    ts(row.started_at),
                    ts(row.updated_at),
                ),
            )
            conn.executemany(
                "INSERT INTO targets (app, cluster, desired) VALUES (?, ?, ?)"
                " ON CONFLICT (app, cluster) DO UPDATE SET desired = excluded.desired",
                list(desired),
            )
            conn.executemany(
                "UPDATE rollout_commands SET consumed_at = ? WHERE id = ?",
                [(ts(at or row.updated_at), id) for id in consumed],
            )

    def rollout(self, app: str, revision: str) -> RolloutRow | None:
        rows = self._read("SELECT * FROM rollouts WHERE app = ? AND revision = ?", (app, revision))
        return rollout_row(rows[0]) if rows else None

    def latest_rollouts(self, app: str | None = None) -> list[RolloutRow]:
        """The newest rollout of each app (of ``app`` only if given), by app."""
        rows = self._read(
            "SELECT * FROM rollouts r WHERE (? IS NULL OR r.app = ?) AND NOT EXISTS"
            " (SELECT 1 FROM rollouts n WHERE n.app = r.app AND (n.started_at > r.started_at"
            " OR (n.started_at = r.started_at AND n.rowid > r.rowid)))"
            " ORDER BY r.app",
            (app, app),
        )
        return [rollout_row(row) for row in rows]

    def list_rollouts(self, app: str) -> list[RolloutRow]:
        """Every rollout of ``app``, newest first."""
        rows = self._read(
            "SELECT * FROM rollouts WHERE app = ? ORDER BY started_at DESC, rowid DESC", (app,)
        )
        return [rollout_row(row) for row in rows]

    def add_rollout_command(
        self, app: str, revision: str, kind: str, stage: str | None, user: str, at: datetime
    ) -> RolloutCommandRow:
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO rollout_commands (app, revision, kind, stage, user, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (app, revision, kind, stage, user, ts(at)),
            )
            row = conn.execute(
                "SELECT * FROM rollout_commands WHERE id = ?", (cursor.lastrowid,)
            ).fetchone()
        return command_row(row)

    def pending_rollout_commands(self) -> list[RolloutCommandRow]:
        """Commands the daemon has not taken yet, oldest first."""
        rows = self._read("SELECT * FROM rollout_commands WHERE consumed_at IS NULL ORDER BY id")
        return [command_row(row) for row in rows]

    def consume_rollout_commands(self, ids: Iterable[int], at: datetime) -> None:
        """Mark commands taken without a rollout step (their rollout is gone or finished)."""
        with self._write() as conn:
            conn.executemany(
                "UPDATE rollout_commands SET consumed_at = ? WHERE id = ?",
                [(ts(at), id) for id in ids],
            )

    # -- pins -------------------------------------------------------------------------------

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

    def prune_drift(self, older_than: timedelta, now: datetime) -> int:
        """Delete drift records corrected before ``now - older_than``; open records are always
        kept. Returns how many were deleted."""
        cutoff = ts(now - older_than)
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM drift WHERE corrected_at IS NOT NULL AND corrected_at < ?", (cutoff,)
            )
            return cursor.rowcount


def _target_filter(cluster: str | None, app: str | None) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause (or nothing) and its parameters for rows of one cluster and/or app."""
    where: list[str] = []
    params: list[Any] = []
    if cluster is not None:
        where.append("cluster = ?")
        params.append(cluster)
    if app is not None:
        where.append("app = ?")
        params.append(app)
    return (f" WHERE {' AND '.join(where)}" if where else ""), params
