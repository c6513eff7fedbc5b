"""HTTP/2 to API servers: one multiplexed TLS connection per API server and TLS identity.

Every request and every watch of every cluster context goes through one event loop thread
(``kube-io``) for the whole process. Contexts that reach the same API server with the same TLS
identity (server, CA, client certificate, a digest of the token) share one :class:`Transport`.
A transport multiplexes all requests on one HTTP/2 connection (kube-apiserver speaks h2 through
ALPN) and all watch streams on a second one (a third once that carries
:data:`WATCHES_PER_CONNECTION`; a client connection allows 100 concurrent streams).

Requests and watches do not share a connection. With the general-purpose HTTP library the
streams of a connection take turns reading its socket, so an idle watch holding that turn kept
others' answers and events until its own next event (up to a minute, the bookmark interval):
requests (answered promptly) use it, watches use :class:`~reconciler.kube.h2watch.H2Connection`,
which has one reader per connection handing every frame to its stream at once.

The socket count is therefore a small constant per API server, whatever the number of contexts,
requests and watches: ``1 + ceil(watches / WATCHES_PER_CONNECTION)``. Nothing here logs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import ssl
import threading
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from reconciler.kube.h2watch import H2Connection, NoHTTP2, WatchResponse

T = TypeVar("T")

WATCHES_PER_CONNECTION = 90  # of the 100 streams a connection may carry
_LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=16, keepalive_expiry=60.0)


@dataclass(frozen=True)
class Endpoint:
    """Where a context connects and as whom (what a connection is keyed by). Files are compared
    by their content: the same CA or certificate in another temporary file is the same."""

    origin: str  # scheme://host:port
    ca_file: str | None = field(compare=False)
    cert_file: str | None = field(compare=False)
    key_file: str | None = field(compare=False)
    verify: bool
    server_name: str | None  # TLS server name when it is not the URL's host
    credentials: str  # a digest of the request credentials (never the credentials)
    files: str = ""  # a digest of the CA, certificate and key files' content

    @classmethod
    def of(
        cls,
        origin: str,
        *,
        ca_file: str | None,
        cert_file: str | None,
        key_file: str | None,
        verify: bool,
        server_name: str | None,
        credentials: str,
    ) -> Endpoint:
        """An endpoint; reads the files (OSError when one cannot be read)."""
        digest = hashlib.sha256()
        for path in (ca_file, cert_file, key_file):
            digest.update(Path(path).read_bytes() if path else b"-")
            digest.update(b"\0")
        return cls(
            origin,
            ca_file,
            cert_file,
            key_file,
            verify,
            server_name,
            credentials,
            digest.hexdigest(),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """A fresh TLS context (the HTTP library sets ALPN on the one it is given)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


class IOLoop:
    """The process's event loop for Kubernetes I/O, on a daemon thread started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="kube-io", daemon=True).start()
                self._loop = loop
            return self._loop

    def spawn(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait for it; TimeoutError after ``timeout`` seconds."""
        future = self.spawn(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:g}s") from None


IO = IOLoop()


class Transport:
    """HTTP/2 to one :class:`Endpoint`: requests share one client connection, watches spread
    over connections of their own (:class:`H2Connection`)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._tls = endpoint.ssl_context() if endpoint.origin.startswith("https:") else None
        self._client: httpx.AsyncClient | None = None
        self._pool: httpx.AsyncHTTPTransport | None = None  # the client's connections
        self._defaults: dict[str, str] = {}  # the headers the client adds to every request
        self._watch_connections: list[H2Connection] = []
        self.users = 0  # cluster clients holding this transport (see Transports)
        # Until the connection is up, requests go one at a time: concurrent first requests
        # would each open a connection (HTTP/2 is known only after the handshake).
        self._opened = False
        self._opening = asyncio.Lock()

    def _requests(self) -> httpx.AsyncHTTPTransport:
        if self._pool is None:
            self._pool = httpx.AsyncHTTPTransport(
                http2=True,
                verify=self._tls if self._tls is not None else True,
                trust_env=False,  # API servers are reached directly, never through a proxy
                limits=_LIMITS,
            )
            self._client = httpx.AsyncClient(
                transport=self._pool, trust_env=False, follow_redirects=False
            )
            self._defaults = {k.lower(): v for k, v in self._client.headers.items()}
        return self._pool

    @contextlib.asynccontextmanager
    async def _first(self) -> AsyncIterator[None]:
        """Hold back requests until the first one has opened the connection."""
        if self._opened:
            yield
            return
        async with self._opening:
            yield
            self._opened = True

    async def send(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None,
        headers: dict[str, str],
        timeout: httpx.Timeout,
    ) -> tuple[int, bytes, str]:
        """One request: status, body and the HTTP version it went over.

        Sent on the requests client's connections directly, with the headers the client would
        add: its request handling (redirects, authentication flows, cookies, hooks), unused
        here, costs about a fifth of the CPU time of a request."""
        name = self.endpoint.server_name
        pool = self._requests()
        extensions: dict[str, Any] = {"timeout": timeout.as_dict()}
        if name:
            extensions["sni_hostname"] = name
        request = httpx.Request(
            method,
            url,
            content=content,
            headers={**self._defaults, **{k.lower(): v for k, v in headers.items()}},
            extensions=extensions,
        )
        async with self._first():
            response = await pool.handle_async_request(request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        return response.status_code, body, response.http_version

    @contextlib.asynccontextmanager
    async def stream(
        self, url: str, *, headers: dict[str, str], read_timeout: float, connect_timeout: float
    ) -> AsyncIterator[WatchResponse]:
        """A long-lived GET (a watch), on a watch connection that has room for one more.
        NoHTTP2 when the server does not speak HTTP/2 (each watch would hold a socket)."""
        if not self.endpoint.origin.startswith("https:"):
            raise NoHTTP2("plain HTTP")
        self._watch_connections = [c for c in self._watch_connections if c.usable]
        connection = next(
            (c for c in self._watch_connections if c.open_streams < WATCHES_PER_CONNECTION),
            None,
        )
        if connection is None:
            connection = H2Connection(
                self.endpoint.origin, self.endpoint.ssl_context(), self.endpoint.server_name
            )
            self._watch_connections.append(connection)
        async with connection.get(
            url, headers, read_timeout=read_timeout, connect_timeout=connect_timeout
        ) as response:
            yield response

    async def aclose(self) -> None:
        client, self._client, self._pool = self._client, None, None
        connections, self._watch_connections = self._watch_connections, []
        self._opened = False
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        for connection in connections:
            await connection.aclose()


class Transports:
    """The process's transports, one per endpoint, shared by every cluster client reaching it
    and closed when the last one lets go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_endpoint: dict[Endpoint, Transport] = {}

    def acquire(self, endpoint: Endpoint) -> Transport:
        with self._lock:
            transport = self._by_endpoint.get(endpoint)
            if transport is None:
                transport = self._by_endpoint[endpoint] = Transport(endpoint)
            transport.users += 1
            return transport

    def release(self, transport: Transport) -> None:
        with self._lock:
            transport.users -= 1
            if transport.users > 0 or self._by_endpoint.get(transport.endpoint) is not transport:
                return
            del self._by_endpoint[transport.endpoint]
        IO.spawn(transport.aclose())

    def count(self) -> int:
        with self._lock:
            return len(self._by_endpoint)


TRANSPORTS = Transports()
