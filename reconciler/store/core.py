"""What every table's queries share: one connection guarded by one lock (a daemon's worker
threads share one store), one IMMEDIATE transaction per write (or per ``batch``), and the WHERE
builder."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class Tables:
    """The connection the table mixins (revisions, targets, health, ...) query through."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, readonly: bool) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self._batching = False
        self.path = path
        self.readonly = readonly

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside commits at once, in one transaction (a pass's rows: one commit
        instead of one per row); each write stays whole (a savepoint). Other threads' calls
        wait until the batch ends."""
        with self._lock:
            if self._batching:
                yield
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._batching = True
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._batching = False

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE so read-then-write cannot race another writer."""
        with self._lock:
            if self._batching:
                self._conn.execute("SAVEPOINT write")
                try:
                    yield self._conn
                    self._conn.execute("RELEASE write")
                except BaseException:
                    self._conn.execute("ROLLBACK TO write")
                    self._conn.execute("RELEASE write")
                    raise
                return
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

    def _per_target(
        self,
        table: str,
        columns: str,
        decode: Callable[[sqlite3.Row], T],
        cluster: str | None = None,
        app: str | None = None,
    ) -> list[T]:
        """Rows of a per-target table by app then cluster; only ``cluster``'s and/or ``app``'s
        if given (filtered by the database: one cluster's rows cost the same however many
        clusters there are)."""
        clause, params = where(("cluster = ?", cluster), ("app = ?", app))
        rows = self._read(f"SELECT {columns} FROM {table}{clause} ORDER BY app, cluster", params)
        return [decode(row) for row in rows]


def where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause (or nothing) of the conditions whose value is not None, and their
    parameters: ``("app = ?", app)`` filters when ``app`` is given; a condition without ``?``
    (``("corrected_at IS NULL", True)``) takes no parameter."""
    clauses = [(sql, value) for sql, value in conditions if value is not None]
    params = [value for sql, value in clauses if "?" in sql]
    text = " AND ".join(sql for sql, _ in clauses)
    return (f" WHERE {text}" if text else ""), params


def limited(sql: str, params: list[Any], limit: int | None) -> tuple[str, list[Any]]:
    """``sql`` with ``LIMIT ?`` (never negative) when a ``limit`` is given."""
    if limit is None:
        return sql, params
    return sql + " LIMIT ?", [*params, max(0, limit)]
