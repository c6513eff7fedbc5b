"""The status a replica publishes for one member cluster: encode, decode, hash (pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.fields import Drift, FieldChange
from reconciler.health import Health, TargetHealth
from reconciler.published.status import (
    MAX_DRIFT_OBJECTS,
    build,
    content_hash,
    decode,
    encode,
    observations,
    rows,
)
from reconciler.rollout.model import Observation
from reconciler.store.rows import DriftRow, HealthRow, State, StatusRow

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _status(app: str = "web", state: State = State.SYNCED, at: datetime = T0) -> StatusRow:
    return StatusRow(app, "us-west-1", state, "", "a" * 40, at, at)


def _health(app: str = "web", at: datetime = T0) -> HealthRow:
    return HealthRow(app, "us-west-1", TargetHealth(Health.HEALTHY, "", 3, 3), "a" * 40, at, T0)


def _drift(obj: str = "Deployment/demo/web", ident: int = 7) -> DriftRow:
    change = FieldChange("spec.replicas", 3, 7, "kubectl-edit", T0)
    return DriftRow(ident, "web", "us-west-1", obj, Drift.MODIFIED, [change], "a" * 40, T0, None)


def test_a_cluster_round_trips_through_configmap_data() -> None:
    seen = Observation("a" * 40, 100.0, "Healthy", 101.0, 102.0, "", True)
    published = build("us-west-1", "replica-1", [_status()], [_health()], [_drift()], {"web": seen})
    data = encode(published)

    assert all(isinstance(v, str) for v in data.values())
    back = decode(data)
    status, health, drift, replicas = rows([back])
    assert status == [_status()]
    assert health[("web", "us-west-1")].health == TargetHealth(Health.HEALTHY, "", 3, 3)
    assert [(d.object, d.fields) for d in drift] == [("Deployment/demo/web", _drift().fields)]
    assert replicas == {("web", "us-west-1"): "replica-1"}
    # A gate needs health read after the apply, not when: the read time comes back after it.
    observed = observations(back)["web"]
    assert (observed.applied, observed.health, observed.health_since) == (
        "a" * 40,
        "Healthy",
        101.0,
    )
    assert observed.health_at is not None and observed.health_at > 100.0


def test_the_hash_ignores_times_that_move_on_every_pass() -> None:
    first = build("us-west-1", "r1", [_status()], [_health()], [])
    later = T0 + timedelta(minutes=5)
    again = build("us-west-1", "r1", [_status(at=later)], [_health(at=later)], [])

    assert content_hash(first) == content_hash(again)
    assert encode(first) != encode(again)  # the times themselves are still published


def test_the_hash_changes_with_what_the_status_says() -> None:
    base = content_hash(build("us-west-1", "r1", [_status()], [], []))

    assert content_hash(build("us-west-1", "r1", [_status(state=State.DRIFTED)], [], [])) != base
    assert content_hash(build("us-west-1", "r1", [_status()], [], [_drift()])) != base
    assert content_hash(build("us-west-1", "r1", [_status()], [_health()], [])) != base


def test_a_fresh_health_read_is_published_once_not_on_every_check() -> None:
    seen = Observation("a" * 40, 100.0, "Healthy", 101.0, 102.0, "", True)
    later = replace(seen, health_at=500.0)

    one = build("us-west-1", "r", [_status()], [], [], {"web": seen})
    two = build("us-west-1", "r", [_status()], [], [], {"web": later})
    assert content_hash(one) == content_hash(two)
    stale = replace(seen, health_at=99.0)  # read before the apply
    assert content_hash(
        build("us-west-1", "r", [_status()], [], [], {"web": stale})
    ) != content_hash(one)


def test_secret_values_are_masked() -> None:
    change = FieldChange("data.password", "c2VjcmV0", "b3RoZXI=", "kubectl-edit", T0)
    secret = replace(_drift("Secret/demo/db"), fields=[change])

    data = encode(build("us-west-1", "r1", [_status()], [], [secret]))

    assert "c2VjcmV0" not in json.dumps(data) and "b3RoZXI=" not in json.dumps(data)
    (field,) = decode(data).targets[0].drift[0].fields
    assert (field.git, field.live) == ("(masked)", "(masked)")


def test_drift_is_capped_per_app_and_the_count_says_how_many() -> None:
    many = [_drift(f"ConfigMap/demo/c{n:03d}", n) for n in range(MAX_DRIFT_OBJECTS + 5)]

    target = decode(encode(build("us-west-1", "r1", [_status()], [], many))).targets[0]

    assert len(target.drift) == MAX_DRIFT_OBJECTS
    assert target.drift_open == MAX_DRIFT_OBJECTS + 5


def test_long_values_are_cut() -> None:
    change = FieldChange("data.big", None, "x" * 5000, "kubectl-edit", T0)
    big = replace(_drift("ConfigMap/demo/big"), fields=[change])

    data = encode(build("us-west-1", "r1", [_status()], [], [big]))

    assert len(data["app.web"]) < 1000


def test_corrected_drift_and_other_clusters_rows_are_left_out() -> None:
    corrected = replace(_drift(), corrected_at=T0)
    elsewhere = replace(_drift(), cluster="beijing-1")

    published = build("us-west-1", "r1", [_status()], [], [corrected, elsewhere])

    assert published.targets[0].drift == ()


def test_a_document_of_another_format_is_refused() -> None:
    data = encode(build("us-west-1", "r1", [_status()], [], []))

    with pytest.raises(ValueError, match="format"):
        decode({**data, "format": "v9"})
    with pytest.raises(ValueError, match="app web"):
        decode({**data, "app.web": "{not json"})


def test_revisions_other_than_the_targets_own_survive_the_round_trip() -> None:
    health = replace(_health(), revision="b" * 40)
    drift = replace(_drift(), revision=None)
    seen = Observation(None, None, "Unknown", None, None, "not applied yet", False)

    back = decode(
        encode(build("us-west-1", "r1", [_status()], [health], [drift], {"web": seen}))
    ).targets[0]

    assert back.health is not None and back.health.revision == "b" * 40
    assert back.drift[0].revision is None
    assert back.observation is not None
    assert (back.observation.applied, back.observation.reachable) == (None, False)
    assert back.observation.health_reason == "not applied yet"
