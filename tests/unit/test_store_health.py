"""Health per target in the store: the latest judgement, and transitions between states."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.health import Health, ObjectHealth, TargetHealth
from reconciler.objects import ObjectRef
from reconciler.store.db import Store

T0 = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)
DEPLOY = ObjectRef("apps", "Deployment", "demo", "web")


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def judged(health: Health, reason: str, ready: int = 0) -> TargetHealth:
    obj = ObjectHealth(health, reason, ready, 3, ref=DEPLOY)
    return TargetHealth(health, obj.describe(), ready, 3, (obj,))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state") as opened:
        yield opened


def test_health_is_kept_per_target_with_every_object(store: Store) -> None:
    health = judged(Health.PROGRESSING, "1/3 available", 1)
    change = store.set_health("web", "c1", health, "aaa", at(0))
    assert change is not None and (change.previous, change.health) == (None, Health.PROGRESSING)
    [row] = store.list_health(app="web")
    assert (row.health, row.revision, row.assessed_at, row.since) == (health, "aaa", at(0), at(0))
    assert store.list_health(cluster="c2") == []


def test_only_a_change_of_state_is_a_transition(store: Store) -> None:
    store.set_health("web", "c1", judged(Health.PROGRESSING, "1/3 available", 1), "aaa", at(0))
    assert (
        store.set_health("web", "c1", judged(Health.PROGRESSING, "2/3 available", 2), "aaa", at(5))
        is None
    )
    healthy = store.set_health(
        "web", "c1", judged(Health.HEALTHY, "3/3 available", 3), "aaa", at(9)
    )
    assert healthy is not None and healthy.previous is Health.PROGRESSING
    [row] = store.list_health()
    assert (row.since, row.assessed_at, row.health.ready) == (at(9), at(9), 3)
    history = store.health_history(app="web")
    assert [(h.previous, h.health, h.reason, h.at) for h in history] == [
        (Health.PROGRESSING, Health.HEALTHY, "Deployment.apps/demo/web 3/3 available", at(9)),
        (None, Health.PROGRESSING, "Deployment.apps/demo/web 1/3 available", at(0)),
    ]
    assert [h.health for h in store.health_history(since=at(1))] == [Health.HEALTHY]
    assert len(store.health_history(limit=1)) == 1


def test_forgetting_a_target_forgets_its_health_but_not_its_history(store: Store) -> None:
    store.set_health("web", "c1", judged(Health.DEGRADED, "x"), "aaa", at(0))
    store.delete_status("web", "c1")
    assert store.list_health() == []
    assert len(store.health_history()) == 1


def test_old_transitions_are_pruned_but_each_targets_latest_is_kept(store: Store) -> None:
    store.set_health("web", "c1", judged(Health.PROGRESSING, "a"), "aaa", at(0))
    store.set_health("web", "c1", judged(Health.HEALTHY, "b"), "aaa", at(10))
    store.set_health("web", "c2", judged(Health.HEALTHY, "c"), "aaa", at(20))
    assert store.prune_health_history(timedelta(seconds=1), at(100)) == 1
    assert [(h.cluster, h.health) for h in store.health_history()] == [
        ("c2", Health.HEALTHY),
        ("c1", Health.HEALTHY),
    ]
