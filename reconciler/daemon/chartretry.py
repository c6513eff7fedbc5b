"""Which of the head revision's charts to resolve again, and when (pure).

A revision's charts are resolved once (``follow``), and a chart that resolved is never asked
again for that commit. One whose source could not be asked is different: the app failed ("no
cached version matches"), or rendered the best cached version the range allows (the
resolver's note). Those are *unsettled*: while the head is that revision, the daemon resolves
them again after the poll interval, doubling, at most ``Settings.chart_retry_max``, until the
source answers; a changed result is published as a new generation, and only a settled chart is
recorded as the revision's pin (a cached fallback never becomes one).

What counts as "the source could not be asked" is what the resolver falls back on: any lookup
failure but the source answering that it has no such version. Without a cache to fall back on,
the lock lists the app as ``unavailable``. A pinned chart that fails (the cache lost it and the
source is down) is unsettled too: retrying can only ever give the pinned chart.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

from reconciler.charts.model import ChartLock
from reconciler.daemon.schedule import Backoff

# Added to such an error, so the app's status says it is not for good.
RETRIED = "; resolved again on later polls until the source answers"

# What an app's chart resolved to: (version, digest, a cached fallback?), None: not resolved.
Outcome = tuple[str, str, bool] | None


def unsettled(lock: ChartLock, pinned: Collection[str] = ()) -> dict[str, str]:
    """app -> why its chart is to be resolved again (its note or its error)."""
    out = {app: chart.note for app, chart in lock.charts.items() if chart.note is not None}
    for app, error in lock.errors.items():
        if app in pinned or app in lock.unavailable:
            out[app] = error
    return out


def told(lock: ChartLock, apps: Collection[str]) -> ChartLock:
    """``lock`` with the errors of ``apps`` saying that they are resolved again."""
    errors = {a: f"{e}{RETRIED}" if a in apps else e for a, e in lock.errors.items()}
    return replace(lock, errors=errors)


def outcome(lock: ChartLock, app: str) -> Outcome:
    chart = lock.charts.get(app)
    return None if chart is None else (chart.version, chart.digest, chart.note is not None)


def outcomes(lock: ChartLock, apps: Collection[str]) -> dict[str, Outcome]:
    return {app: outcome(lock, app) for app in sorted(apps)}


def changed(before: Mapping[str, Outcome], lock: ChartLock) -> list[str]:
    """The apps of ``before`` whose chart resolves otherwise in ``lock`` (another version,
    resolved at last, or the source answered for the cached version): the revision is
    published again. A chart still failing, whatever the error says now, is no change."""
    return [app for app, was in sorted(before.items()) if outcome(lock, app) != was]


def settled_pins(lock: ChartLock) -> dict[str, tuple[str, str, str]]:
    """app -> (source, version, digest) to record for the revision: settled charts only."""
    return {
        app: (str(c.source), c.version, c.digest)
        for app, c in lock.charts.items()
        if c.note is None
    }


@dataclass(frozen=True)
class ChartRetry:
    """The head's unsettled charts: as they last resolved, why, and when to ask again.
    ``kept``: the head's other chart errors (the source answered it has no such version, a bad
    constraint), kept as they are when the unsettled ones are resolved again: never asked."""

    revision: str
    outcomes: Mapping[str, Outcome]
    why: Mapping[str, str]
    attempts: int  # resolutions so far that left them unsettled
    due: float  # monotonic seconds
    kept: Mapping[str, str] = field(default_factory=dict)


def delay(attempts: int, interval: float, maximum: float) -> float:
    """After ``attempts`` unsettled resolutions: the poll interval, doubling, at most
    ``maximum``."""
    return Backoff(initial=interval, factor=2.0, maximum=maximum).delay(attempts)


def next_retry(
    previous: ChartRetry | None,
    revision: str,
    lock: ChartLock,
    why: Mapping[str, str],
    now: float,
    interval: float,
    maximum: float,
) -> ChartRetry | None:
    """The retry after ``revision`` resolved to ``lock`` (``why``: its unsettled apps); None
    when every chart is settled. Attempts count on while the same revision stays unsettled."""
    if not why:
        return None
    attempts = previous.attempts + 1 if previous and previous.revision == revision else 1
    return ChartRetry(
        revision,
        outcomes(lock, why),
        dict(why),
        attempts,
        now + delay(attempts, interval, maximum),
        {app: error for app, error in lock.errors.items() if app not in why},
    )
