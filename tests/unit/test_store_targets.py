"""reconciler.store: per-target revisions, prune-guard holds and releases, private files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.store.db import DB_NAME, Store
from reconciler.store.migrations import MIGRATIONS
from reconciler.store.rows import Release, TargetRevision

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SHA_A = "a" * 40
SHA_B = "b" * 40


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        yield opened


def test_a_target_keeps_what_it_should_run_apart_from_what_it_applied(store: Store) -> None:
    store.record_applied("web", "c1", SHA_A, ["ConfigMap/ns/b", "ConfigMap/ns/a"], T0)
    store.set_desired([("web", "c1", SHA_B), ("web", "c2", SHA_B)])

    assert store.list_targets() == [
        TargetRevision("web", "c1", SHA_B, SHA_A, T0, ("ConfigMap/ns/a", "ConfigMap/ns/b")),
        TargetRevision("web", "c2", SHA_B),
    ]
    assert [t.cluster for t in store.list_targets(cluster="c2")] == ["c2"]

    store.record_applied("web", "c1", SHA_B, [], T0 + timedelta(minutes=1))
    (c1,) = store.list_targets(cluster="c1")
    assert (c1.desired, c1.applied, c1.objects) == (SHA_B, SHA_B, ())

    store.delete_target("web", "c1")
    assert [t.cluster for t in store.list_targets()] == ["c2"]


def test_a_held_revision_is_recorded_and_released_once_with_who_and_when(store: Store) -> None:
    store.record_revision(SHA_A, T0, True, None, held="would prune 12 of 12 objects")
    assert store.last_revision() is not None
    assert store.revision(SHA_A) is not None
    assert store.revision(SHA_A).held == "would prune 12 of 12 objects"  # type: ignore[union-attr]
    assert [r.sha for r in store.find_revisions("aaaa")] == [SHA_A]
    assert store.find_revisions("bbbb") == []
    assert store.find_revisions("not-hex") == []

    assert store.released(SHA_A) is None
    first = store.release(SHA_A, "alice", T0)
    again = store.release(SHA_A, "bob", T0 + timedelta(minutes=5))
    assert first == again == Release(SHA_A, "alice", T0)
    assert store.released(SHA_A) == first

    store.set_held(SHA_A, None)
    assert store.revision(SHA_A).held is None  # type: ignore[union-attr]


def test_migrating_from_version_4_keeps_revisions_and_adds_targets(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    old = sqlite3.connect(state / DB_NAME)
    for number, migration in enumerate(MIGRATIONS[:4], start=1):
        old.executescript(migration)
        old.execute(f"PRAGMA user_version = {number}")
    old.execute(
        "INSERT INTO revisions (sha, seen_at, valid, error)"
        " VALUES (?, '2026-11-22T12:00:00.000000Z', 1, NULL)",
        (SHA_A,),
    )
    old.commit()
    old.close()

    with Store.open(state) as store:
        row = store.revision(SHA_A)
        assert row is not None and row.valid and row.held is None
        assert store.list_targets() == []


def modes(top: Path) -> dict[str, int]:
    """Mode of ``top`` and of everything under it, by path relative to ``top``'s parent."""
    return {
        str(path.relative_to(top.parent)): stat.S_IMODE(path.stat().st_mode)
        for path in [top, *top.rglob("*")]
    }


def test_the_state_dir_and_database_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    script = textwrap.dedent(
        f"""
        import json, os, stat
        from datetime import UTC, datetime
        from pathlib import Path
        from reconciler.store.db import Store
        os.umask(0o022)
        state = Path({str(state)!r})
        with Store.open(state) as store:
            store.record_revision("a" * 40, datetime.now(UTC), True, None)
            # while the connection is open, the -wal and -shm files exist
            print(json.dumps({{p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    while_open = json.loads(done.stdout)
    assert {n: while_open.get(n) for n in ("state.db", "state.db-wal", "state.db-shm")} == {
        "state.db": 0o600,
        "state.db-wal": 0o600,
        "state.db-shm": 0o600,
    }

    found = modes(tmp_path / "deep")
    assert found["deep"] == 0o700
    assert found["deep/state"] == 0o700
    assert found["deep/state/state.db"] == 0o600
    for name, mode in found.items():
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"


def test_an_existing_world_readable_state_is_made_private_on_open(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Store.open(state):
        pass
    os.chmod(state, 0o755)
    os.chmod(state / DB_NAME, 0o644)

    with Store.open(state):
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / DB_NAME).stat().st_mode) == 0o600
