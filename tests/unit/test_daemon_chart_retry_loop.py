"""The daemon resolves the head's charts whose source could not be asked again on later polls,
backing off, until the source answers: the revision is published again (a new generation) and
the chart it resolved to is recorded as the revision's pin. A cached fallback never is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import repo_snippets as snip

from reconciler.charts.cache import ChartCache
from reconciler.charts.resolver import ChartResolver
from reconciler.daemon.loop import Daemon
from reconciler.kube.pool import Clients
from reconciler.store.db import Store
from reconciler.store.rows import State
from tests.chartservers import HelmRepoServer, demo_chart_repo, helm_repo, package, write_chart
from tests.unit.daemon_rig import SETTINGS, FakeClock, FakeClusters, FakeSource, InlineDispatcher


@pytest.fixture
def chart_repo(tmp_path: Path) -> Iterator[HelmRepoServer]:
    with demo_chart_repo(tmp_path, ("1.0.0", "1.1.0")) as server:
        yield server


class ChartRig:
    def __init__(self, tmp_path: Path, store: Store, source: FakeSource | None = None) -> None:
        self.clock = FakeClock()
        self.source = source or FakeSource(tmp_path / "trees")
        self.clusters = FakeClusters()
        self.store = store
        cache = ChartCache(tmp_path / "charts")
        self.daemon = Daemon(
            self.source,
            store,
            Clients(None),
            settings=SETTINGS,  # polls every 30s (+ up to 10%, here 1.5s)
            clock=self.clock,
            dispatcher=InlineDispatcher(),
            reconcile_fn=self.clusters,
            rand=lambda: 0.5,
            charts=lambda: ChartResolver(cache),
        )

    def poll(self, seconds: float = 31.5) -> None:
        self.clock.advance(seconds)
        self.daemon.tick()

    def status(self) -> tuple[State, str]:
        (row,) = [r for r in self.store.list_status() if r.app == "web"]
        return row.state, row.message

    def pin(self, sha: str) -> str | None:
        found = self.store.chart_pins().get(sha, {}).get("web")
        return found[0] if found else None


def test_a_chart_whose_source_answered_503_at_the_commit_is_resolved_when_it_answers_again(
    tmp_path: Path, store: Store, chart_repo: HelmRepoServer
) -> None:
    rig = ChartRig(tmp_path, store)
    chart_repo.fail(503)
    sha = rig.source.commit_files(snip.demo_chart_app(chart_repo.url, "1.1.0"))
    rig.daemon.tick()
    state, message = rig.status()
    assert state is State.INVALID_CONFIG
    assert message.endswith(
        f"chart {chart_repo.url} demo 1.1.0: {chart_repo.url}index.yaml: HTTP 503"
        " (and no cached version matches); resolved again on later polls until the source answers"
    )
    assert rig.pin(sha) is None
    asked = len(chart_repo.requests)
    assert rig.daemon.desired is not None
    generation = rig.daemon.desired.generation

    # Polls: asked again after one interval, then two, then four (backing off).
    rig.poll()
    assert len(chart_repo.requests) == asked + 1
    rig.poll()
    assert len(chart_repo.requests) == asked + 1  # 30s after the last ask: not yet (60s)
    rig.poll()
    assert len(chart_repo.requests) == asked + 2
    assert rig.daemon.desired.generation == generation  # nothing published meanwhile

    chart_repo.fail(None)
    for _ in range(4):  # the next ask is 120s after the last
        rig.poll()
    assert rig.status()[0] is State.SYNCED
    assert rig.daemon.desired.generation == generation + 1
    assert rig.pin(sha) == "1.1.0"
    assert rig.clusters.passes("beijing-1")[-1] == sha

    _never_asked_again(rig, chart_repo)  # resolved for this commit


def test_a_cached_fallback_is_replaced_when_the_source_answers(
    tmp_path: Path, store: Store, chart_repo: HelmRepoServer
) -> None:
    rig = ChartRig(tmp_path, store)
    rig.source.commit_files(snip.demo_chart_app(chart_repo.url, "1.0.0"))
    rig.daemon.tick()
    assert rig.status()[0] is State.SYNCED

    chart_repo.fail(503)
    sha = rig.source.commit_files(snip.demo_chart_app(chart_repo.url, "^1.0"))
    rig.poll()
    assert rig.status()[0] is State.SYNCED
    assert rig.daemon.book.get(sha, ("web", "beijing-1")) is not None
    assert rig.daemon.desired is not None
    assert rig.daemon.desired.targets["beijing-1"][0].rendered is not None
    assert _chart_version(rig, sha) == "1.0.0"
    assert rig.pin(sha) is None  # a fallback is not the revision's pin

    rig.poll()  # still down: still the cached chart, nothing published
    generation = rig.daemon.desired.generation
    chart_repo.fail(None)
    for _ in range(3):
        rig.poll()
    assert _chart_version(rig, sha) == "1.1.0"
    assert rig.daemon.desired.generation == generation + 1
    assert rig.pin(sha) == "1.1.0"


def _never_asked_again(rig: ChartRig, chart_repo: HelmRepoServer) -> None:
    """Twelve polls (over six minutes of the rig's clock, past the longest retry) ask nothing."""
    asked = len(chart_repo.requests)
    for _ in range(12):
        rig.poll()
    assert len(chart_repo.requests) == asked


def _chart_version(rig: ChartRig, sha: str) -> str:
    target = rig.daemon.book.get(sha, ("web", "beijing-1"))
    assert target is not None and target.rendered is not None
    (config,) = [o for o in target.rendered.objects if o["kind"] == "ConfigMap"]
    return str(config["data"]["chartVersion"])


def test_a_chart_the_source_then_says_it_does_not_have_waits_for_a_commit(
    tmp_path: Path, store: Store, chart_repo: HelmRepoServer
) -> None:
    rig = ChartRig(tmp_path, store)
    chart_repo.fail(503)
    rig.source.commit_files(snip.demo_chart_app(chart_repo.url, "9.9.9"))
    rig.daemon.tick()
    assert rig.status()[1].endswith("resolved again on later polls until the source answers")

    chart_repo.fail(None)
    rig.poll()  # the source answers: it has no 9.9.9, and the status says just that
    state, message = rig.status()
    assert state is State.INVALID_CONFIG
    assert message.endswith("demo 9.9.9: no version matches (newest: 1.1.0, 1.0.0)"), message
    _never_asked_again(rig, chart_repo)


def test_a_restart_does_not_keep_a_cached_fallback(
    tmp_path: Path, store: Store, chart_repo: HelmRepoServer
) -> None:
    rig = ChartRig(tmp_path, store)
    rig.source.commit_files(snip.demo_chart_app(chart_repo.url, "1.0.0"))
    rig.daemon.tick()
    chart_repo.fail(503)
    sha = rig.source.commit_files(snip.demo_chart_app(chart_repo.url, "^1.0"))
    rig.poll()
    assert _chart_version(rig, sha) == "1.0.0"

    chart_repo.fail(None)
    restarted = ChartRig(tmp_path, store, rig.source)
    restarted.daemon.tick()
    assert _chart_version(restarted, sha) == "1.1.0"
    assert restarted.pin(sha) == "1.1.0"


def test_only_the_unsettled_charts_are_asked_again(
    tmp_path: Path, store: Store, chart_repo: HelmRepoServer
) -> None:
    with helm_repo(tmp_path / "other") as other:
        package(write_chart(tmp_path / "src2", "demo", "1.0.0"), other.root, tmp_path / "h2")
        other.index(tmp_path / "h2")
        rig = ChartRig(tmp_path, store)
        chart_repo.fail(503)
        tree = snip.demo_chart_app(chart_repo.url, "1.1.0")
        tree["apps/api/app.yaml"] = snip.app(
            "api",
            f"""
            namespace: api
            source: {{helm: {{repo: "{other.url}", chart: demo, version: "2.0.0"}}}}
            placement: {{clusters: [beijing-1]}}
            """,
        )
        sha = rig.source.commit_files(tree)
        rig.daemon.tick()
        asked_other = list(other.requests)
        assert asked_other == ["/index.yaml"]  # it answered: it has no 2.0.0

        # 2.0.0 appears there, the first repository answers again: only its chart is resolved
        # (the revision is published again), the other keeps its error until a commit.
        package(write_chart(tmp_path / "src2", "demo", "2.0.0"), other.root, tmp_path / "h2")
        other.index(tmp_path / "h2")
        chart_repo.fail(None)
        rig.poll()
        assert rig.status()[0] is State.SYNCED
        (api,) = [r for r in store.list_status() if r.app == "api"]
        assert api.state is State.INVALID_CONFIG
        assert api.message.endswith("demo 2.0.0: no version matches (newest: 1.0.0)"), api.message
        assert other.requests == asked_other
        assert rig.pin(sha) == "1.1.0"
