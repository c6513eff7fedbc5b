"""One app's shared rollout as ConfigMap data: the rollout's state (written by the replica that
drives the app), operators' commands waiting for it, and the pins (``reconciler rollback``).

Every replica reads it (which revision its own clusters run); only the driver steps the state;
``reconciler rollout …``/``rollback`` add commands and pins. Writers update conditionally on the
object's resourceVersion, so nothing written concurrently is lost and a replica that lost the app
cannot overwrite the new driver. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from reconciler.rollout.codec import state_from_data, state_to_data
from reconciler.rollout.model import RolloutState
from reconciler.store.rows import ALL_CLUSTERS, Pin, RolloutCommandRow

FORMAT = "v1"


@dataclass(frozen=True)
class SharedRollout:
    """The shared object of ``app``: its newest rollout (None before the first), commands not
    taken yet, pins, which replica last wrote the state and the head it decided on (a head
    that starts no rollout is decided too: other replicas wait for that before moving)."""

    app: str
    state: RolloutState | None = None
    commands: tuple[RolloutCommandRow, ...] = field(default=())
    pins: tuple[Pin, ...] = field(default=())
    driver: str | None = None
    head: str | None = None  # the newest head the driver decided this app's rollout on

    def with_command(
        self, kind: str, stage: str | None, user: str, at: datetime
    ) -> tuple[SharedRollout, RolloutCommandRow]:
        """A new command for the current rollout (the caller checked there is one)."""
        assert self.state is not None
        ident = max((c.id for c in self.commands), default=0) + 1
        row = RolloutCommandRow(ident, self.app, self.state.revision, kind, stage, user, at)
        return replace(self, commands=(*self.commands, row)), row

    def stepped(
        self,
        state: RolloutState | None,
        consumed: Collection[int],
        driver: str,
        head: str | None = None,
    ) -> SharedRollout:
        """After the driver's step or decision: the new state, the commands it took removed,
        the head it decided on (None: unchanged)."""
        left = tuple(c for c in self.commands if c.id not in consumed)
        return replace(
            self,
            state=state if state is not None else self.state,
            commands=left,
            driver=driver,
            head=head or self.head,
        )

    def pinned(
        self, clusters: Iterable[str], revision: str, user: str, at: datetime
    ) -> SharedRollout:
        """Pin ``clusters`` (``*``: every cluster) to ``revision``; a pin replaces one on the
        same cluster."""
        wanted = list(clusters) or [ALL_CLUSTERS]
        kept = tuple(p for p in self.pins if p.cluster not in wanted)
        added = tuple(Pin(self.app, c, revision, user, at) for c in wanted)
        return replace(self, pins=kept + added)

    def unpinned(self, clusters: Collection[str] | None) -> tuple[SharedRollout, int]:
        """Release the pins on ``clusters`` (None: all); also returns how many were released."""
        kept = tuple(p for p in self.pins if clusters is not None and p.cluster not in clusters)
        return replace(self, pins=kept), len(self.pins) - len(kept)


def encode(shared: SharedRollout) -> dict[str, str]:
    data = {"format": FORMAT, "app": shared.app}
    if shared.state is not None:
        data["state"] = _dump(state_to_data(shared.state))
    if shared.driver is not None:
        data["driver"] = shared.driver
    if shared.head is not None:
        data["head"] = shared.head
    data["commands"] = _dump(
        [
            {
                "id": c.id,
                "revision": c.revision,
                "kind": c.kind,
                "stage": c.stage,
                "user": c.user,
                "at": c.at.isoformat(),
            }
            for c in shared.commands
        ]
    )
    data["pins"] = _dump(
        [
            {"cluster": p.cluster, "revision": p.revision, "user": p.user, "at": p.at.isoformat()}
            for p in shared.pins
        ]
    )
    return data


def decode(data: Mapping[str, str]) -> SharedRollout:
    """The inverse of :func:`encode`. Raises ValueError on a document it cannot read."""
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown format {data.get('format')!r} (expected {FORMAT!r})")
    app = data.get("app")
    if not app:
        raise ValueError("no app")
    try:
        state = state_from_data(json.loads(data["state"])) if data.get("state") else None
        commands = tuple(
            RolloutCommandRow(
                int(c["id"]),
                app,
                c["revision"],
                c["kind"],
                c.get("stage"),
                c["user"],
                _time(c["at"]),
            )
            for c in json.loads(data.get("commands") or "[]")
        )
        pins = tuple(
            Pin(app, p["cluster"], p["revision"], p["user"], _time(p["at"]))
            for p in json.loads(data.get("pins") or "[]")
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"app {app}: {type(err).__name__}: {err}") from None
    return SharedRollout(
        app, state, commands, pins, data.get("driver") or None, data.get("head") or None
    )


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
