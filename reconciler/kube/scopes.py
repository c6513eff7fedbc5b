"""What a watch is about and what it tells (pure): scopes, the views readers ask for, events,
the label selectors scopes use, and when a watch that did not stay up is tried again."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A watch counts as having stayed up once it heard an event (a bookmark too) or lasted this
# long: only then is the pause before the next try reset. A watch the server (APF's 429), a
# proxy or RBAC refuses right after every successful LIST must not make a LIST a second.
STEADY_SECONDS = 30.0
_FIRST_PAUSE = 0.5
_MAX_PAUSE = 30.0


@dataclass(frozen=True)
class Scope:
    """A collection under a label selector: what one LIST + WATCH keeps current."""

    path: str  # /api/v1/namespaces/demo/configmaps
    selector: str  # "k" (exists), "!k" (does not exist) or "k=v", comma-separated
    api_version: str
    kind: str
    notify: bool = True  # report its objects' changes (not for our own bookkeeping)
    narrows: bool = False  # spans namespaces, each namespace watched alone where it is forbidden


@dataclass(frozen=True)
class View:
    """What a reader asks for: the objects of ``scope``, only those in ``namespace`` when it is
    set (``scope`` then spans namespaces), read from ``fallback`` (the namespace's own scope)
    where the server forbids watching ``scope``."""

    scope: Scope
    namespace: str | None = None
    fallback: Scope | None = None


@dataclass(frozen=True)
class LiveEvent:
    """What a cluster's watches tell: an object changed, or a scope's watch changed state."""

    cluster: str
    what: str  # "changed" | "unwatchable" | "narrowed" | "missing" | "broken" | "recovered"
    scope: str  # Kind in namespace, for messages
    obj: str = ""  # Kind/namespace/name of a changed object
    reason: str = ""


def matches(selector: str, labels: Mapping[str, Any]) -> bool:
    """The subset of label-selector syntax scopes use: ``key``, ``!key``, ``key=value``, ANDed."""
    for term in filter(None, selector.split(",")):
        if term.startswith("!"):
            if term[1:] in labels:
                return False
            continue
        key, eq, value = term.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def failures_after(failures: int, *, steady: bool, ended: bool) -> int:
    """Tries in a row that did not stay up, after one more: ``steady``, it stayed up (heard
    something or lasted :data:`STEADY_SECONDS`); ``ended``, it ended as a watch ends (the
    server's timeout, or 410 Gone), not broken."""
    if steady:
        return 0 if ended else 1
    return failures + 1


def retry_pause(failures: int, rand: float) -> float:
    """How long to wait before listing (or watching) again after ``failures`` tries in a row
    that did not stay up: at once after none, then growing exponentially up to
    :data:`_MAX_PAUSE`, with jitter (``rand`` in [0, 1)) so scopes do not retry together."""
    if failures <= 0:
        return 0.0
    pause = min(_MAX_PAUSE, _FIRST_PAUSE * 2.0 ** min(failures - 1, 32))
    return pause * (0.5 + rand / 2)
