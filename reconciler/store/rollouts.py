"""Progressive rollouts' state and the operators' commands waiting for the daemon."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from reconciler.store.codec import (
    command_row,
    rollout_row,
    ts,
)
from reconciler.store.core import Tables
from reconciler.store.rows import (
    RolloutCommandRow,
    RolloutRow,
)
from reconciler.store.targets import SET_DESIRED

_CONSUME = "UPDATE rollout_commands SET consumed_at = ? WHERE id = ?"


class RolloutTables(Tables):
    """Rollouts and rollout commands."""

    def save_rollout(
        self,
        row: RolloutRow,
        desired: Iterable[tuple[str, str, str | None]] = (),
        consumed: Iterable[int] = (),
        at: datetime | None = None,
    ) -> None:
        """Write a rollout's state, the revisions its targets should now run and the commands
        it took, in one transaction: what a step decided is written before it is acted on.

        One row per app and revision: a new rollout of a revision rolled out before (the branch
        went back to it) replaces that row, start time included, so it is the app's latest."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO rollouts (app, revision, phase, data, started_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (app, revision) DO UPDATE SET"
                " phase = excluded.phase, data = excluded.data, started_at = excluded.started_at,"
                " updated_at = excluded.updated_at",
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
                SET_DESIRED,
                list(desired),
            )
            conn.executemany(
                _CONSUME,
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
                _CONSUME,
                [(ts(at), id) for id in ids],
            )
