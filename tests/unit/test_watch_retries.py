"""Pure parts of how watches retry and what they keep: the pause between tries, deletions a
late answer of ours must not undo, and a closed cache that starts no watch."""

from __future__ import annotations

from typing import Any, cast

from reconciler.kube.livecache import LiveCache
from reconciler.kube.scopes import _MAX_PAUSE, Scope, View, failures_after, retry_pause
from reconciler.kube.transport import Transport
from reconciler.kube.watches import ScopeWatch

SCOPE = Scope("/api/v1/namespaces/demo/configmaps", "", "v1", "ConfigMap")


def _tries(seconds: float, *, steady: bool, ended: bool, rand: float = 0.5) -> int:
    """How many LIST + WATCH tries fit in ``seconds`` when every one ends the same way."""
    failures, now, tries = 0, 0.0, 0
    while now < seconds:
        tries += 1
        failures = failures_after(failures, steady=steady, ended=ended)
        now += max(retry_pause(failures, rand), 0.05)  # a try takes a moment at least
    return tries


def test_a_watch_refused_right_after_every_list_backs_off() -> None:
    # A 429 (API Priority and Fairness) or a proxy dropping every stream: broken at once.
    assert _tries(10.0, steady=False, ended=False) <= 6
    # ... or ended at once without an event: the same.
    assert _tries(10.0, steady=False, ended=True) <= 6
    pauses = []
    failures = 0
    for _ in range(12):
        failures = failures_after(failures, steady=False, ended=False)
        pauses.append(retry_pause(failures, 0.999))
    assert pauses == sorted(pauses)
    assert max(pauses) <= _MAX_PAUSE
    assert pauses[-1] >= _MAX_PAUSE / 2  # the cap is reached
    assert retry_pause(3, 0.0) < retry_pause(3, 0.999)  # jittered


def test_a_watch_that_stayed_up_resumes_at_once_or_soon() -> None:
    # The server ended a watch that stayed up (its timeout), or 410 Gone after it: at once.
    assert failures_after(7, steady=True, ended=True) == 0
    assert retry_pause(0, 0.5) == 0.0
    # Broken after it stayed up (a server restart): a short pause, not the grown one.
    assert failures_after(7, steady=True, ended=False) == 1
    assert 0 < retry_pause(1, 0.999) <= 1.0


def _cache() -> LiveCache:
    # No transport: only what the watch keeps is exercised (nothing is started or sent).
    return LiveCache("east", cast(Transport, None), "https://east", dict, 1.0)


def _cm(name: str, version: int, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "demo", "resourceVersion": str(version)},
        "data": data,
    }


def test_a_late_answer_of_ours_does_not_bring_back_an_object_the_watch_saw_deleted() -> None:
    watch = ScopeWatch(_cache(), SCOPE)
    watch.state = "live"
    watch._event({"type": "ADDED", "object": _cm("x", 10, v="1")})
    watch._event({"type": "DELETED", "object": _cm("x", 12, v="1")})
    watch.observe(_cm("x", 11, v="2"))  # our apply's answer, read after the deletion
    assert watch.compact_items() == []
    # A newer write of ours (the object created again) is kept.
    watch.observe(_cm("x", 13, v="3"))
    assert len(watch.compact_items() or []) == 1


def test_a_closed_cache_starts_no_watch() -> None:
    cache = _cache()
    cache.close()
    assert cache.items([View(SCOPE)]) == [None]
    assert cache.watching() == {}
