"""One replica's own state (source, newest revision) as it publishes it (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.published.replica import ReplicaStatus, content_hash, decode, encode
from reconciler.store.rows import RevisionRow, SourceStatus

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
SOURCE = SourceStatus("/srv/repo", "main", T0, "a" * 40)
REVISION = RevisionRow("a" * 40, T0, True, None)


def test_a_replica_round_trips() -> None:
    failing = replace(SOURCE, last_error="unreachable", last_error_at=T0, failing_since=T0)
    status = ReplicaStatus("r1", replace(failing, consecutive_failures=3), REVISION)

    assert decode(encode(status)) == status
    assert decode(encode(ReplicaStatus("r1"))) == ReplicaStatus("r1")


def test_fetching_again_changes_nothing_a_new_revision_or_failure_does() -> None:
    base = content_hash(ReplicaStatus("r1", SOURCE, REVISION))
    later = replace(SOURCE, last_success_at=T0 + timedelta(minutes=5))

    assert content_hash(ReplicaStatus("r1", later, REVISION)) == base
    newer = replace(REVISION, sha="b" * 40)
    assert content_hash(ReplicaStatus("r1", SOURCE, newer)) != base
    failing = replace(SOURCE, last_error="unreachable", failing_since=T0, consecutive_failures=1)
    assert content_hash(ReplicaStatus("r1", failing, REVISION)) != base
    again = replace(failing, consecutive_failures=7, last_error_at=T0 + timedelta(minutes=1))
    assert content_hash(ReplicaStatus("r1", again, REVISION)) == content_hash(
        ReplicaStatus("r1", failing, REVISION)
    )


def test_a_document_it_cannot_read_is_refused() -> None:
    with pytest.raises(ValueError):
        decode({"format": "v2", "replica": "r1"})
    with pytest.raises(ValueError, match="replica r1"):
        decode({"format": "v1", "replica": "r1", "revision": "{}"})
