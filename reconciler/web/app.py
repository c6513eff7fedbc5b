"""The daemon's HTTP application: probes, metrics, the read-only fleet page and its JSON API.

Routes (all GET; nothing here changes state):

``/healthz`` ``/readyz``   probes; never touch the store, so they answer while it is busy
``/metrics``               Prometheus text or OpenMetrics, as the scraper's Accept asks
``/``                      the page (``static/``: HTML, CSS, JS shipped in the package)
``/api/status``            ``reconciler status -o json``
``/api/drift``             ``reconciler drift -o json``; ``?app= &cluster= &open=1 &since=ISO``
``/api/page``              the page's matrix for ``?app= &cluster= &label=k=v &group_by=k``
``/api/targets/A/C``       one app on one cluster: status, objects, open drift
``/api/events``            server-sent events: ``change`` whenever the state changes; at most
                           ``max_streams`` open at once (a 503 beyond), so they never take the
                           connections the probes need; ``HEAD`` answers at once
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from importlib.resources import files
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.report import drift_document, drift_json
from reconciler.store.db import Store
from reconciler.web.deadline import RequestDeadline
from reconciler.web.detail import target_detail
from reconciler.web.model import (
    MAX_DRIFT,
    Filters,
    drift_targets,
    open_drift,
    page_model,
)
from reconciler.web.snapshot import Snapshot, SnapshotCache

__all__ = ["create_app"]

REQUEST_DEADLINE = 10.0  # seconds for a whole answer (streams excepted)
STREAM_LIFETIME = 300.0  # an event stream ends after this; browsers reconnect by themselves
STREAM_POLL = 1.0  # how often a stream looks for a change
STREAM_PING = 15.0  # a comment line this often keeps proxies from closing an idle stream
MAX_STREAMS = 200  # event streams open at once; the page polls when refused one
DRIFT_TARGET_READS = 100  # targets whose drift the page reads itself when the snapshot lacks it
STREAM_RETRY_AFTER = 30  # seconds a refused stream is told to wait
_STREAM_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}
_STATIC = ("reconciler.web", "static")
_NOT_FOUND = "not found: try /, /api/status, /api/drift, /healthz, /readyz or /metrics\n"
# The page loads only its own files; no other origin may frame it.
_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def _json(data: Any) -> Response:
    body = json.dumps(data, indent=2) + "\n"
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def create_app(
    cache: SnapshotCache,
    registry: CollectorRegistry,
    *,
    ready: Callable[[], bool],
    healthy: Callable[[], bool] = lambda: True,
    stopping: threading.Event | None = None,
    request_deadline: float = REQUEST_DEADLINE,
    stream_lifetime: float = STREAM_LIFETIME,
    stream_poll: float = STREAM_POLL,
    max_streams: int = MAX_STREAMS,
) -> ASGIApp:
    """The ASGI application. ``stopping`` set ends open event streams (at the next poll);
    ``max_streams`` bounds how many are open at once."""
    stop = stopping or threading.Event()

    async def healthz(request: Request) -> Response:
        ok = healthy()
        return PlainTextResponse("ok\n" if ok else "unhealthy\n", 200 if ok else 503)

    async def readyz(request: Request) -> Response:
        ok = ready()
        return PlainTextResponse(
            "ok\n" if ok else "no valid config loaded yet\n", 200 if ok else 503
        )

    def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers={"content-type": content_type})

    def status(request: Request) -> Response:
        return _json(cache.get().status)

    def drift(request: Request) -> Response:
        query = request.query_params
        since = None
        if query.get("since"):
            try:
                since = datetime.fromisoformat(query["since"].replace("Z", "+00:00"))
            except ValueError:
                return PlainTextResponse(f"since={query['since']!r}: expected an ISO time\n", 400)
            if since.tzinfo is None:
                return PlainTextResponse("since: give a time zone, e.g. 2026-11-22T12:00Z\n", 400)
        rows = cache.store.list_drift(
            app=query.get("app") or None,
            cluster=query.get("cluster") or None,
            since=since,
            open_only=query.get("open", "") not in ("", "0", "false"),
        )
        return Response(drift_json(rows), media_type="application/json")

    def page(request: Request) -> Response:
        snapshot = cache.get()
        filters = Filters.of(request.query_params)
        return _json(
            {
                "version": snapshot.version,
                "daemon_ready": ready(),
                "source": snapshot.status["source"],
                "revision": snapshot.status["revision"],
                "matrix": page_model(
                    snapshot.targets, snapshot.fleet, filters, rollouts=snapshot.rollouts
                ),
                "drift": _page_drift(cache.store, snapshot, filters),
            }
        )

    def target(request: Request) -> Response:
        app, cluster = request.path_params["app"], request.path_params["cluster"]
        snapshot = cache.get()
        row = snapshot.target(app, cluster)
        if row is None:
            return PlainTextResponse(f"app {app} has no status on cluster {cluster}\n", 404)
        store = cache.store
        drift = drift_document(
            store.list_drift(app=app, cluster=cluster, open_only=True, limit=MAX_DRIFT)
        )
        total = store.open_drift_counts(app, cluster).get((app, cluster), 0)
        revisions = next((t for t in store.list_targets(cluster) if t.app == app), None)
        detail = target_detail(row, snapshot.fleet, drift, revisions, drift_total=total)
        rollout = {"app_rollout": snapshot.rollouts.get(app)}
        return _json({"version": snapshot.version} | detail | rollout)

    async def index(request: Request) -> Response:
        return FileResponse(_static_file("index.html"), headers={"cache-control": "no-store"})

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(_NOT_FOUND, 404)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/", index),
            Route("/api/status", status),
            Route("/api/drift", drift),
            Route("/api/page", page),
            Route("/api/targets/{app}/{cluster}", target),
            Route(
                "/api/events",
                _EventStreams(
                    lambda: _changes(cache, stop, stream_lifetime, stream_poll), max_streams
                ),
            ),
            Mount("/static", StaticFiles(packages=[_STATIC]), name="static"),
        ],
        exception_handlers={404: not_found},
    )
    return _SecurityHeaders(RequestDeadline(app, request_deadline, exempt=("/api/events",)))


def _page_drift(store: Store, snapshot: Snapshot, filters: Filters) -> dict[str, Any]:
    """The open drift the page shows for ``filters``: the newest records of the snapshot (the
    newest of the whole fleet), else, when the filters show older ones that it lacks, those of
    the targets shown read from the store (up to :data:`DRIFT_TARGET_READS` targets)."""
    counts = snapshot.open_drift_counts
    drift = open_drift(
        snapshot.open_drift, snapshot.targets, snapshot.fleet, filters, counts=counts
    )
    if len(drift["records"]) >= min(MAX_DRIFT, drift["total"]):
        return drift
    shown = drift_targets(counts, snapshot.targets, snapshot.fleet, filters)
    if len(shown) > DRIFT_TARGET_READS:
        return drift
    rows = [
        row
        for app, cluster in shown
        for row in store.list_drift(app=app, cluster=cluster, open_only=True, limit=MAX_DRIFT)
    ]
    rows.sort(key=lambda r: (r.detected_at, r.id), reverse=True)
    return drift | {"records": drift_document(rows[:MAX_DRIFT])}


def _static_file(name: str) -> str:
    return str(files(_STATIC[0]).joinpath(_STATIC[1], name))


class _EventStreams:
    """The ASGI endpoint of ``/api/events``: a stream of :func:`_changes` per ``GET``, at most
    ``limit`` at once (a 503 with ``retry-after`` beyond, so streams cannot take every connection
    the server allows); ``HEAD`` gets the headers alone, at once."""

    def __init__(self, changes: Callable[[], AsyncIterator[str]], limit: int) -> None:
        self.changes = changes
        self.limit = limit
        self.open = 0  # only the server's event loop changes it: no lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "GET" and self.open < self.limit:
            self.open += 1
            try:
                stream = StreamingResponse(
                    self.changes(), media_type="text/event-stream", headers=_STREAM_HEADERS
                )
                await stream(scope, receive, send)
            finally:
                self.open -= 1
            return
        response: Response
        if method == "HEAD":
            response = Response(media_type="text/event-stream", headers=_STREAM_HEADERS)
        elif method == "GET":
            response = PlainTextResponse(
                f"too many event streams ({self.limit}) open: retry later\n",
                503,
                headers={"retry-after": str(STREAM_RETRY_AFTER), "cache-control": "no-store"},
            )
        else:
            response = PlainTextResponse(
                "method not allowed\n", 405, headers={"allow": "GET, HEAD"}
            )
        await response(scope, receive, send)


async def _changes(
    cache: SnapshotCache, stop: threading.Event, lifetime: float, poll: float
) -> AsyncIterator[str]:
    """``change`` events carrying the state's version: one at once, then one per change."""
    loop = asyncio.get_running_loop()
    started = last_sent = loop.time()
    yield "retry: 2000\n\n"
    version = None
    while not stop.is_set() and loop.time() - started < lifetime:
        snapshot = await run_in_threadpool(cache.get)
        now = loop.time()
        if snapshot.version != version:
            version = snapshot.version
            last_sent = now
            yield f"event: change\ndata: {version}\n\n"
        elif now - last_sent >= STREAM_PING:
            last_sent = now
            yield ": ping\n\n"
        await asyncio.sleep(poll)
