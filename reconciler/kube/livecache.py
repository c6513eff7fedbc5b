"""A cluster's watched scopes: each reader's views served from the watch of their scope (started
on first read, all new ones before any is waited for), a namespace's own watch where RBAC
forbids the wide one, and the writes of ours the watches are told of."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Collection

from reconciler.kube.scopes import LiveEvent, Scope, View
from reconciler.kube.transport import Transport
from reconciler.kube.watches import RETRY_UNWATCHABLE, ScopeWatch
from reconciler.objects import Manifest


class LiveCache:
    """A cluster's watched scopes."""

    def __init__(
        self,
        cluster: str,
        transport: Transport,
        host: str,
        headers: Callable[[], dict[str, str]],
        timeout: float,
        on_event: Callable[[LiveEvent], None] | None = None,
        retry_unwatchable: float = RETRY_UNWATCHABLE,
    ) -> None:
        """``retry_unwatchable``: seconds before a scope that cannot be watched is tried again."""
        self.cluster = cluster
        self.transport = transport
        self.host = host
        self.headers = headers
        self.timeout = timeout
        self._on_event = on_event
        self.retry_unwatchable = retry_unwatchable
        self.lock = threading.Lock()  # guards the scopes and every watch's objects
        self.synced = threading.Condition(self.lock)  # a watch left "syncing" (or closed)
        self._scopes: dict[Scope, ScopeWatch] = {}
        self.closed = False  # no watch is started any more: every view is read by its caller

    def emit(self, event: LiveEvent) -> None:
        if self._on_event is not None:
            with contextlib.suppress(Exception):  # a listener's bug must not stop the watch
                self._on_event(event)

    def items(self, views: list[View]) -> list[list[Manifest] | None]:
        """Each view's objects (watched from now on), or None for one that cannot be had from
        a watch right now: the caller reads it itself. New scopes are all started before any
        is waited for, so their first LISTs go out together; a view whose scope turns out to be
        forbidden is read from its fallback."""
        deadline = time.monotonic() + self.timeout
        with self.lock:
            if self.closed:
                return [None] * len(views)
            watches = self._serve(views)
            self._wait(watches, deadline)
            pairs = zip(views, watches, strict=True)
            if any(view.fallback is not None and w.forbidden for view, w in pairs):
                watches = self._serve(views)
                self._wait(watches, deadline)
            pairs = zip(views, watches, strict=True)
            found = [w.compact_items(view.namespace) for view, w in pairs]
        return [None if items is None else [json.loads(o) for o in items] for items in found]

    def _serve(self, views: list[View]) -> list[ScopeWatch]:
        """The watch that serves each view, started if new (the lock is held)."""
        watches = []
        for view in views:
            scope = view.scope
            if view.fallback is not None:
                wide = self._scopes.get(scope)
                if wide is not None and wide.forbidden:
                    scope = view.fallback
                elif wide is not None and wide.state == "live":
                    # Allowed again: the namespace's own watch is no longer needed.
                    narrow = self._scopes.pop(view.fallback, None)
                    if narrow is not None:
                        narrow.close(locked=True)
            watch = self._scopes.get(scope)
            if watch is None:
                watch = self._scopes[scope] = ScopeWatch(self, scope)
                watch.start()
            watches.append(watch)
        return watches

    def discard(self, watch: ScopeWatch) -> None:
        """Stop serving ``watch``'s scope (the lock is held): a later read starts it again."""
        if self._scopes.get(watch.scope) is watch:
            del self._scopes[watch.scope]

    def _wait(self, watches: list[ScopeWatch], deadline: float) -> None:
        left = max(0.0, deadline - time.monotonic())
        self.synced.wait_for(lambda: all(w.state != "syncing" for w in watches), left)

    def watching(self) -> dict[str, str]:
        """Each scope's state (``live``, ``broken``, ...), for reports and tests."""
        with self.lock:
            return {w.label: w.state for w in self._scopes.values()}

    def observe(self, paths: Collection[str], obj: Manifest) -> None:
        """A write of ours answered with ``obj`` (in the collection at one of ``paths``: its
        namespace's and its kind's across namespaces)."""
        for watch in self._watches(paths):
            watch.observe(obj)

    def forget(self, paths: Collection[str], namespace: str, name: str) -> None:
        for watch in self._watches(paths):
            watch.forget((namespace, name))

    def _watches(self, paths: Collection[str]) -> list[ScopeWatch]:
        with self.lock:
            return [w for s, w in self._scopes.items() if s.path in paths]

    def reopen(self) -> None:
        """Watch again what is read from now on (after :meth:`close`)."""
        with self.lock:
            self.closed = False

    def close(self) -> None:
        """Close every watch; reads from now on are left to the callers (None for each)."""
        with self.lock:
            self.closed = True
            watches, self._scopes = list(self._scopes.values()), {}
        for watch in watches:
            watch.close()
