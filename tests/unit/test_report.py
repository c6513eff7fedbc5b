"""reconciler.report: pure formatting, checked against expected text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from reconciler.report import (
    drift_json,
    drift_markdown,
    drift_table,
    format_value,
    status_json,
    status_table,
)
from reconciler.store import DriftKind, DriftRow, FieldDrift, State, StatusRow

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


def drift_rows() -> list[DriftRow]:
    return [
        DriftRow(
            id=12,
            app="hello-world",
            cluster="us-west-1",
            object="Deployment/demo/hello-world",
            kind=DriftKind.MODIFIED,
            fields=[
                FieldDrift("spec.replicas", 5, 7, "kubectl-edit", T - timedelta(seconds=19)),
                FieldDrift("spec.template.spec.containers[0].image", "hello:1.1", "hello:1.2"),
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
            kind=DriftKind.UNMANAGED,
            fields=[],
            revision=None,
            detected_at=T + timedelta(minutes=5),
            corrected_at=None,
        ),
    ]


# -- status -----------------------------------------------------------------------------------


def test_status_table_is_an_aligned_app_by_cluster_matrix_with_notes() -> None:
    assert status_table(status_rows(), color=False) == (
        "APP          beijing-1    beijing-2  us-west-1\n"
        "guestbook    OutOfSync    Paused     -\n"
        "hello-world  Unreachable  -          Synced\n"
        "\n"
        "guestbook on beijing-1: OutOfSync: 2 objects differ\n"
        "hello-world on beijing-1: Unreachable: connection refused\n"
    )


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
    assert re.search(r"^guestbook\s+OutOfSync\s+Paused\s+-$", plain, re.M)
    assert re.search(r"^hello-world\s+Unreachable\s+-\s+Synced$", plain, re.M)
    assert "hello-world on beijing-1: Unreachable: connection refused" in plain


def test_status_table_without_rows_says_so() -> None:
    assert status_table([], color=False) == "No status recorded yet.\n"


def test_status_json_lists_every_row_with_utc_times() -> None:
    data = json.loads(status_json(status_rows()))

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
    }
    assert data[0]["last_synced_at"] is None


# -- drift ------------------------------------------------------------------------------------


def test_drift_table_lists_records_newest_first_aligned() -> None:
    lines = drift_table(drift_rows(), color=False).splitlines()
    headers = ["ID", "APP", "CLUSTER", "OBJECT", "KIND", "FIELDS", "BY", "DETECTED", "CORRECTED"]
    offsets = [lines[0].index(h) for h in headers]

    def cells(line: str) -> list[str]:
        return [line[start:].split("  ")[0].strip() for start in offsets]

    assert [cells(line) for line in lines] == [
        headers,
        ["13", "guestbook", "beijing-1", "ConfigMap/demo/leftover", "unmanaged", "", "",
         "2026-11-22T12:08:41Z", "open"],
        ["12", "hello-world", "us-west-1", "Deployment/demo/hello-world", "modified",
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
        "| hello-world | us-west-1 | Deployment/demo/hello-world | modified"
        " | 2026-11-22T12:03:41Z | 2026-11-22T12:04:11Z |\n"
        "\n"
        "### #13 guestbook on beijing-1: `ConfigMap/demo/leftover` (unmanaged)\n"
        "\n"
        "Detected 2026-11-22T12:08:41Z; still open.\n"
        "\n"
        "- the object carries our label but is not in Git\n"
        "\n"
        "### #12 hello-world on us-west-1: `Deployment/demo/hello-world` (modified)\n"
        "\n"
        "Detected 2026-11-22T12:03:41Z at revision `0123456789ab`;"
        " corrected 2026-11-22T12:04:11Z.\n"
        "\n"
        "- `spec.replicas: 5 → 7 (kubectl-edit, 2026-11-22T12:03:22Z)`\n"
        '- `spec.template.spec.containers[0].image: "hello:1.1" → "hello:1.2"`\n'
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
        DriftKind.MODIFIED,
        [FieldDrift("data.cmd", "echo `id`", "x | y")],
        None,
        T,
        None,
    )

    out = drift_markdown([row])

    assert "| a\\|b | c |" in out
    assert '- `` data.cmd: "echo `id`" → "x | y" ``' in out


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
