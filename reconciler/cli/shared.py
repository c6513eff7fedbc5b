"""What the CLI reads and writes on the management cluster when replicas share the fleet
(``--shard-lease-namespace``): the published status of every member cluster and each app's
shared rollout (its state, commands, pins)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import click

from reconciler.errors import ReconcilerError
from reconciler.published.replica import ReplicaStatus
from reconciler.published.rollout import SharedRollout
from reconciler.store.rows import DriftRow, HealthRow, StatusRow

if TYPE_CHECKING:
    from reconciler.kube.management import SharedObjects, Versioned

T = TypeVar("T")
_ATTEMPTS = 10  # conditional updates retried this often when someone wrote meanwhile


@dataclass(frozen=True)
class Fleetwide:
    """Every member cluster's published status, as a local store would give it, and each
    replica's own state (source, newest revision)."""

    status: list[StatusRow]
    health: dict[tuple[str, str], HealthRow]
    drift: list[DriftRow]
    replicas: dict[tuple[str, str], str]
    own: list[ReplicaStatus] = field(default_factory=list)


def _readable(
    shared: SharedObjects, items: Iterable[Versioned], decode: Callable[[Mapping[str, str]], T]
) -> list[T]:
    """Each item decoded; one that does not decode is named on stderr and skipped."""
    out = []
    for item in items:
        try:
            out.append(decode(item.data))
        except ValueError as err:
            click.echo(
                f"warning: ConfigMap {shared.namespace}/{item.name}: not readable: {err}",
                err=True,
            )
    return out


def read_status(shared: SharedObjects) -> Fleetwide:
    """Decode every published status; one that does not decode is named on stderr, skipped."""
    from reconciler.published.replica import decode as decode_replica
    from reconciler.published.status import decode, rows

    status, health, drift, replicas = rows(_readable(shared, shared.statuses(), decode))
    own = _readable(shared, shared.replicas(), decode_replica)
    return Fleetwide(status, health, drift, replicas, sorted(own, key=lambda r: r.replica))


def read_rollouts(shared: SharedObjects) -> list[SharedRollout]:
    """Every app's shared rollout, by app (unreadable ones named on stderr)."""
    from reconciler.published.rollout import decode

    return sorted(_readable(shared, shared.rollouts(), decode), key=lambda r: r.app)


def update_rollout(
    shared: SharedObjects, app: str, change: Callable[[SharedRollout], SharedRollout]
) -> SharedRollout:
    """Read the app's shared rollout, ``change`` it, write it back if nobody wrote meanwhile
    (else read again and retry). ``change`` may raise ReconcilerError to refuse."""
    from reconciler.kube.management import StaleWrite
    from reconciler.published.rollout import decode, encode

    for _ in range(_ATTEMPTS):
        read = shared.rollout(app)
        current = decode(read.data) if read is not None else SharedRollout(app)
        changed = change(current)
        try:
            shared.write_rollout(app, encode(changed), read)
        except StaleWrite:
            continue
        return changed
    raise ReconcilerError(
        f"app {app}: the shared rollout kept changing while writing ({_ATTEMPTS} attempts); "
        "try again"
    )
