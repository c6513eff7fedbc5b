"""What the store keeps, as frozen rows: revisions, targets, releases, the source, status,
health, drift."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from reconciler.fields import Drift, FieldChange
from reconciler.health import Health, TargetHealth


class State(StrEnum):
    """State of one app on one cluster.

    ``InvalidConfig`` is kept apart from ``Failed``: the app's config at the newest revision does
    not load or render, so nothing was applied and the last good revision stays live (the message
    says why). ``Failed`` means applying to that cluster failed. ``Held``: the newest revision
    would prune too much (the prune guard) and waits for a release; the previous one stays live.
    """

    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    PROGRESSING = "Progressing"
    DRIFTED = "Drifted"
    FAILED = "Failed"
    UNREACHABLE = "Unreachable"
    PAUSED = "Paused"
    INVALID_CONFIG = "InvalidConfig"
    HELD = "Held"


@dataclass(frozen=True)
class RevisionRow:
    """A revision seen: whether its config loaded (``error`` says why not, or which apps did
    not) and, when the prune guard holds it, why (``held``)."""

    sha: str
    seen_at: datetime
    valid: bool
    error: str | None
    held: str | None = None


@dataclass(frozen=True)
class TargetRevision:
    """The revisions of one app on one cluster (a *target*).

    ``desired`` is the revision it should run, decided by the daemon on each pass (the newest
    revision whose config for this target loads and renders; later a rollout or a pin may
    decide otherwise). ``applied`` is the revision whose objects a pass last applied in full,
    at ``applied_at``; ``objects`` are the objects of that apply (``Kind/namespace/name``):
    what this instance manages there, which the prune guard counts.
    """

    app: str
    cluster: str
    desired: str | None
    applied: str | None = None
    applied_at: datetime | None = None
    objects: tuple[str, ...] = ()


@dataclass(frozen=True)
class RolloutRow:
    """A rollout of ``revision`` of ``app``; ``data`` is its whole state (rollout.codec)."""

    app: str
    revision: str
    phase: str
    data: dict[str, Any]
    started_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RolloutCommandRow:
    """An operator's ``rollout approve|pause|resume|abort`` for the rollout of ``revision``,
    waiting for the daemon until ``consumed_at``."""

    id: int
    app: str
    revision: str
    kind: str
    stage: str | None
    user: str
    at: datetime
    consumed_at: datetime | None = None


@dataclass(frozen=True)
class Pin:
    """``reconciler rollback``: ``app`` on ``cluster`` (``*``: every cluster) runs ``revision``
    until released."""

    app: str
    cluster: str
    revision: str
    user: str
    at: datetime


ALL_CLUSTERS = "*"


@dataclass(frozen=True)
class Release:
    """A revision held by the prune guard, released by ``user`` at ``at``."""

    sha: str
    user: str
    at: datetime


@dataclass(frozen=True)
class SourceStatus:
    """How reading the config repo goes: the last success, and the current run of failures.

    ``location`` is the credential-free display string of the repo, ``branch`` None means the
    remote's default branch. A success clears ``last_error``, ``last_error_at``,
    ``failing_since`` and ``consecutive_failures``; a failure keeps the last success.
    """

    location: str
    branch: str | None
    last_success_at: datetime | None = None
    last_success_sha: str | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failing_since: datetime | None = None  # the first failure of the current run
    consecutive_failures: int = 0

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0


@dataclass(frozen=True)
class StatusRow:
    app: str
    cluster: str
    state: State
    message: str
    revision: str | None
    updated_at: datetime
    last_synced_at: datetime | None = None


class DriftKey(NamedTuple):
    """A drift observation within one app and cluster: object, kind and field paths.

    Two observations are the same drift when object and kind match (:attr:`ident`): when the
    set of drifted fields changes, the open record is updated in place, not closed.
    """

    object: str
    kind: Drift
    paths: tuple[str, ...]

    @property
    def ident(self) -> tuple[str, Drift]:
        """What identifies an open drift record: object and kind (not the field paths)."""
        return (self.object, Drift(self.kind))


@dataclass(frozen=True)
class DriftRow:
    id: int
    app: str
    cluster: str
    object: str
    kind: Drift
    fields: list[FieldChange] = field(hash=False)
    revision: str | None
    detected_at: datetime
    corrected_at: datetime | None
    # Corrected by a user's one-shot heal (`reconciler apply --heal`): who, and when.
    healed_by: str | None = None
    healed_at: datetime | None = None

    @property
    def key(self) -> DriftKey:
        return drift_key(self.object, self.kind, self.fields)

    @property
    def open(self) -> bool:
        return self.corrected_at is None


def drift_key(object: str, kind: str, fields: Iterable[FieldChange]) -> DriftKey:
    """The dedupe key of a drift observation: object, kind and the sorted set of field paths."""
    return DriftKey(object, Drift(kind), tuple(sorted({f.path for f in fields})))


@dataclass(frozen=True)
class HealthRow:
    """The health of one app on one cluster as last judged (at ``assessed_at``, on the live
    state of ``revision``), and since when it has been in that state."""

    app: str
    cluster: str
    health: TargetHealth
    revision: str | None
    assessed_at: datetime
    since: datetime


@dataclass(frozen=True)
class HealthChange:
    """A target's health turned from ``previous`` (None: first judged) to ``health``."""

    id: int
    app: str
    cluster: str
    health: Health
    reason: str
    previous: Health | None
    revision: str | None
    at: datetime
