"""`reconciler status` and `reconciler drift` on a state dir written by hand; option parsing."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.common import default_state_dir, parse_duration, parse_since
from reconciler.cli.main import cli
from reconciler.fields import FieldChange
from reconciler.presentation import format_time
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow

NOW = datetime.now(UTC)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state dir as a running daemon leaves it (the daemon holds its lock)."""
    directory = tmp_path / "state"
    with Store.open(directory) as store:
        store.record_revision("a" * 40, NOW, True, None)
        store.set_status(StatusRow("web", "beijing-1", State.SYNCED, "", "a" * 40, NOW, NOW))
        store.set_status(
            StatusRow("web", "us-west-1", State.UNREACHABLE, "connection refused", "a" * 40, NOW)
        )
        old = store.record_drift(
            "web",
            "beijing-1",
            "ConfigMap/web/web",
            "modified",
            [FieldChange("data.value", "1", "2", "kubectl-edit", NOW)],
            "a" * 40,
            NOW - timedelta(hours=3),
        )
        store.mark_corrected(old.id, NOW - timedelta(hours=2))
        store.record_drift(
            "api",
            "us-west-1",
            "Deployment.apps/api/api",
            "modified",
            [FieldChange("spec.replicas", 2, 7, "kubectl-edit", NOW)],
            "a" * 40,
            NOW - timedelta(minutes=10),
        )
    with (directory / "daemon.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield directory


def test_status_says_when_no_daemon_runs_on_the_state_dir(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    with Store.open(directory) as store:
        store.set_status(StatusRow("web", "beijing-1", State.SYNCED, "", "a" * 40, NOW, NOW))
    code, out, _ = invoke("status", "--state-dir", str(directory))
    assert code == 0
    assert out.splitlines()[0] == f"Daemon not running: state as of {format_time(NOW)}"
    _, as_json, _ = invoke("status", "--state-dir", str(directory), "-o", "json")
    assert json.loads(as_json)["daemon_running"] is False


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1m", 60.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
        ("45", 45.0),
    ],
)
def test_durations_read_like_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "m", "30s5", "ten seconds"])
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_since_takes_a_duration_ago_or_an_iso_time_in_utc_by_default() -> None:
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("2026-11-22T12:00:00Z", NOW) == datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert parse_since("2026-11-22 12:00", NOW) == datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_the_state_dir_defaults_to_the_xdg_state_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/var/lib/x")
    assert default_state_dir() == Path("/var/lib/x/reconciler")
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir() == Path.home() / ".local/state/reconciler"


def test_status_shows_the_revision_and_a_matrix_with_what_needs_attention(state: Path) -> None:
    code, out, _ = invoke("status", "--state-dir", str(state))

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"Revision {'a' * 12} (seen ")
    assert lines[0].endswith("): valid")
    assert lines[2].split() == ["APP", "CLUSTER", "SYNC", "HEALTH", "READY", "REVISION"]
    assert lines[3].split()[:3] == ["web", "beijing-1", "Synced"]
    assert lines[4].split()[:3] == ["web", "us-west-1", "Unreachable"]
    assert "web on cluster us-west-1: Unreachable: connection refused" in out


def test_status_of_a_valid_revision_says_how_many_targets_do_not_render(state: Path) -> None:
    with Store.open(state) as store:
        store.set_status(
            StatusRow("api", "beijing-1", State.INVALID_CONFIG, "helm: not found", "a" * 40, NOW)
        )

    _, out, _ = invoke("status", "--state-dir", str(state))

    assert out.splitlines()[0].endswith(
        "): valid, but 1 of 3 targets does not render (InvalidConfig)"
    ), out
    _, out, _ = invoke("status", "--state-dir", str(state), "-o", "json")
    revision = json.loads(out)["revision"]
    assert (revision["valid"], revision["invalid_targets"], revision["total_targets"]) == (
        True,
        1,
        3,
    )


def test_status_wide_adds_the_messages_of_targets_in_sync_and_repeats_none(
    state: Path,
) -> None:
    with Store.open(state) as store:
        store.set_status(
            StatusRow("web", "beijing-1", State.SYNCED, "configured 2", "a" * 40, NOW, NOW)
        )

    _, table, _ = invoke("status", "--state-dir", str(state))
    _, wide, _ = invoke("status", "--state-dir", str(state), "-o", "wide")

    assert "configured 2" not in table
    assert wide.count("configured 2") == 1 and wide.count("connection refused") == 1, wide


def test_status_of_an_invalid_head_lists_every_located_problem(state: Path) -> None:
    problems = "apps/web/app.yaml:7: spec.placment: unknown field\nclusters/x.yaml:2: bad"
    with Store.open(state) as store:
        store.record_revision("b" * 40, NOW + timedelta(seconds=1), False, problems)

    _, out, _ = invoke("status", "--state-dir", str(state))

    assert out.splitlines()[:3] == [
        f"Revision {'b' * 12} (seen {out.split('(seen ')[1].split(')')[0]}): INVALID, not applied",
        "  apps/web/app.yaml:7: spec.placment: unknown field",
        "  clusters/x.yaml:2: bad",
    ]


def test_status_as_json_is_the_source_and_the_rows(state: Path) -> None:
    code, out, _ = invoke("status", "--state-dir", str(state), "-o", "json")

    assert code == 0
    data = json.loads(out)
    assert data["source"] is None  # no fetch recorded in this state
    assert [(r["app"], r["cluster"], r["state"]) for r in data["targets"]] == [
        ("web", "beijing-1", "Synced"),
        ("web", "us-west-1", "Unreachable"),
    ]


def test_status_heads_with_a_failing_fetch_and_the_last_good_one(state: Path) -> None:
    first = NOW - timedelta(minutes=5)
    with Store.open(state) as store:
        store.record_fetch_success("https://git.example/config", "main", "a" * 40, first)
        for minutes in (3, 2, 1):
            store.record_fetch_failure(
                "https://git.example/config",
                "main",
                "https://git.example/config: fetch failed: Authentication failed",
                NOW - timedelta(minutes=minutes),
            )

    code, out, _ = invoke("status", "--state-dir", str(state))

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "Source https://git.example/config (branch main): fetch failing since"
        f" {format_time(NOW - timedelta(minutes=3))} (3 attempts):"
        " https://git.example/config: fetch failed: Authentication failed;"
        f" last good fetch {format_time(first)} at {'a' * 12}"
    )
    assert lines[1].startswith(f"Revision {'a' * 12} (seen ")
    assert (lines[2], lines[3].split()[:3]) == ("", ["APP", "CLUSTER", "SYNC"])

    _, out, _ = invoke("status", "--state-dir", str(state), "-o", "json")
    source = json.loads(out)["source"]
    assert (source["consecutive_failures"], source["last_success_sha"]) == (3, "a" * 40)


def test_status_without_state_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    code, out, err = invoke("status", "--state-dir", str(tmp_path / "none"))

    assert (code, out) == (2, "")
    assert err.startswith(f"error: no state in {tmp_path / 'none'}")
    assert len(err.splitlines()) == 1


def test_drift_exits_1_when_open_drift_is_listed(state: Path) -> None:
    code, out, _ = invoke("drift", "--state-dir", str(state))

    assert code == 1
    assert "Deployment.apps/api/api" in out
    assert "ConfigMap/web/web" in out


def test_drift_exits_0_when_every_listed_drift_was_corrected(state: Path) -> None:
    code, out, _ = invoke("drift", "--state-dir", str(state), "--app", "web", "-o", "json")

    assert code == 0
    (record,) = json.loads(out)
    assert record["object"] == "ConfigMap/web/web"
    assert record["corrected_at"] is not None


def test_drift_since_a_duration_hides_older_records(state: Path) -> None:
    code, out, _ = invoke("drift", "--state-dir", str(state), "--since", "1h", "-o", "json")

    assert code == 1
    assert [r["object"] for r in json.loads(out)] == ["Deployment.apps/api/api"]


def test_drift_filters_by_cluster_and_writes_markdown(state: Path) -> None:
    code, out, _ = invoke(
        "drift", "--state-dir", str(state), "--cluster", "beijing-1", "-o", "markdown"
    )

    assert code == 0
    assert out.startswith("## Drift report")
    assert "Deployment.apps/api/api" not in out


def test_drift_with_a_bad_since_is_a_usage_error(state: Path) -> None:
    code, _, err = invoke("drift", "--state-dir", str(state), "--since", "yesterday")

    assert code == 2
    assert "neither a duration" in err


def test_run_refuses_a_malformed_listen_address(tmp_path: Path) -> None:
    code, _, err = invoke(
        "run", "--repo", str(tmp_path), "--state-dir", str(tmp_path / "s"), "--listen", "here:x"
    )

    assert code == 2
    assert "--listen" in err


def test_an_invalid_instance_name_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "--repo",
            str(tmp_path),
            "--state-dir",
            str(tmp_path / "s"),
            "--instance",
            "Bad_Name",
        ],
    )
    assert result.exit_code == 2
    assert "Invalid value for '--instance'" in result.output
    assert not (tmp_path / "s").exists()


def test_a_state_dir_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(
        cli, ["run", "--repo", str(tmp_path), "--state-dir", str(blocker / "state"), "--once"]
    )
    assert result.exit_code == 2
    assert f"error: {blocker / 'state'}: cannot use as state dir: " in result.stderr
