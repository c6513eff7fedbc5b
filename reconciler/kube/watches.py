"""Live state from watches: a cluster's scopes kept current in memory.

A scope is one collection (a kind, in one namespace or across all) under one label selector.
A reader asks for :class:`View` values: a scope's objects, or one namespace's objects of a
scope across namespaces (one watch then serves every namespace of a kind: fewer watches and
less memory than one per namespace); where RBAC forbids reading a kind across namespaces
(roles bound per namespace), the namespace's own scope serves it instead.
The first read of a scope LISTs it and then WATCHes from the list's resourceVersion on the
shared HTTP/2 transport (no socket of its own, no thread: a task on the ``kube-io`` loop).
A watch that ends is resumed from the last resourceVersion seen (bookmarks keep it fresh), so
is one that was up when the server ended its connection (a GOAWAY, a load balancer or proxy
closing it), on a new connection; one that breaks (410 Gone, no answer to a ping, an API server
restart: the resumed watch is not served either) is listed again, after a pause
that grows while tries in a row do not stay up (a watch refused right after every LIST, by
API Priority and Fairness or a proxy, costs a LIST every half minute, not every half second),
and what changed meanwhile is reported as changed. A scope the server will not let us list or
watch (401, 403, 405), or a server that does not speak HTTP/2 (each watch would then cost a
socket), is *unwatchable*: its readers fall back to their own requests (polling), and it is
tried again after the cache's ``retry_unwatchable`` seconds (:data:`RETRY_UNWATCHABLE` by
default; where only the WATCH was refused, by opening the WATCH alone: no LIST, and nothing
reported until it is allowed). A scope whose
kind is no longer served (404: its CRD removed) is dropped; a later read starts it again.
A closed cache starts no watch: its readers read for themselves.

Changes are reported through a callback as :class:`LiveEvent` values (on the loop's thread:
the callback must only hand them over). Only changes of content count: a status update (a
Deployment's replica counts) or a new resourceVersion alone is not a change
(``kube/content.py``), nor is one of our own writes. Nothing here logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from reconciler.kube.content import content_version, written_by_us
from reconciler.kube.h2conn import NoHTTP2, ServerEnded
from reconciler.kube.scopes import (
    STEADY_SECONDS,
    LiveEvent,
    Scope,
    failures_after,
    matches,
    retry_pause,
)
from reconciler.kube.transport import IO
from reconciler.objects import Manifest

if TYPE_CHECKING:
    from reconciler.kube.livecache import LiveCache

# The server ends a watch after this long (plus up to a half more, so watches do not all end
# together) and it is resumed at once. As client-go's reflectors: 5 to 10 minutes; a dead
# connection is noticed by its keepalive pings long before (kube/h2conn.py).
WATCH_SECONDS = 600
RETRY_UNWATCHABLE = 300.0
_PAGE = 500
_TOMBSTONES = 1000  # deletions remembered per scope (until it is listed again)


class _Gone(Exception):
    """410: the resourceVersion is too old; list again."""


class _Refused(Exception):
    """The server will not let us list or watch this scope."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.watching = False  # the WATCH was refused (its LIST was not)


def _version(obj: Mapping[str, Any]) -> int | None:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


class ScopeWatch:
    """One scope kept current by LIST + WATCH on the loop; read from any thread.

    Thousands of these live in a process watching a large fleet: it holds no lock, event or
    thread future of its own (the cluster's :class:`LiveCache` lock and condition serve all)."""

    __slots__ = (
        "_deleted",
        "_heard",
        "_objects",
        "_task",
        "_versions",
        "cache",
        "forbidden",
        "reason",
        "scope",
        "state",
    )

    def __init__(self, cache: LiveCache, scope: Scope) -> None:
        self.cache = cache
        self.scope = scope
        self.state = "syncing"  # live | broken | unwatchable | closed
        self.reason = ""
        self.forbidden = False  # refused with 403: RBAC does not grant it
        # namespace -> name -> the object as compact JSON (a fifth of its size as Python
        # objects; a reader gets copies of its own)
        self._objects: dict[str, dict[str, str]] = {}
        self._versions: dict[tuple[str, str], str] = {}  # content_version of each
        # Objects the watch told deleted since the last LIST, with the deletion's
        # resourceVersion: a late answer to a write of ours must not bring them back.
        self._deleted: dict[tuple[str, str], int] = {}
        self._heard = False  # the open watch told something (a bookmark too)
        self._task: asyncio.Task[None] | None = None

    @property
    def label(self) -> str:
        where = self.scope.path.split("/namespaces/", 1)
        namespace = where[1].split("/", 1)[0] if len(where) == 2 else ""
        return f"{self.scope.kind} in {namespace}" if namespace else f"{self.scope.kind}"

    def start(self) -> None:
        IO.soon(self._begin)

    def _begin(self) -> None:
        if self.state != "closed":
            self._task = asyncio.get_running_loop().create_task(self._run())

    def compact_items(self, namespace: str | None = None) -> list[str] | None:
        """The scope's objects as JSON (only ``namespace``'s when given), or None while they
        are not known to be current. Called with the cache's lock held."""
        if self.state != "live":
            return None
        if namespace is not None:
            return list(self._objects.get(namespace, {}).values())
        return [obj for objects in self._objects.values() for obj in objects.values()]

    def _put(self, key: tuple[str, str], obj: Manifest) -> str:
        obj = _complete(obj, self.scope)
        self._objects.setdefault(key[0], {})[key[1]] = _compact(obj)
        version = self._versions[key] = content_version(obj)
        return version

    def _known(self, key: tuple[str, str]) -> Manifest | None:
        known = self._objects.get(key[0], {}).get(key[1])
        return None if known is None else json.loads(known)

    def _drop(self, key: tuple[str, str]) -> None:
        objects = self._objects.get(key[0])
        if objects is not None:
            objects.pop(key[1], None)
            if not objects:
                del self._objects[key[0]]
        self._versions.pop(key, None)

    # -- our own writes -----------------------------------------------------------------------

    def observe(self, obj: Manifest) -> None:
        """An object as a write of ours answered: newer than what the watch has told yet."""
        key = _key(obj)
        with self.cache.lock:
            if not matches(self.scope.selector, (obj.get("metadata") or {}).get("labels") or {}):
                self._drop(key)
                return
            if self.state == "closed":
                return
            known = self._known(key)
            new = _version(obj)
            # Older than what the watch told, or than its deletion (a tombstone): stale.
            old = _version(known) if known is not None else self._deleted.get(key)
            if old is not None and new is not None and new < old:
                return
            self._put(key, obj)

    def forget(self, key: tuple[str, str]) -> None:
        with self.cache.lock:
            self._drop(key)

    # -- the loop side ------------------------------------------------------------------------

    async def _run(self) -> None:
        failures, version = 0, ""
        probe = False  # the WATCH was refused: try it alone before another LIST
        while self.state != "closed":
            ended, opened = False, None
            try:
                if probe:
                    await self._probe(version or "0")
                    probe = False
                version = await self._list()
                self.forbidden = False
                while self.state != "closed":
                    self._heard, opened = False, time.monotonic()
                    try:
                        version = await self._watch(version)
                    except ServerEnded:
                        if not self._steady(opened):
                            raise
                        # The server ended the connection under a watch that was up (a
                        # GOAWAY, a proxy or load balancer closing it): resume from the last
                        # version on a new connection, as an informer does; listed again
                        # only if that fails (410: the version is too old; no server).
                        continue
                    if not self._steady(opened):
                        ended = True  # but at once: a try that did not stay up
                        break
                    failures = 0
            except _Gone:
                ended = True
            except _Refused as err:
                if err.status == 404:  # the kind is no longer served (its CRD removed)
                    self._vanish(str(err))
                    return
                self.forbidden = err.status == 403
                self._set_state("unwatchable", str(err))
                probe = err.watching
                await asyncio.sleep(self.cache.retry_unwatchable)
                continue
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._set_state("broken", _describe(err))
            steady = opened is not None and self._steady(opened)
            failures = failures_after(failures, steady=steady, ended=ended)
            pause = retry_pause(failures, random.random())
            if pause:
                await asyncio.sleep(pause)

    def _steady(self, opened: float) -> bool:
        """Whether the watch opened at ``opened`` stayed up: heard something or lasted."""
        return self._heard or time.monotonic() - opened >= STEADY_SECONDS

    async def _probe(self, version: str) -> None:
        """Open the WATCH a server refused and close it again: _Refused while it still is
        (the scope stays unwatchable: no LIST, no state flip, nothing reported)."""
        url = self.cache.host + self.scope.path + "?" + urlencode(self._watch_query(version, 1))
        try:
            async with self.cache.transport.stream(
                url,
                headers=self.cache.headers(),
                read_timeout=self.cache.timeout,
                connect_timeout=5.0,
            ) as response:
                if response.status_code not in (200, 410):
                    _check_watch(response.status_code, await response.aread())
        except NoHTTP2 as err:
            raise _no_http2(err) from err

    def _vanish(self, reason: str) -> None:
        """The kind is gone: stop watching it; a later read starts again (and finds out)."""
        with self.cache.lock:
            if self.state == "closed":
                return
            self.state, self.reason = "closed", reason
            self.cache.discard(self)
            self.cache.synced.notify_all()
        self.cache.emit(LiveEvent(self.cache.cluster, "missing", self.label, reason=reason))

    def _set_state(self, state: str, reason: str = "") -> None:
        with self.cache.lock:
            if self.state == "closed":
                return
            before, self.state, self.reason = self.state, state, reason
            self.cache.synced.notify_all()
        if state != before and (state != "live" or before in ("broken", "unwatchable")):
            what = "recovered" if state == "live" else state
            if what == "unwatchable" and self.forbidden and self.scope.narrows:
                what = "narrowed"  # its namespaces are watched each alone
            self.cache.emit(LiveEvent(self.cache.cluster, what, self.label, reason=reason))

    async def _get(self, query: dict[str, str]) -> Any:
        url = self.cache.host + self.scope.path + "?" + urlencode(query)
        status, data, version = await self.cache.transport.send(
            "GET",
            url,
            content=None,
            headers=self.cache.headers(),
            read_timeout=self.cache.timeout,
            connect_timeout=5.0,
        )
        _check(status, data)
        if version != "HTTP/2":
            raise _Refused(f"the server answers {version}: a watch would hold a socket each")
        return json.loads(data)

    async def _list(self) -> str:
        query = {"limit": str(_PAGE)}
        if self.scope.selector:
            query["labelSelector"] = self.scope.selector
        items: list[Manifest] = []
        while True:
            body = await self._get(query)
            items += body.get("items") or []
            meta = body.get("metadata") or {}
            if not meta.get("continue"):
                break
            query["continue"] = str(meta["continue"])
        objects: dict[str, dict[str, str]] = {}
        versions: dict[tuple[str, str], str] = {}
        for item in items:
            key, obj = _key(item), _complete(item, self.scope)
            objects.setdefault(key[0], {})[key[1]] = _compact(obj)
            versions[key] = content_version(obj)
        with self.cache.lock:
            keys = versions.keys() | self._versions.keys()
            changed = [k for k in keys if versions.get(k) != self._versions.get(k)]
            first = self.state == "syncing"
            self._objects, self._versions, self._deleted = objects, versions, {}
        self._set_state("live")
        if not first:  # what changed while the watch was away
            for key in sorted(changed):
                self._changed(key)
        return str(meta.get("resourceVersion") or "")

    def _watch_query(self, version: str, seconds: int) -> dict[str, str]:
        query = {
            "watch": "1",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(seconds),
        }
        if self.scope.selector:
            query["labelSelector"] = self.scope.selector
        return query

    async def _watch(self, version: str) -> str:
        """Watch from ``version`` until the watch ends: the last version seen."""
        seconds = WATCH_SECONDS + random.randrange(WATCH_SECONDS // 2)
        url = (
            self.cache.host + self.scope.path + "?" + urlencode(self._watch_query(version, seconds))
        )
        try:
            async with self.cache.transport.stream(
                url,
                headers=self.cache.headers(),
                read_timeout=1.5 * WATCH_SECONDS + 90.0,
                connect_timeout=5.0,
            ) as response:
                if response.status_code != 200:
                    _check_watch(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if line.strip():
                        version = self._event(json.loads(line)) or version
        except NoHTTP2 as err:
            raise _no_http2(err) from err
        return version

    def _event(self, event: Mapping[str, Any]) -> str | None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise RuntimeError(f"watch error: {obj.get('message') or obj}")
        self._heard = True
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "") or None
        if kind == "BOOKMARK":
            return version
        key = _key(obj)
        with self.cache.lock:
            before = self._versions.get(key)
            if kind == "DELETED":
                self._drop(key)
                self._bury(key, _version(obj))
                now, ours = None, False
            else:
                known = self._known(key)
                old, new = (_version(known) if known else None), _version(obj)
                if old is not None and new is not None and new < old:
                    return version  # older than what a write of ours already answered
                now = self._put(key, obj)
                ours = written_by_us(obj, known)
        if now != before and not ours:
            self._changed(key)
        return version

    def _bury(self, key: tuple[str, str], version: int | None) -> None:
        if version is None:
            return
        self._deleted.pop(key, None)
        self._deleted[key] = version
        if len(self._deleted) > _TOMBSTONES:
            del self._deleted[next(iter(self._deleted))]

    def _changed(self, key: tuple[str, str]) -> None:
        if not self.scope.notify:
            return
        namespace, name = key
        obj = f"{self.scope.kind}/{namespace + '/' if namespace else ''}{name}"
        self.cache.emit(LiveEvent(self.cache.cluster, "changed", self.label, obj=obj))

    def close(self, *, locked: bool = False) -> None:
        """Stop watching; ``locked``: the cache's lock is held already."""
        with contextlib.nullcontext() if locked else self.cache.lock:
            self.state = "closed"
            self.cache.synced.notify_all()
        IO.soon(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _complete(obj: Manifest, scope: Scope) -> Manifest:
    """List and watch items omit apiVersion and kind; readers expect full objects."""
    if obj.get("apiVersion") and obj.get("kind"):
        return obj
    return {"apiVersion": scope.api_version, "kind": scope.kind, **obj}


def _compact(obj: Manifest) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _check(status: int, data: bytes) -> None:
    if 200 <= status <= 299:
        return
    if status == 410:
        raise _Gone()
    try:
        message = str(json.loads(data or b"{}").get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    if status in (401, 403, 404, 405):
        raise _Refused(f"HTTP {status}{': ' + message if message else ''}", status)
    raise RuntimeError(f"HTTP {status}{': ' + message if message else ''}")


def _check_watch(status: int, data: bytes) -> None:
    try:
        _check(status, data)
    except _Refused as err:
        err.watching = True
        raise


def _no_http2(err: NoHTTP2) -> _Refused:
    refused = _Refused(f"{err}: a watch would hold a socket each")
    refused.watching = True
    return refused


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}"[:200] if text else type(err).__name__
