"""reconciler.store on real SQLite files in tmp_path."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.fields import Drift, FieldChange
from reconciler.store.db import DB_NAME, Store
from reconciler.store.migrations import MIGRATIONS, SCHEMA_VERSION
from reconciler.store.rows import (
    DriftKey,
    DriftRow,
    RevisionRow,
    SourceStatus,
    State,
    StatusRow,
)

T0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        yield opened


def replicas(after: int, manager: str = "kubectl-edit") -> list[FieldChange]:
    return [FieldChange("spec.replicas", 5, after, manager, at(-1))]


# -- opening and migrations -------------------------------------------------------------------


def test_open_creates_the_state_dir_and_a_wal_database(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"

    with Store.open(state) as store:
        assert store.schema_version() == SCHEMA_VERSION

    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_open_migrates_an_old_database_and_keeps_its_data(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    old = sqlite3.connect(state / DB_NAME)
    old.executescript(MIGRATIONS[0])
    old.execute("PRAGMA user_version = 1")
    old.execute(
        "INSERT INTO drift (app, cluster, object, kind, paths, fields, revision, detected_at)"
        " VALUES ('web', 'c1', 'Deployment/demo/web', 'missing', '[]', '[]', 'abc',"
        " '2026-11-22T12:00:00.000000Z')"
    )
    old.execute("INSERT INTO last_good VALUES ('web', 'abc')")
    old.commit()
    old.close()

    with Store.open(state) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.last_good("web") == "abc"
        [row] = store.list_drift()
        assert (row.object, row.kind, row.detected_at) == (
            "Deployment.apps/demo/web",
            "missing",
            T0,
        )
        indexes = {
            r[0] for r in sqlite3.connect(state / DB_NAME).execute("SELECT name FROM sqlite_master")
        }
    assert {"drift_open_object", "drift_detected"} <= indexes


def test_objects_kept_by_name_get_their_group_in_the_name(tmp_path: Path) -> None:
    """Version 10: names written before objects were always named with their group
    (``Job/ns/j``) become ``Job.batch/ns/j``; core and dotted groups keep theirs."""
    state = tmp_path / "state"
    state.mkdir()
    old = sqlite3.connect(state / DB_NAME)
    for migration in MIGRATIONS[:9]:
        old.executescript(migration)
    old.execute("PRAGMA user_version = 9")
    names = ["ConfigMap/ns/c", "CronJob/ns/n", "Job/ns/j", "Widget.example.com/ns/w"]
    old.execute(
        "INSERT INTO targets (app, cluster, desired, applied, applied_at, objects)"
        " VALUES ('web', 'c1', 'abc', 'abc', '2026-11-22T12:00:00.000000Z', ?)",
        (json.dumps(names),),
    )
    for name in ("Deployment/demo/web", "ClusterRole.rbac.authorization.k8s.io/view"):
        old.execute(
            "INSERT INTO drift (app, cluster, object, kind, paths, fields, revision, detected_at)"
            " VALUES ('web', 'c1', ?, 'missing', '[]', '[]', 'abc', '2026-11-22T12:00:00.000000Z')",
            (name,),
        )
    old.commit()
    old.close()

    with Store.open(state) as store:
        [target] = store.list_targets()
        assert sorted(target.objects) == [
            "ConfigMap/ns/c",
            "CronJob.batch/ns/n",
            "Job.batch/ns/j",
            "Widget.example.com/ns/w",
        ]
        assert sorted(r.object for r in store.list_drift()) == [
            "ClusterRole.rbac.authorization.k8s.io/view",
            "Deployment.apps/demo/web",
        ]


def test_open_migrates_a_database_at_the_previous_version_keeping_its_data(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    old = sqlite3.connect(state / DB_NAME)
    for migration in MIGRATIONS[:-1]:
        old.executescript(migration)
    old.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    old.execute(
        "INSERT INTO revisions (sha, seen_at, valid, error)"
        " VALUES ('aaa', '2026-11-22T12:00:00.000000Z', 1, NULL)"
    )
    old.execute(
        "INSERT INTO status VALUES ('web', 'c1', 'Synced', '', 'aaa',"
        " '2026-11-22T12:00:00.000000Z', NULL)"
    )
    old.commit()
    old.close()

    with Store.open(state) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.source_status() is None
        assert store.last_valid_revision() == RevisionRow("aaa", T0, True, None)
        assert [r.cluster for r in store.list_status(cluster="c1")] == ["c1"]
        store.record_fetch_success("/srv/repo", "main", "aaa", T0)
        assert store.source_status() == SourceStatus("/srv/repo", "main", T0, "aaa")
    with Store.open_readonly(state) as cli:
        assert cli.schema_version() == SCHEMA_VERSION


def test_open_refuses_a_database_from_a_newer_reconciler(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    conn = sqlite3.connect(state / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    conn.close()

    with pytest.raises(ReconcilerError, match=r"schema version \d+ is newer than this reconciler"):
        Store.open(state)


def test_a_failed_migration_leaves_the_database_at_its_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    Store.open(state).close()
    from reconciler.store import db as store_module

    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, "CREATE TABLE x (;"))
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)

    with pytest.raises(sqlite3.OperationalError):
        Store.open(state)

    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_open_readonly_without_state_asks_whether_the_daemon_runs(tmp_path: Path) -> None:
    with pytest.raises(ReconcilerError) as caught:
        Store.open_readonly(tmp_path)

    assert str(caught.value) == (
        f"no state in {tmp_path}: is the daemon running with --state-dir {tmp_path}?"
    )


def test_open_readonly_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.close()

    with pytest.raises(ReconcilerError, match="state schema version 1, this reconciler reads"):
        Store.open_readonly(tmp_path)


def test_the_cli_reads_committed_state_while_the_daemon_is_writing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    daemon = Store.open(state)
    daemon.set_status(StatusRow("web", "c1", State.SYNCED, "", "abc", at(0), at(0)))
    # Another writer holds an open write transaction with uncommitted changes.
    writer = sqlite3.connect(state / DB_NAME, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE status SET state = 'Failed'")
    writer.execute("INSERT INTO last_good VALUES ('web', 'def')")

    with Store.open_readonly(state) as cli:
        rows = cli.list_status()
        assert cli.last_good("web") is None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            cli.set_last_good("web", "x")

    assert [r.state for r in rows] == [State.SYNCED]
    writer.execute("COMMIT")
    writer.close()
    with Store.open_readonly(state) as cli:
        assert cli.list_status()[0].state == State.FAILED
    daemon.close()


def test_a_batch_commits_its_writes_at_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Store.open(state) as daemon, Store.open_readonly(state) as cli:
        with daemon.batch():
            daemon.set_status(StatusRow("web", "c1", State.SYNCED, "", "abc", at(0), at(0)))
            daemon.set_last_good("web", "abc")
            assert cli.list_status() == []  # not committed yet
            assert daemon.list_status()[0].revision == "abc"  # the daemon reads its own writes
        assert [r.app for r in cli.list_status()] == ["web"]
        assert cli.last_good("web") == "abc"


def test_a_batch_that_fails_writes_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.batch():
        store.set_status(StatusRow("web", "c1", State.SYNCED, "", "abc", at(0), at(0)))
        raise RuntimeError("a bug while recording")
    assert store.list_status() == []
    store.set_last_good("web", "abc")  # the store is usable again
    assert store.last_good("web") == "abc"


# -- revisions, last good -------------------------------------------------------------------


def test_last_revision_is_the_most_recently_seen(store: Store) -> None:
    assert store.last_revision() is None
    store.record_revision("aaa", at(0), True, None)
    store.record_revision("bbb", at(1), False, "apps/web/app.yaml:3: spec.x: unknown field")

    assert store.last_revision() == RevisionRow(
        "bbb", at(1), False, "apps/web/app.yaml:3: spec.x: unknown field"
    )

    store.record_revision("aaa", at(2), True, None)  # branch reset back to aaa
    assert store.last_revision() == RevisionRow("aaa", at(2), True, None)


def test_last_valid_revision_is_the_most_recently_seen_valid_one(store: Store) -> None:
    assert store.last_valid_revision() is None
    store.record_revision("bad0", at(0), False, "clusters/x.yaml:1: bad")
    assert store.last_valid_revision() is None

    store.record_revision("aaa", at(1), True, None)
    store.record_revision("bbb", at(2), True, None)
    store.record_revision("bad1", at(3), False, "apps/web/app.yaml:3: spec.x: unknown field")
    assert store.last_valid_revision() == RevisionRow("bbb", at(2), True, None)

    store.record_revision("aaa", at(4), True, None)  # branch reset back to aaa
    assert store.last_valid_revision() == RevisionRow("aaa", at(4), True, None)


def test_valid_revisions_are_listed_most_recently_seen_first_up_to_a_limit(
    store: Store,
) -> None:
    assert store.valid_revisions() == []
    store.record_revision("aaa", at(0), True, None)
    store.record_revision("bbb", at(1), False, "broken")
    store.record_revision("ccc", at(2), True, None)
    store.record_revision("ddd", at(3), True, None)

    assert [r.sha for r in store.valid_revisions()] == ["ddd", "ccc", "aaa"]
    assert [r.sha for r in store.valid_revisions(limit=2)] == ["ddd", "ccc"]


def test_last_good_is_kept_per_app_and_overwritten(store: Store) -> None:
    store.set_last_good("web", "aaa")
    store.set_last_good("db", "bbb")
    store.set_last_good("web", "ccc")

    assert (store.last_good("web"), store.last_good("db"), store.last_good("x")) == (
        "ccc",
        "bbb",
        None,
    )


# -- status ---------------------------------------------------------------------------------


def test_status_is_one_row_per_app_and_cluster_sorted(store: Store) -> None:
    store.set_status(StatusRow("web", "c2", State.SYNCED, "", "a", at(0), at(0)))
    store.set_status(StatusRow("db", "c1", State.PROGRESSING, "", "a", at(0)))
    store.set_status(StatusRow("web", "c1", State.OUT_OF_SYNC, "2 objects differ", "a", at(0)))
    store.set_status(StatusRow("web", "c1", State.SYNCED, "", "b", at(1), at(1)))

    assert store.list_status() == [
        StatusRow("db", "c1", State.PROGRESSING, "", "a", at(0), None),
        StatusRow("web", "c1", State.SYNCED, "", "b", at(1), at(1)),
        StatusRow("web", "c2", State.SYNCED, "", "a", at(0), at(0)),
    ]


def test_list_status_filters_by_cluster_and_app(store: Store) -> None:
    for app in ("db", "web"):
        for cluster in ("c1", "c2", "c3"):
            store.set_status(StatusRow(app, cluster, State.SYNCED, "", "a", at(0), at(0)))

    assert [(r.app, r.cluster) for r in store.list_status(cluster="c2")] == [
        ("db", "c2"),
        ("web", "c2"),
    ]
    assert [(r.app, r.cluster) for r in store.list_status(app="web")] == [
        ("web", "c1"),
        ("web", "c2"),
        ("web", "c3"),
    ]
    assert [(r.app, r.cluster) for r in store.list_status("c3", "db")] == [("db", "c3")]
    assert store.list_status(cluster="nowhere") == []
    assert len(store.list_status()) == 6


def test_list_status_by_cluster_uses_an_index(store: Store) -> None:
    conn = sqlite3.connect(store.path)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT app FROM status WHERE cluster = ? ORDER BY app, cluster",
        ("c1",),
    ).fetchall()
    conn.close()
    assert any("status_cluster" in row[-1] for row in plan)


def test_a_failure_does_not_erase_when_the_app_was_last_synced(store: Store) -> None:
    store.set_status(StatusRow("web", "c1", State.SYNCED, "", "a", at(0), at(0)))
    store.set_status(StatusRow("web", "c1", State.UNREACHABLE, "connection refused", "a", at(5)))

    [row] = store.list_status()
    assert (row.state, row.updated_at, row.last_synced_at) == (State.UNREACHABLE, at(5), at(0))


def test_delete_status_forgets_only_that_app_on_that_cluster(store: Store) -> None:
    for app, cluster in [("web", "c1"), ("web", "c2"), ("db", "c1")]:
        store.set_status(StatusRow(app, cluster, State.SYNCED, "", "a", at(0)))

    store.delete_status("web", "c1")

    assert [(r.app, r.cluster) for r in store.list_status()] == [("db", "c1"), ("web", "c2")]


def test_invalid_config_is_its_own_state(store: Store) -> None:
    store.set_status(
        StatusRow("web", "c1", State.INVALID_CONFIG, "apps/web/app.yaml:4: bad", "b", at(0))
    )

    assert store.list_status()[0].state == "InvalidConfig"


def test_times_come_back_in_utc_whatever_zone_they_went_in(store: Store) -> None:
    plus_two = datetime(2026, 11, 22, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    store.set_status(StatusRow("web", "c1", State.SYNCED, "", "a", plus_two, plus_two))

    [row] = store.list_status()
    assert row.updated_at == T0
    assert row.updated_at.tzinfo is UTC


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        store.record_revision("aaa", datetime(2026, 1, 1), True, None)


# -- drift ----------------------------------------------------------------------------------


def test_record_drift_round_trips_fields(store: Store) -> None:
    fields = [
        FieldChange("spec.template.spec.containers[0].image", "nginx:1.1", "nginx:1.2", None, None),
        FieldChange("data.password", "(masked)", "(masked, changed)", "kubectl-edit", at(-3)),
        FieldChange("metadata.labels", {"a": "1"}, None, "helm", at(-2)),
    ]

    row = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", fields, "abc", at(0)
    )

    assert (row.app, row.cluster, row.kind, row.revision) == ("web", "c1", "modified", "abc")
    assert (row.detected_at, row.corrected_at, row.open) == (at(0), None, True)
    assert row.fields == fields
    assert store.list_drift() == [row]


def test_record_drift_returns_the_open_record_instead_of_a_duplicate(store: Store) -> None:
    first = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", replicas(7), "a", at(0)
    )

    again = store.record_drift(
        "web",
        "c1",
        "Deployment.apps/demo/web",
        "modified",
        replicas(9, "kubectl-scale"),
        "b",
        at(5),
    )

    assert again.id == first.id
    assert (again.detected_at, again.revision) == (at(0), "a")
    assert again.fields == replicas(9, "kubectl-scale")  # latest observation
    assert len(store.list_drift()) == 1


def test_record_drift_ignores_the_order_of_field_paths(store: Store) -> None:
    a = FieldChange("spec.replicas", 1, 2)
    b = FieldChange("spec.paused", False, True)
    first = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", [a, b], "x", at(0)
    )

    again = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", [b, a], "x", at(1)
    )

    assert again.id == first.id


@pytest.mark.parametrize(
    ("app", "cluster", "obj", "kind", "paths"),
    [
        ("db", "c1", "Deployment.apps/demo/web", "modified", ["spec.replicas"]),
        ("web", "c2", "Deployment.apps/demo/web", "modified", ["spec.replicas"]),
        ("web", "c1", "Deployment.apps/demo/api", "modified", ["spec.replicas"]),
        ("web", "c1", "Deployment.apps/demo/web", "missing", []),
    ],
)
def test_record_drift_keeps_different_drifts_apart(
    store: Store, app: str, cluster: str, obj: str, kind: str, paths: list[str]
) -> None:
    first = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", replicas(7), "a", at(0)
    )

    other = store.record_drift(
        app, cluster, obj, kind, [FieldChange(p, 1, 2) for p in paths], "a", at(1)
    )

    assert other.id != first.id
    assert len(store.list_drift()) == 2


def test_a_changed_set_of_fields_updates_the_open_record_in_place(store: Store) -> None:
    first = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", replicas(7), "a", at(0)
    )
    more = [*replicas(8), FieldChange("spec.paused", False, True, "kubectl-edit")]

    again = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", more, "b", at(1)
    )
    closed = store.close_resolved("web", "c1", [again.key], at(1))

    assert closed == []
    assert (again.id, again.detected_at, again.revision) == (first.id, at(0), "a")
    assert again.fields == more
    assert again.key.paths == ("spec.paused", "spec.replicas")
    assert [(r.id, r.open) for r in store.list_drift()] == [(first.id, True)]


def test_close_resolved_keeps_a_drift_whose_fields_changed_since_the_key_was_taken(
    store: Store,
) -> None:
    row = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", replicas(7), "a", at(0)
    )
    key = DriftKey("Deployment.apps/demo/web", Drift.MODIFIED, ("spec.paused",))

    assert store.close_resolved("web", "c1", [key], at(1)) == []
    assert store.list_drift()[0].id == row.id


def test_open_migrates_version_3_closing_older_duplicates_of_one_open_drift(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    old = sqlite3.connect(state / DB_NAME)
    for migration in MIGRATIONS[:3]:
        old.executescript(migration)
    old.execute("PRAGMA user_version = 3")
    for paths, detected in (
        ('["spec.replicas"]', "2026-11-22T12:00:00.000000Z"),
        ('["spec.paused", "spec.replicas"]', "2026-11-22T12:05:00.000000Z"),
    ):
        old.execute(
            "INSERT INTO drift (app, cluster, object, kind, paths, fields, revision, detected_at)"
            " VALUES ('web', 'c1', 'Deployment.apps/demo/web', 'modified', ?, '[]', 'abc', ?)",
            (paths, detected),
        )
    old.commit()
    old.close()

    with Store.open(state) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 4
        newest, oldest = store.list_drift()
        assert newest.open and newest.detected_at == at(5)
        assert oldest.corrected_at == at(5)
        again = store.record_drift(
            "web", "c1", "Deployment.apps/demo/web", "modified", replicas(7), "x", at(9)
        )
        assert again.id == newest.id
        indexes = {
            r[0] for r in sqlite3.connect(state / DB_NAME).execute("SELECT name FROM sqlite_master")
        }
    assert {"drift_open_object", "drift_corrected"} <= indexes
    assert "drift_open_key" not in indexes


def test_prune_drift_deletes_only_records_corrected_before_the_cutoff(store: Store) -> None:
    old = store.record_drift("web", "c1", "ConfigMap/demo/a", "missing", [], "r", at(0))
    store.mark_corrected(old.id, at(1))
    recent = store.record_drift("web", "c1", "ConfigMap/demo/b", "missing", [], "r", at(0))
    store.mark_corrected(recent.id, at(100))
    still_open = store.record_drift("web", "c1", "ConfigMap/demo/c", "missing", [], "r", at(0))

    assert store.prune_drift(timedelta(minutes=60), at(120)) == 1
    assert {r.id for r in store.list_drift()} == {recent.id, still_open.id}
    assert store.prune_drift(timedelta(minutes=60), at(120)) == 0


def test_list_drift_can_list_only_open_records_and_at_most_a_limit(store: Store) -> None:
    a = store.record_drift("web", "c1", "ConfigMap/demo/a", "missing", [], "r", at(0))
    b = store.record_drift("web", "c1", "ConfigMap/demo/b", "missing", [], "r", at(10))
    c = store.record_drift("web", "c1", "ConfigMap/demo/c", "missing", [], "r", at(20))
    store.mark_corrected(c.id, at(21))

    assert [r.id for r in store.list_drift(open_only=True)] == [b.id, a.id]
    assert [r.id for r in store.list_drift(limit=2)] == [c.id, b.id]
    assert [r.id for r in store.list_drift(open_only=True, limit=1)] == [b.id]
    assert store.list_drift(limit=0) == []


def test_open_drift_counts_count_every_open_record_per_target(store: Store) -> None:
    for i in range(3):
        store.record_drift("web", "c1", f"ConfigMap/demo/{i}", "missing", [], "r", at(i))
    store.record_drift("web", "c2", "ConfigMap/demo/a", "missing", [], "r", at(0))
    closed = store.record_drift("db", "c1", "ConfigMap/demo/a", "missing", [], "r", at(0))
    store.mark_corrected(closed.id, at(1))

    assert store.open_drift_counts() == {("web", "c1"): 3, ("web", "c2"): 1}
    assert store.open_drift_counts(app="web", cluster="c2") == {("web", "c2"): 1}
    assert store.open_drift_counts(app="db") == {}


def test_the_same_drift_after_correction_is_a_new_record(store: Store) -> None:
    first = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", replicas(7), "a", at(0)
    )
    assert store.mark_corrected(first.id, at(1))

    again = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", replicas(7), "a", at(2)
    )

    assert again.id != first.id
    assert [(r.id, r.corrected_at) for r in store.list_drift()] == [
        (again.id, None),
        (first.id, at(1)),
    ]


def test_mark_corrected_closes_once(store: Store) -> None:
    row = store.record_drift("web", "c1", "ConfigMap/demo/x", "missing", [], "a", at(0))

    assert store.mark_corrected(row.id, at(1)) is True
    assert store.mark_corrected(row.id, at(2)) is False
    assert store.mark_corrected(9999, at(2)) is False
    assert store.list_drift()[0].corrected_at == at(1)


def test_close_resolved_closes_open_drift_not_seen_in_the_latest_check(store: Store) -> None:
    gone = store.record_drift("web", "c1", "ConfigMap/demo/x", "unmanaged", [], "a", at(0))
    kept = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", replicas(7), "a", at(0)
    )
    other_cluster = store.record_drift("web", "c2", "ConfigMap/demo/x", "unmanaged", [], "a", at(0))
    other_app = store.record_drift("db", "c1", "ConfigMap/demo/x", "unmanaged", [], "a", at(0))

    closed = store.close_resolved("web", "c1", [kept.key], at(3))

    assert [(r.id, r.corrected_at) for r in closed] == [(gone.id, at(3))]
    still_open = {r.id for r in store.list_drift() if r.open}
    assert still_open == {kept.id, other_cluster.id, other_app.id}


def test_close_resolved_matches_keys_whatever_the_path_order(store: Store) -> None:
    fields = [FieldChange("spec.replicas", 1, 2), FieldChange("spec.paused", False, True)]
    row = store.record_drift(
        "web", "c1", "Deployment.apps/demo/web", "modified", fields, "a", at(0)
    )
    key = DriftKey("Deployment.apps/demo/web", Drift.MODIFIED, ("spec.replicas", "spec.paused"))

    assert store.close_resolved("web", "c1", [key], at(1)) == []
    assert store.list_drift()[0].id == row.id
    assert store.list_drift()[0].open


def test_list_drift_filters_and_lists_newest_first(store: Store) -> None:
    a = store.record_drift("web", "c1", "ConfigMap/demo/a", "missing", [], "r", at(0))
    b = store.record_drift("web", "c2", "ConfigMap/demo/b", "missing", [], "r", at(10))
    c = store.record_drift("db", "c1", "ConfigMap/demo/c", "missing", [], "r", at(20))
    d = store.record_drift("web", "c1", "ConfigMap/demo/d", "missing", [], "r", at(20))

    def ids(rows: list[DriftRow]) -> list[int]:
        return [r.id for r in rows]

    assert ids(store.list_drift()) == [d.id, c.id, b.id, a.id]
    assert ids(store.list_drift(app="web")) == [d.id, b.id, a.id]
    assert ids(store.list_drift(cluster="c1")) == [d.id, c.id, a.id]
    assert ids(store.list_drift(app="web", cluster="c1", since=at(10))) == [d.id]
    assert ids(store.list_drift(since=at(10))) == [d.id, c.id, b.id]


def test_threads_sharing_a_store_record_one_drift_once(store: Store) -> None:
    ids: list[int] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        row = store.record_drift(
            "web", "c1", "Deployment.apps/demo/web", "modified", replicas(7), "a", at(0)
        )
        ids.append(row.id)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(set(ids)) == 1
    assert len(store.list_drift()) == 1


def test_two_connections_writing_the_same_drift_make_one_record(tmp_path: Path) -> None:
    first, second = Store.open(tmp_path), Store.open(tmp_path)
    barrier = threading.Barrier(2)
    ids: list[int] = []

    def worker(s: Store) -> None:
        barrier.wait()
        for _ in range(20):
            ids.append(s.record_drift("web", "c1", "Pod/demo/p", "missing", [], "a", at(0)).id)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(set(ids)) == 1
    first.close()
    second.close()


def test_drift_kind_must_be_one_of_the_three(store: Store) -> None:
    with pytest.raises(ValueError):
        store.record_drift("web", "c1", "Pod/demo/p", "changed", [], "a", at(0))


# -- source: how the fetches go -------------------------------------------------------------


def test_there_is_no_source_status_before_the_first_fetch(store: Store) -> None:
    assert store.source_status() is None


def test_fetch_failures_count_up_and_keep_the_last_success(store: Store) -> None:
    store.record_fetch_success("https://git.example/repo", "main", "aaa", at(0))
    store.record_fetch_failure("https://git.example/repo", "main", "fetch failed: 403", at(1))
    status = store.record_fetch_failure(
        "https://git.example/repo", "main", "fetch failed: timed out", at(2)
    )

    assert status == store.source_status()
    assert status == SourceStatus(
        location="https://git.example/repo",
        branch="main",
        last_success_at=at(0),
        last_success_sha="aaa",
        last_error="fetch failed: timed out",
        last_error_at=at(2),
        failing_since=at(1),
        consecutive_failures=2,
    )
    assert status.failing


def test_a_successful_fetch_clears_the_failures(store: Store) -> None:
    store.record_fetch_failure("/srv/repo", None, "no such directory", at(0))
    store.record_fetch_failure("/srv/repo", None, "no such directory", at(1))
    status = store.record_fetch_success("/srv/repo", None, "bbb", at(2))

    assert status == SourceStatus("/srv/repo", None, at(2), "bbb")
    assert not status.failing
    again = store.record_fetch_failure("/srv/repo", None, "branch gone", at(3))
    assert (again.failing_since, again.consecutive_failures) == (at(3), 1)


def test_failing_without_any_success_yet_has_no_last_success(store: Store) -> None:
    status = store.record_fetch_failure("/srv/repo", "main", "no such directory", at(0))

    assert (status.last_success_at, status.last_success_sha) == (None, None)
    assert (status.failing_since, status.consecutive_failures) == (at(0), 1)


def test_another_repo_or_branch_starts_a_new_source_history(store: Store) -> None:
    store.record_fetch_success("/srv/repo", "main", "aaa", at(0))
    store.record_fetch_failure("/srv/repo", "main", "broken", at(1))

    other = store.record_fetch_failure("/srv/repo", "release", "branch 'release' not found", at(2))
    assert other == SourceStatus(
        "/srv/repo", "release", None, None, "branch 'release' not found", at(2), at(2), 1
    )
    moved = store.record_fetch_success("/srv/other", "release", "ccc", at(3))
    assert moved == SourceStatus("/srv/other", "release", at(3), "ccc")
