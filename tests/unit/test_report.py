"""reconciler.report: pure formatting, checked against expected text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from reconciler.fields import Drift, FieldChange
from reconciler.health import Health, ObjectHealth, TargetHealth
from reconciler.objects import ObjectRef
from reconciler.presentation import format_value
from reconciler.report import (
    drift_json,
    drift_markdown,
    drift_table,
    health_changes_json,
    health_changes_markdown,
    health_changes_table,
    source_line,
    status_json,
    status_table,
)
from reconciler.store.rows import (
    DriftRow,
    HealthChange,
    HealthRow,
    RevisionRow,
    SourceStatus,
    State,
    StatusRow,
)

T = datetime(2026, 11, 22, 12, 3, 41, 250000, tzinfo=UTC)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def no_color_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def status_rows() -> list[StatusRow]:
    return [
        StatusRow("hello-world", "us-west-1", State.SYNCED, "", "abc123", T, T),
        StatusRow("hello-world", "beijing-1", State.UNREACHABLE, "connection refused", "abc", T),
        StatusRow("guestbook", "beijing-1", State.OUT_OF_SYNC, "2 objects differ", "abc", T),
        StatusRow("guestbook", "beijing-2", State.PAUSED, "cluster paused", "abc", T),
    ]


def health_rows() -> dict[tuple[str, str], HealthRow]:
    deploy = ObjectRef("apps", "Deployment", "demo", "hello-world")
    obj = ObjectHealth(
        Health.DEGRADED, "1/3 available (ProgressDeadlineExceeded)", 1, 3, ref=deploy
    )
    judged = TargetHealth(Health.DEGRADED, obj.describe(), 1, 3, (obj,))
    row = HealthRow("hello-world", "us-west-1", judged, "abc123", T, T - timedelta(minutes=1))
    return {("hello-world", "us-west-1"): row}


def drift_rows() -> list[DriftRow]:
    return [
        DriftRow(
            id=12,
            app="hello-world",
            cluster="us-west-1",
            object="Deployment.apps/demo/hello-world",
            kind=Drift.MODIFIED,
            fields=[
                FieldChange("spec.replicas", 5, 7, "kubectl-edit", T - timedelta(seconds=19)),
                FieldChange("spec.template.spec.containers[0].image", "hello:1.1", "hello:1.2"),
            ],
            revision="0123456789abcdef0123",
            detected_at=T,
            corrected_at=T + timedelta(seconds=30),
        ),
        DriftRow(
            id=13,
            app="guestbook",
            cluster="beijing-1",
            object="ConfigMap/demo/leftover",
            kind=Drift.UNMANAGED,
            fields=[],
            revision=None,
            detected_at=T + timedelta(minutes=5),
            corrected_at=None,
        ),
    ]


# -- status -----------------------------------------------------------------------------------


def test_status_table_has_one_line_per_target_with_sync_and_health_side_by_side() -> None:
    assert status_table(status_rows(), color=False, health=health_rows()) == (
        "APP          CLUSTER    SYNC         HEALTH    READY  REVISION\n"
        "guestbook    beijing-1  OutOfSync    -         -      abc\n"
        "guestbook    beijing-2  Paused       -         -      abc\n"
        "hello-world  beijing-1  Unreachable  -         -      abc\n"
        "hello-world  us-west-1  Synced       Degraded  1/3    abc123\n"
        "\n"
        "guestbook on cluster beijing-1: OutOfSync: 2 objects differ\n"
        "hello-world on cluster beijing-1: Unreachable: connection refused\n"
        "hello-world on cluster us-west-1: Degraded: Deployment.apps/demo/hello-world 1/3 available"
        " (ProgressDeadlineExceeded)\n"
    )


def test_status_table_says_a_note_shared_by_several_clusters_once() -> None:
    invalid = "apps/web/app.yaml:9: spec.placment: unknown field 'placment'; abc stays applied"
    rows = [
        StatusRow("web", c, State.INVALID_CONFIG, invalid, "abc", T) for c in ("b-1", "a-1")
    ] + [
        StatusRow(
            "api", f"edge-{i}", State.INVALID_CONFIG, f"app api, cluster edge-{i}: boom", "abc", T
        )
        for i in range(7)
    ]
    notes = status_table(rows, color=False).split("\n\n")[1].splitlines()
    assert notes == [
        "api on 7 clusters (edge-0, edge-1, edge-2, edge-3, edge-4 and 2 more): InvalidConfig: "
        "boom",
        f"web on clusters a-1, b-1: InvalidConfig: {invalid}",
    ]


def test_status_table_does_not_depend_on_row_order() -> None:
    rows = status_rows()

    assert status_table(rows[::-1], color=False) == status_table(rows, color=False)
    assert status_table(rows[::-1], color=True) == status_table(rows, color=True)


def test_status_table_in_color_paints_each_state_and_keeps_the_same_text() -> None:
    out = status_table(status_rows(), color=True)

    assert "\x1b[32mSynced\x1b[0m" in out
    assert "\x1b[31mUnreachable\x1b[0m" in out
    assert "\x1b[33mOutOfSync\x1b[0m" in out
    plain = ANSI.sub("", out)
    assert re.search(r"^guestbook\s+beijing-1\s+OutOfSync\s+-\s+-\s+abc$", plain, re.M)
    assert re.search(r"^hello-world\s+us-west-1\s+Synced\s+-\s+-\s+abc123$", plain, re.M)
    assert "hello-world on cluster beijing-1: Unreachable: connection refused" in plain


def test_status_table_without_rows_says_so() -> None:
    assert status_table([], color=False) == "No status recorded yet.\n"


def test_status_json_lists_every_row_with_utc_times() -> None:
    data = json.loads(status_json(status_rows()))["targets"]

    assert [(d["app"], d["cluster"]) for d in data] == [
        ("guestbook", "beijing-1"),
        ("guestbook", "beijing-2"),
        ("hello-world", "beijing-1"),
        ("hello-world", "us-west-1"),
    ]
    assert data[3] == {
        "app": "hello-world",
        "cluster": "us-west-1",
        "state": "Synced",
        "message": "",
        "revision": "abc123",
        "updated_at": "2026-11-22T12:03:41Z",
        "last_synced_at": "2026-11-22T12:03:41Z",
        "health": None,
    }
    assert data[0]["last_synced_at"] is None
    assert data[0]["health"] is None


def test_status_json_carries_each_targets_health() -> None:
    data = json.loads(status_json(status_rows(), health=health_rows()))["targets"]
    health = data[3]["health"]
    assert (health["health"], health["ready"], health["desired"]) == ("Degraded", 1, 3)
    assert health["reason"] == (
        "Deployment.apps/demo/hello-world 1/3 available (ProgressDeadlineExceeded)"
    )
    assert (health["since"], health["revision"]) == ("2026-11-22T12:02:41Z", "abc123")
    assert health["objects"][0]["kind"] == "Deployment"


def test_health_changes_read_newest_first_in_every_format() -> None:
    changes = [
        HealthChange(
            1,
            "web",
            "c1",
            Health.PROGRESSING,
            "Deployment.apps/web/web 0/3 available",
            None,
            "abc",
            T,
        ),
        HealthChange(
            2,
            "web",
            "c1",
            Health.HEALTHY,
            "1 object healthy",
            Health.PROGRESSING,
            "abc",
            T + timedelta(seconds=9),
        ),
    ]
    assert health_changes_table(changes, color=False) == (
        "AT                    APP  CLUSTER  WAS          NOW          REVISION  REASON\n"
        "2026-11-22T12:03:50Z  web  c1       Progressing  Healthy      abc       1 object healthy\n"
        "2026-11-22T12:03:41Z  web  c1       -            Progressing  abc       "
        "Deployment.apps/web/web 0/3 available\n"
    )
    assert [c["health"] for c in json.loads(health_changes_json(changes))] == [
        "Healthy",
        "Progressing",
    ]
    assert "| 2026-11-22T12:03:50Z | web | c1 | Progressing | Healthy | 1 object healthy |" in (
        health_changes_markdown(changes)
    )
    assert health_changes_table([], color=False) == "No health changes recorded.\n"


SHA = "1bf2028cdf11" + "0" * 28


def failing_source() -> SourceStatus:
    return SourceStatus(
        location="https://git.example/config",
        branch="main",
        last_success_at=T - timedelta(hours=1),
        last_success_sha=SHA,
        last_error="https://git.example/config: fetch failed: Authentication failed\nhint: more",
        last_error_at=T,
        failing_since=T - timedelta(minutes=30),
        consecutive_failures=3,
    )


def test_status_json_is_an_object_with_the_source_and_the_targets() -> None:
    data = json.loads(status_json(status_rows(), failing_source()))

    assert list(data) == ["daemon_running", "source", "revision", "targets", "rollouts", "pins"]
    assert len(data["targets"]) == 4
    assert data["source"] == {
        "location": "https://git.example/config",
        "branch": "main",
        "last_success_at": "2026-11-22T11:03:41Z",
        "last_success_sha": SHA,
        "last_error": "https://git.example/config: fetch failed: Authentication failed\nhint: more",
        "last_error_at": "2026-11-22T12:03:41Z",
        "failing_since": "2026-11-22T11:33:41Z",
        "consecutive_failures": 3,
    }


def test_status_json_before_any_fetch_has_a_null_source_and_revision() -> None:
    assert json.loads(status_json([])) == {
        "daemon_running": None,
        "source": None,
        "revision": None,
        "targets": [],
        "rollouts": [],
        "pins": [],
    }


def test_status_json_names_the_newest_revision_and_whether_it_is_valid() -> None:
    seen = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
    revision = RevisionRow("ab" * 20, seen, False, "apps/web/app.yaml:3: bad")
    assert json.loads(status_json([], None, revision))["revision"] == {
        "sha": "ab" * 20,
        "seen_at": "2026-11-22T12:00:00Z",
        "valid": False,
        "error": "apps/web/app.yaml:3: bad",
        "invalid_targets": 0,
        "total_targets": 0,
    }


def test_source_line_of_a_failing_fetch_says_since_when_why_and_what_was_last_good() -> None:
    assert source_line(failing_source(), color=False) == (
        "Source https://git.example/config (branch main): fetch failing since"
        " 2026-11-22T11:33:41Z (3 attempts): https://git.example/config: fetch failed:"
        " Authentication failed; last good fetch 2026-11-22T11:03:41Z at 1bf2028cdf11\n"
    )


def test_source_line_of_a_first_failure_without_any_good_fetch() -> None:
    source = SourceStatus("/srv/repo", None, None, None, "/srv/repo: no such directory", T, T, 1)

    assert source_line(source, color=False) == (
        "Source /srv/repo (default branch): fetch failing since 2026-11-22T12:03:41Z"
        " (1 attempt): /srv/repo: no such directory; no good fetch yet\n"
    )


def test_source_line_of_a_healthy_fetch_is_short() -> None:
    source = SourceStatus("/srv/repo", "main", T, SHA)

    assert source_line(source, color=False) == (
        "Source /srv/repo (branch main): last fetch 2026-11-22T12:03:41Z at 1bf2028cdf11\n"
    )
    assert source_line(source, color=True) == source_line(source, color=False)
    assert source_line(None, color=False) == ""


def test_source_line_in_color_paints_the_failure_and_keeps_the_same_text() -> None:
    out = source_line(failing_source(), color=True)

    assert "\x1b[1;31mfetch failing since 2026-11-22T11:33:41Z (3 attempts)\x1b[0m" in out
    assert ANSI.sub("", out) == source_line(failing_source(), color=False)


# -- drift ------------------------------------------------------------------------------------


def test_drift_table_lists_records_newest_first_aligned() -> None:
    lines = drift_table(drift_rows(), color=False).splitlines()
    headers = ["ID", "APP", "CLUSTER", "OBJECT", "DRIFT", "FIELDS", "BY", "DETECTED", "CORRECTED"]
    offsets = [lines[0].index(h) for h in headers]

    def cells(line: str) -> list[str]:
        return [line[start:].split("  ")[0].strip() for start in offsets]

    assert [cells(line) for line in lines] == [
        headers,
        ["13", "guestbook", "beijing-1", "ConfigMap/demo/leftover", "unmanaged", "", "",
         "2026-11-22T12:08:41Z", "open"],
        ["12", "hello-world", "us-west-1", "Deployment.apps/demo/hello-world", "modified",
         "spec.replicas, spec.template.spec.containers[0].image", "kubectl-edit",
         "2026-11-22T12:03:41Z", "2026-11-22T12:04:11Z"],
    ]  # fmt: skip
    assert all(line == line.rstrip() for line in lines)


def test_drift_table_in_color_marks_open_records() -> None:
    out = drift_table(drift_rows(), color=True)

    assert "\x1b[1;31mopen\x1b[0m" in out
    assert "\x1b[35munmanaged\x1b[0m" in out
    assert re.search(
        r"^13\s+guestbook\s+beijing-1\s+ConfigMap/demo/leftover", ANSI.sub("", out), re.M
    )


def test_drift_table_without_rows_says_so() -> None:
    assert drift_table([], color=True) == "No drift recorded.\n"


def test_drift_json_keeps_values_and_uses_utc_times() -> None:
    data = json.loads(drift_json(drift_rows()))

    assert [d["id"] for d in data] == [13, 12]
    assert data[1]["fields"][0] == {
        "path": "spec.replicas",
        "before": 5,
        "after": 7,
        "manager": "kubectl-edit",
        "changed_at": "2026-11-22T12:03:22Z",
    }
    assert data[1]["fields"][1]["manager"] is None
    assert (data[0]["corrected_at"], data[1]["corrected_at"]) == (None, "2026-11-22T12:04:11Z")


def test_drift_markdown_is_ready_to_paste_into_an_issue() -> None:
    assert drift_markdown(drift_rows()) == (
        "## Drift report\n"
        "\n"
        "2 drift records on 2 clusters (1 open, 1 corrected).\n"
        "\n"
        "| app | cluster | object | kind | detected | corrected |\n"
        "|---|---|---|---|---|---|\n"
        "| guestbook | beijing-1 | ConfigMap/demo/leftover | unmanaged | 2026-11-22T12:08:41Z"
        " | open |\n"
        "| hello-world | us-west-1 | Deployment.apps/demo/hello-world | modified"
        " | 2026-11-22T12:03:41Z | 2026-11-22T12:04:11Z |\n"
        "\n"
        "### #13 guestbook on beijing-1: `ConfigMap/demo/leftover` (unmanaged)\n"
        "\n"
        "Detected 2026-11-22T12:08:41Z; still open.\n"
        "\n"
        "- the object carries our label but is not in Git\n"
        "\n"
        "### #12 hello-world on us-west-1: `Deployment.apps/demo/hello-world` (modified)\n"
        "\n"
        "Detected 2026-11-22T12:03:41Z at revision `0123456789ab`;"
        " corrected 2026-11-22T12:04:11Z.\n"
        "\n"
        "- `spec.replicas: git 5, live 7 (live set by kubectl-edit at 2026-11-22T12:03:22Z)`\n"
        '- `spec.template.spec.containers[0].image: git "hello:1.1", live "hello:1.2"`\n'
    )


def test_drift_markdown_counts_one_record_in_the_singular() -> None:
    assert "\n1 drift record on 1 cluster (1 open, 0 corrected).\n" in drift_markdown(
        drift_rows()[1:]
    )


def test_drift_markdown_escapes_pipes_and_backticks() -> None:
    row = DriftRow(
        1,
        "a|b",
        "c",
        "ConfigMap/demo/x",
        Drift.MODIFIED,
        [FieldChange("data.cmd", "echo `id`", "x | y")],
        None,
        T,
        None,
    )

    out = drift_markdown([row])

    assert "| a\\|b | c |" in out
    assert '- ``data.cmd: git "echo `id`", live "x | y"``' in out


def test_drift_markdown_without_rows_says_so() -> None:
    assert drift_markdown([]) == "## Drift report\n\nNo drift recorded.\n"


def test_drift_reports_show_times_in_utc_whatever_zone_they_came_in() -> None:
    row = drift_rows()[1]
    tokyo = row.detected_at.astimezone(timezone(timedelta(hours=9)))
    shifted = DriftRow(**{**row.__dict__, "detected_at": tokyo})

    assert drift_markdown([shifted]) == drift_markdown([row])


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (5, "5"),
        ("LoadBalancer", '"LoadBalancer"'),
        ("", '""'),
        (None, "(unset)"),
        (True, "true"),
        ({"b": 1, "a": [1, 2]}, '{"a": [1, 2], "b": 1}'),
        ("x" * 200, '"' + "x" * 118 + "…"),
    ],
)
def test_format_value_shows_one_unambiguous_line(value: object, shown: str) -> None:
    assert format_value(value) == shown
