"""``reconciler wait``: the verdict over the daemon's rows, and the command's exit codes."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.cli.wait import _wait
from reconciler.health import Health, ObjectHealth, TargetHealth
from reconciler.objects import ObjectRef
from reconciler.store.db import Store
from reconciler.store.rows import HealthRow, State, StatusRow
from reconciler.waiting import Goal, Outcome, judge

T = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
REV = "abc123" + "0" * 34
DEPLOY = ObjectRef("apps", "Deployment", "demo", "web")


def health(state: Health, ready: int, reason: str = "") -> TargetHealth:
    obj = ObjectHealth(state, reason or f"{ready}/3 available", ready, 3, ref=DEPLOY)
    return TargetHealth(state, obj.describe(), ready, 3, (obj,))


def status(cluster: str, state: State = State.SYNCED, revision: str = REV) -> StatusRow:
    return StatusRow("web", cluster, state, "", revision, T)


def judged(cluster: str, h: TargetHealth, revision: str = REV) -> HealthRow:
    return HealthRow("web", cluster, h, revision, T, T)


def test_healthy_everywhere_is_reached_and_synced_needs_no_health() -> None:
    rows = [status("a"), status("b")]
    good = [judged("a", health(Health.HEALTHY, 3)), judged("b", health(Health.HEALTHY, 3))]
    assert judge(rows, good, Goal.HEALTHY).outcome is Outcome.REACHED
    assert judge(rows, [], Goal.SYNCED).outcome is Outcome.REACHED
    assert judge(rows, [], Goal.HEALTHY).outcome is Outcome.WAITING


def test_a_degraded_target_fails_the_wait_for_health_and_says_why() -> None:
    bad = health(Health.DEGRADED, 1, "1/3 available (ProgressDeadlineExceeded)")
    verdict = judge([status("a")], [judged("a", bad)], Goal.HEALTHY)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.failures()[0].reason == (
        "Degraded: Deployment.apps/demo/web 1/3 available (ProgressDeadlineExceeded)"
    )
    assert judge([status("a")], [judged("a", bad)], Goal.SYNCED).outcome is Outcome.REACHED


def test_a_target_whose_worst_object_is_suspended_is_reached() -> None:
    """A suspended CronJob beside a healthy Deployment: deliberately not running, as in
    `reconciler status` and the rollout gate."""
    verdict = judge([status("a")], [judged("a", health(Health.SUSPENDED, 3))], Goal.HEALTHY)
    assert verdict.outcome is Outcome.REACHED


def test_degraded_since_an_older_revision_is_waited_on_not_failed() -> None:
    """Revision 1 left it Degraded; the pass that applied 2 still judged it so (the Deployment
    2 did not change, read before the apply): 2 may fix it."""
    bad = health(Health.DEGRADED, 1, "1/3 available (ProgressDeadlineExceeded)")
    rows, judged_rows = [status("a")], [judged("a", bad)]
    verdict = judge(rows, judged_rows, Goal.HEALTHY, degraded_on={"a": "old" + "0" * 37})
    assert verdict.outcome is Outcome.WAITING
    assert verdict.waiting()[0].reason.endswith("(since before this revision)")
    again = judge(rows, judged_rows, Goal.HEALTHY, degraded_on={"a": REV})
    assert again.outcome is Outcome.FAILED


def test_failed_and_invalid_config_fail_the_wait() -> None:
    verdict = judge([status("a", State.FAILED)], [], Goal.SYNCED)
    assert verdict.outcome is Outcome.FAILED


def test_a_revision_must_be_applied_and_health_judged_on_it() -> None:
    old = [status("a", revision="def456" + "0" * 34)]
    verdict = judge(old, [], Goal.SYNCED, revision="abc123")
    assert verdict.outcome is Outcome.WAITING
    assert verdict.targets[0].reason == "at def456000000, not yet at abc123"
    # Degraded on an older revision does not fail a wait for a newer one.
    stale = [judged("a", health(Health.DEGRADED, 0), revision="def456" + "0" * 34)]
    assert judge(old, stale, Goal.HEALTHY, revision="abc123").outcome is Outcome.WAITING
    fresh = [judged("a", health(Health.HEALTHY, 3))]
    assert judge([status("a")], fresh, Goal.HEALTHY, revision="abc123").outcome is Outcome.REACHED


def test_expected_clusters_not_recorded_yet_are_waited_for() -> None:
    verdict = judge([status("a")], [], Goal.SYNCED, clusters=["a", "b"])
    assert verdict.outcome is Outcome.WAITING
    assert [t.line() for t in verdict.waiting()] == [
        "b  (none yet)  -  -  -  not recorded by the daemon yet"
    ]


# ---- the command ------------------------------------------------------------------------------


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state dir whose daemon "runs": the test holds its lock."""
    directory = tmp_path / "state"
    Store.open(directory).close()
    with (directory / "daemon.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield directory


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["wait", *args])
    return result.exit_code, result.stdout, result.stderr


def test_wait_exits_0_when_healthy(state: Path) -> None:
    with Store.open(state) as store:
        store.set_status(status("a"))
        store.set_health("web", "a", health(Health.HEALTHY, 3), REV, T)
    code, out, _ = run("--app", "web", "--state-dir", str(state), "--timeout", "1s")
    assert code == 0
    assert out.splitlines() == [
        f"web  a  Synced  Healthy  3/3  {REV[:12]}",
        "web is healthy on 1 cluster(s): a",
    ]


def test_wait_exits_2_naming_the_degraded_target(state: Path) -> None:
    with Store.open(state) as store:
        store.set_status(status("a"))
        bad = health(Health.DEGRADED, 1, "1/3 available (ProgressDeadlineExceeded)")
        store.set_health("web", "a", bad, REV, T)
    code, _, err = run("--app", "web", "--state-dir", str(state))
    assert code == 2
    assert err == (
        "error: web on cluster a: Degraded: Deployment.apps/demo/web 1/3 available "
        "(ProgressDeadlineExceeded)\n"
    )


def test_wait_names_the_clusters_failing_for_the_same_reason_once(state: Path) -> None:
    with Store.open(state) as store:
        for cluster in ("b", "a"):
            store.set_status(status(cluster))
            bad = health(Health.DEGRADED, 1, "1/3 available (ProgressDeadlineExceeded)")
            store.set_health("web", cluster, bad, REV, T)
    code, _, err = run("--app", "web", "--state-dir", str(state))
    assert code == 2
    assert err == (
        "error: web on clusters a, b: Degraded: Deployment.apps/demo/web 1/3 available "
        "(ProgressDeadlineExceeded)\n"
    )


def test_wait_times_out_on_a_target_degraded_since_the_revision_before(state: Path) -> None:
    """Degraded on revision 1; the pass that applied 2 judged it Degraded still: not a failure
    of 2, which may fix it (it times out if it does not)."""
    old = "def456" + "0" * 34
    with Store.open(state) as store:
        store.set_status(status("a"))
        bad = health(Health.DEGRADED, 1, "1/3 available (ProgressDeadlineExceeded)")
        store.set_health("web", "a", bad, old, T)
        store.set_health("web", "a", bad, REV, T)
    code, out, _ = run("--app", "web", "--state-dir", str(state), "--timeout", "1s")
    assert code == 1
    assert "(since before this revision)" in out


def test_wait_exits_1_on_timeout_saying_what_is_missing(state: Path) -> None:
    with Store.open(state) as store:
        store.set_status(status("a"))
        store.set_health("web", "a", health(Health.PROGRESSING, 2), REV, T)
    clock = iter(range(100))
    code = _wait(
        state,
        "web",
        None,
        Goal.HEALTHY,
        None,
        3.0,
        False,
        monotonic=lambda: float(next(clock)),
        sleep=lambda _: None,
    )
    assert code == 1


def test_wait_without_a_daemon_is_an_error_not_a_long_wait(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    with Store.open(directory) as store:
        store.set_status(status("a", State.OUT_OF_SYNC))
    code, _, err = run("--app", "web", "--state-dir", str(directory), "--for", "synced")
    assert code == 2
    assert "no daemon runs on" in err
