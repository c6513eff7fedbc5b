"""The daemon's embedded SQLite state, ``Store``: opening (read-write or read-only), the schema's
migrations, and every table's queries (one mixin per table or concern: revisions, targets,
fetches, health, drift, rollouts, pins). What it keeps: revisions seen, the revisions each
app x cluster target runs and should run, last good revision per app, status, health and its
transitions, drift history, prune-guard releases, and how the last fetches of the config repo
went.

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

import sqlite3
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.private import private_dir, private_file
from reconciler.store.drift import DriftTables
from reconciler.store.fetches import FetchTables
from reconciler.store.health import HealthTables
from reconciler.store.migrations import MIGRATIONS, SCHEMA_VERSION, statements
from reconciler.store.pins import PinTables
from reconciler.store.revisions import RevisionTables
from reconciler.store.rollouts import RolloutTables
from reconciler.store.targets import TargetTables

DB_NAME = "state.db"
BUSY_TIMEOUT_MS = 5000


def _require_state(state_dir: Path) -> None:
    """A clear error when ``state_dir`` holds no daemon state (a typo, or no daemon ran there)."""
    if not (state_dir / DB_NAME).is_file():
        raise ReconcilerError(
            f"no state in {state_dir}: is the daemon running with --state-dir {state_dir}?"
        )


class Store(
    RevisionTables,
    TargetTables,
    FetchTables,
    HealthTables,
    DriftTables,
    RolloutTables,
    PinTables,
):
    """The daemon's state. Open with :meth:`open` (read-write) or :meth:`open_readonly` (CLI)."""

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
    def open_existing(cls, state_dir: Path) -> Store:
        """Open the daemon's existing state to write to it (a CLI command the daemon takes):
        the clear error of :meth:`open_readonly` when there is none, and nothing created."""
        _require_state(state_dir)
        return cls.open(state_dir)

    @classmethod
    def open_readonly(cls, state_dir: Path) -> Store:
        """Open existing state for reading; a clear error when there is none."""
        path = state_dir / DB_NAME
        _require_state(state_dir)
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
