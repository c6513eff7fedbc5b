"""Rollouts shared by replicas through the management cluster (sharding on).

Each app's rollout lives in one object there (``published.rollout``): its state, the operators'
commands and the pins. Every replica reads all of them each rollout tick (one list request):
which revision its own clusters run comes from there. Only the replica that drives the app
(``owner_of(app, live replicas)``) starts, supersedes and steps its rollout, and writes it back
conditionally on the resourceVersion it read: a replica that lost the app meanwhile (a takeover)
gets a stale write and changes nothing. A driver reads what other replicas' clusters did from
their published status (one read per cluster a gate waits on). Main thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from structlog.typing import FilteringBoundLogger

from reconciler.daemon.lag import HeadLag
from reconciler.daemon.shards import owner_of
from reconciler.errors import ReconcilerError
from reconciler.kube.management import SharedObjects, StaleWrite, Versioned
from reconciler.published.rollout import SharedRollout, decode, encode
from reconciler.published.status import decode as decode_status
from reconciler.published.status import observations
from reconciler.rollout.model import Observation, RolloutState
from reconciler.store.rows import Pin, RolloutCommandRow

_BUSY_EVERY = 1.0  # seconds between reads while a rollout runs (the loop's rollout tick)
_IDLE_EVERY = 5.0  # seconds between reads otherwise (a new rollout or a command shows up)


@dataclass(frozen=True)
class Membership:
    """Who this replica is and which replicas are live now (from the replica Leases)."""

    me: str
    live: Callable[[], Sequence[str]]
    mine: Callable[[str], bool]  # whether this replica works that cluster now


class SharedRollouts:
    """See the module docstring."""

    def __init__(
        self,
        shared: SharedObjects,
        membership: Membership,
        log: FilteringBoundLogger,
        monotonic: Callable[[], float] = time.monotonic,
        lag: HeadLag | None = None,
    ) -> None:
        self.shared = shared
        self.membership = membership
        self.lag = lag  # whether this replica's head is behind an app's rollout (None: never)
        self.log = log.bind(replica=membership.me)
        self.objects: dict[str, tuple[SharedRollout, Versioned]] = {}
        self.reachable = False  # the last refresh worked
        self._status: dict[str, dict[str, Observation]] = {}  # this tick's reads, by cluster
        self._monotonic = monotonic
        self._read_at = float("-inf")

    def due(self, busy: bool) -> bool:
        """Whether to read the shared rollouts again: every ``_BUSY_EVERY`` seconds while a
        rollout runs or a decision is awaited, else every ``_IDLE_EVERY`` (the loop ticks on
        every pass: reading on each would cost a list request per pass)."""
        every = _BUSY_EVERY if busy else _IDLE_EVERY
        return self._monotonic() - self._read_at >= every

    @property
    def me(self) -> str:
        return self.membership.me

    def drives(self, app: str) -> bool:
        """Whether this replica drives ``app``'s rollout now (never while unreachable)."""
        return self.reachable and owner_of(app, list(self.membership.live())) == self.me

    def refresh(self) -> bool:
        """Read every app's shared rollout (one request); False when it could not be read
        (then nothing is driven and what was read last stays)."""
        self._status.clear()
        self._read_at = self._monotonic()
        try:
            items = self.shared.rollouts()
        except ReconcilerError as err:
            if self.reachable:
                self.log.warning("cannot read the shared rollouts", error=str(err))
            self.reachable = False
            return False
        found: dict[str, tuple[SharedRollout, Versioned]] = {}
        for item in items:
            try:
                found[decode(item.data).app] = (decode(item.data), item)
            except ValueError as err:
                self.log.error("shared rollout not readable", object=item.name, error=str(err))
        self.objects = found
        self.reachable = True
        if self.lag is not None:
            decided = {d for obj, _ in found.values() if (d := _decided(obj)) is not None}
            self.lag.learn(decided)
            self.lag.keep(decided)
        return True

    def state(self, app: str) -> RolloutState | None:
        held = self.objects.get(app)
        return held[0].state if held is not None else None

    def head(self, app: str) -> str | None:
        held = self.objects.get(app)
        return held[0].head if held is not None else None

    def behind(self, app: str, head: str) -> bool:
        """Whether this replica's ``head`` is behind what ``app``'s rollout was decided on last
        (``lag``): the replica has not fetched that commit yet, so it does not decide yet."""
        held = self.objects.get(app)
        if self.lag is None or held is None:
            return False
        return self.lag.behind(app, head, _decided(held[0]))

    def states(self) -> dict[str, RolloutState]:
        return {app: s for app, (obj, _) in self.objects.items() if (s := obj.state) is not None}

    def pins(self) -> list[Pin]:
        return sorted(
            (p for obj, _ in self.objects.values() for p in obj.pins),
            key=lambda p: (p.app, p.cluster),
        )

    def commands(self) -> list[RolloutCommandRow]:
        """Commands waiting for the apps this replica drives."""
        return [
            c
            for app, (obj, _) in sorted(self.objects.items())
            if self.drives(app)
            for c in obj.commands
        ]

    def save(
        self,
        app: str,
        state: RolloutState | None,
        consumed: Collection[int] = (),
        head: str | None = None,
    ) -> bool:
        """Write the driver's new state (and the head it decided on) if nobody wrote the
        object since it was read; False (and the object read again) otherwise."""
        if not self.drives(app):
            return False
        held = self.objects.get(app)
        current = held[0] if held is not None else SharedRollout(app)
        changed = current.stepped(state, consumed, self.me, head)
        try:
            written = self.shared.write_rollout(
                app, encode(changed), held[1] if held is not None else None
            )
        except StaleWrite:
            self.log.info("shared rollout changed meanwhile; read again", app=app)
            self._reread(app)
            return False
        except ReconcilerError as err:
            self.log.warning("cannot write the shared rollout", app=app, error=str(err))
            return False
        self.objects[app] = (changed, written)
        return True

    def observation(self, app: str, cluster: str) -> Observation | None:
        """What the replica working ``cluster`` published about ``app`` there (None: nothing
        published or not readable). Read once per cluster and tick."""
        if cluster not in self._status:
            try:
                item = self.shared.status(cluster)
                self._status[cluster] = observations(decode_status(item.data)) if item else {}
            except (ReconcilerError, ValueError) as err:
                self.log.warning("cannot read a cluster's status", cluster=cluster, error=str(err))
                self._status[cluster] = {}
        return self._status[cluster].get(app)

    def _reread(self, app: str) -> None:
        try:
            item = self.shared.rollout(app)
        except ReconcilerError:
            return
        if item is None:
            self.objects.pop(app, None)
        else:
            self.objects[app] = (decode(item.data), item)


def _decided(obj: SharedRollout) -> str | None:
    """The revision an app's rollout was decided on last: the driver's head, else (an object
    written before heads were) its rollout's revision."""
    if obj.head is not None:
        return obj.head
    return obj.state.revision if obj.state is not None else None
