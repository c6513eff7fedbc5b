"""What a replica may do with a Lease (pure: no I/O, time passed in).

Expiry is judged the way client-go's leader election does, on the observer's own monotonic
clock, never by comparing another machine's ``renewTime`` with ours: a Lease is expired when
nobody wrote it (same holder, renew time and resourceVersion) for its whole duration *as this
replica watched it*. Clock skew between machines cannot make a live holder look dead; a Lease
seen for the first time counts as freshly renewed.

A replica's own Lease is its session. The per-cluster Leases it holds are valid exactly as long
as that session: its holder keeps them without rewriting them (one renewal per replica and
period, not one per cluster), and another replica takes one over only when it is released (no
holder) or its holder's session expired. The holder stops working when its session may have
expired: ``renew request sent + duration − margin`` (the others start counting no earlier than
when the server stored that renewal).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum


@dataclass
class Observer:
    """When each replica's session was last seen to change (monotonic seconds)."""

    # name -> (fingerprint, when it last changed, when it was last looked at)
    seen: dict[str, tuple[Hashable, float, float]] = field(default_factory=dict)

    def observe(self, name: str, fingerprint: Hashable, now: float) -> None:
        """Record what ``name``'s Lease looks like now (None: it does not exist)."""
        last = self.seen.get(name)
        changed = now if last is None or last[0] != fingerprint else last[1]
        self.seen[name] = (fingerprint, changed, now)

    def unchanged_for(self, name: str, now: float) -> float:
        """How long ``name`` has looked the same (0 when never seen)."""
        last = self.seen.get(name)
        return 0.0 if last is None else now - last[1]

    def forget(self, older_than: float, now: float) -> None:
        """Drop what was not looked at for ``older_than`` seconds (replicas long gone)."""
        for name in [n for n, (_, _, at) in self.seen.items() if now - at > older_than]:
            del self.seen[name]


@dataclass(frozen=True)
class Session:
    """One replica's Lease as last listed: its holder (None when released) and duration."""

    name: str
    holder: str | None
    duration: float
    fingerprint: Hashable


def live_replicas(
    sessions: dict[str, Session],
    observer: Observer,
    now: float,
    *,
    me: str,
    my_session_valid: bool,
) -> list[str]:
    """The replicas whose sessions have not expired, as this replica observes them (itself only
    while its own session is valid). Sorted."""
    live = {
        name
        for name in sessions
        if name != me and alive(name, sessions, observer, now, sessions[name].duration)
    }
    if my_session_valid:
        live.add(me)
    return sorted(live)


class Action(Enum):
    CREATE = "create"  # no Lease for the cluster yet
    ADOPT = "adopt"  # it names us already (taken before; nobody can have written it since)
    TAKE = "take"  # released, or its holder's session expired: update it, conditionally
    WAIT = "wait"  # another live replica holds it


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def alive(
    name: str, sessions: dict[str, Session], observer: Observer, now: float, duration: float
) -> bool:
    """Whether replica ``name``'s session may still be live: its Lease changed within its
    duration, or it has none and has had none for less than ``duration`` (it may be a replica
    that started after our last list)."""
    session = sessions.get(name)
    if session is None:
        observer.observe(name, None, now)
        return observer.unchanged_for(name, now) < duration
    if session.holder is None:
        return False  # released on a clean stop
    observer.observe(name, session.fingerprint, now)
    return observer.unchanged_for(name, now) < session.duration


def decide(exists: bool, holder: str | None, me: str, holder_alive: bool) -> Decision:
    """What to do about a cluster Lease this replica wants, as read (``exists``, ``holder``)."""
    if not exists:
        return Decision(Action.CREATE, "no lease yet")
    if holder is None:
        return Decision(Action.TAKE, "released")
    if holder == me:
        return Decision(Action.ADOPT, "held by this replica already")
    if holder_alive:
        return Decision(Action.WAIT, f"held by live replica {holder}")
    return Decision(Action.TAKE, f"holder {holder}'s lease expired")


def valid_until(sent_at: float, duration: float, margin: float) -> float:
    """Until when a session renewed by a request sent at ``sent_at`` may be relied on."""
    return sent_at + duration - margin


def next_round_in(renew: float, elapsed: float, renewed: bool) -> float:
    """How long the lease thread waits after a round that took ``elapsed`` seconds: the rest
    of a renew period, or after a failed renewal the rest of a quarter of one. A session is
    valid for ``duration - margin`` >= ``2/3 duration`` after a renewal and renewals are at
    most ``duration / 2`` apart, so one failed (or lost) renewal is retried while the
    session still holds: a single failure does not drop every cluster."""
    return max(0.0, (renew if renewed else renew / 4) - elapsed)
