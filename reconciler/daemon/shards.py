"""Which replica owns which key (pure): rendezvous (highest random weight) hashing.

Every replica computes the same answer from the same set of live replicas, with no
coordination: each (key, replica) pair gets a score from a stable hash and the key goes to the
replica with the highest score. When a replica leaves, only its keys move (each to the runner-up
for that key); when one joins, it takes only the keys it now scores highest on — about
1/(n+1) of them — and nothing moves between the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def score(key: str, replica: str) -> int:
    """The weight of ``replica`` for ``key``: stable across processes, hosts and Python versions
    (blake2b, never Python's salted ``hash``)."""
    digest = hashlib.blake2b(
        key.encode() + b"\x00" + replica.encode(), digest_size=8, person=b"reconciler-hrw"
    ).digest()
    return int.from_bytes(digest, "big")


def owner_of(key: str, replicas: Sequence[str]) -> str | None:
    """The replica that owns ``key`` among ``replicas``; None when there are none.

    Ties (practically impossible with 64-bit scores) go to the greatest replica name, so the
    answer never depends on the order of ``replicas``.
    """
    if not replicas:
        return None
    return max(replicas, key=lambda replica: (score(key, replica), replica))


def owned(keys: Iterable[str], replicas: Sequence[str], me: str) -> list[str]:
    """The keys ``me`` owns among ``replicas``, in the order given (none when ``me`` is not a
    live replica)."""
    return [key for key in keys if owner_of(key, replicas) == me]


def assignment(keys: Iterable[str], replicas: Sequence[str]) -> dict[str, list[str]]:
    """Every live replica with the keys it owns (possibly none), for metrics and reports."""
    shares: dict[str, list[str]] = {replica: [] for replica in sorted(set(replicas))}
    for key in keys:
        owner = owner_of(key, replicas)
        if owner is not None:
            shares[owner].append(key)
    return shares
