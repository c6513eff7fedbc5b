"""Which of a revision's charts are unsettled (their source could not be asked) and when they are
resolved again (pure), with the real resolver against a Helm repository on loopback that is
down, answers 503, or answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import repo_snippets as snip

from reconciler.charts.cache import ChartCache
from reconciler.charts.lock import lock_charts
from reconciler.charts.model import ChartLock, Pin
from reconciler.charts.resolver import ChartResolver
from reconciler.config.load import load_partial
from reconciler.daemon.chartretry import (
    changed,
    delay,
    next_retry,
    outcomes,
    settled_pins,
    unsettled,
)
from tests.chartservers import HelmRepoServer, demo_chart_repo


@pytest.fixture
def chart_repo(tmp_path: Path) -> Iterator[HelmRepoServer]:
    with demo_chart_repo(tmp_path, ("1.0.0", "1.1.0")) as server:
        yield server


def lock_of(
    tmp_path: Path, url: str, version: str, pins: dict[str, Pin] | None = None
) -> ChartLock:
    root = tmp_path / f"repo-{len(list(tmp_path.glob('repo-*')))}"
    for rel, text in snip.demo_chart_app(url, version).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    repo = load_partial(root).repo
    return lock_charts(repo, ChartResolver(ChartCache(tmp_path / "charts")), pins)


# ---- pure: which charts are unsettled, when to ask again --------------------------------------


def test_a_source_answering_503_or_down_leaves_the_chart_unsettled(
    tmp_path: Path, chart_repo: HelmRepoServer
) -> None:
    chart_repo.fail(503)
    failed = lock_of(tmp_path, chart_repo.url, "1.1.0")
    assert "HTTP 503" in failed.errors["web"]
    assert unsettled(failed) == {"web": failed.errors["web"]}

    chart_repo.stop()
    down = lock_of(tmp_path, chart_repo.url, "~1.1")
    assert unsettled(down) == {"web": down.errors["web"]}


def test_a_cached_fallback_is_unsettled_and_never_recorded_as_the_pin(
    tmp_path: Path, chart_repo: HelmRepoServer
) -> None:
    first = lock_of(tmp_path, chart_repo.url, "1.0.0")
    assert settled_pins(first) == {
        "web": (f"{chart_repo.url} demo", "1.0.0", first.pins()["web"].digest)
    }
    assert unsettled(first) == {}

    chart_repo.fail(503)
    fallback = lock_of(tmp_path, chart_repo.url, "^1.0")
    assert fallback.charts["web"].version == "1.0.0"
    assert unsettled(fallback) == {"web": fallback.charts["web"].note}
    assert settled_pins(fallback) == {}

    chart_repo.fail(None)
    answered = lock_of(tmp_path, chart_repo.url, "^1.0")
    assert changed(outcomes(fallback, ["web"]), answered) == ["web"]
    assert answered.charts["web"].version == "1.1.0"
    assert unsettled(answered) == {}


def test_a_source_that_answered_or_a_bad_constraint_is_not_asked_again(
    tmp_path: Path, chart_repo: HelmRepoServer
) -> None:
    for version in ("9.9.9", "^7", ">>1"):
        lock = lock_of(tmp_path, chart_repo.url, version)
        assert "web" in lock.errors
        assert unsettled(lock) == {}, lock.errors


def test_a_pinned_chart_that_cannot_be_had_is_unsettled(
    tmp_path: Path, chart_repo: HelmRepoServer
) -> None:
    pin = Pin("1.1.0", "sha256:" + "0" * 64)  # not cached; the source is down
    chart_repo.stop()
    lock = lock_of(tmp_path, chart_repo.url, "~1.1", {"web": pin})
    assert unsettled(lock, ["web"]) == {"web": lock.errors["web"]}


def test_a_still_failing_chart_is_no_change_and_the_retries_back_off() -> None:
    web = frozenset({"web"})
    failing = ChartLock({}, {"web": "x: HTTP 503 (and no cached version matches)"}, web)
    other_error = ChartLock(
        {}, {"web": "x: connection refused (and no cached version matches)"}, web
    )
    assert changed(outcomes(failing, ["web"]), other_error) == []
    assert [delay(n, 30.0, 300.0) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]

    why = unsettled(failing)
    retry = next_retry(None, "abc", failing, why, 1000.0, 30.0, 300.0)
    assert retry is not None and (retry.attempts, retry.due) == (1, 1030.0)
    again = next_retry(retry, "abc", failing, why, 1030.0, 30.0, 300.0)
    assert again is not None and (again.attempts, again.due) == (2, 1090.0)
    assert next_retry(again, "def", failing, why, 1090.0, 30.0, 300.0).attempts == 1  # type: ignore[union-attr]
    assert next_retry(again, "abc", ChartLock(), {}, 1090.0, 30.0, 300.0) is None
