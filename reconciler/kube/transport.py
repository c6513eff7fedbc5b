"""HTTP/2 to API servers: one multiplexed TLS connection per API server and TLS identity.

Every request and every watch of every cluster context goes through one event loop thread
(``kube-io``) for the whole process. Contexts that reach the same API server with the same TLS
identity (server, CA, client certificate, a digest of the token) share one :class:`Transport`.
A transport multiplexes all requests on one HTTP/2 connection (kube-apiserver speaks h2 through
ALPN) and the watch streams on connections of their own (one per
:data:`WATCHES_PER_CONNECTION`), so waiting watches never take a request's stream slots. Each
connection is a :class:`~reconciler.kube.h2conn.H2Connection`: one reader hands every frame to
its stream at once. A server that turns HTTP/2 down gets requests over HTTP/1.1 (httpx) and no
watches.

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
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from reconciler.kube.h2conn import H2Connection, NoHTTP2, NotProcessed, Response

T = TypeVar("T")

WATCHES_PER_CONNECTION = 90  # of the MAX_STREAMS a connection carries at once
# A server that turned HTTP/2 down (a load balancer during a failover, say) is asked again this
# long after: until then its requests go over HTTP/1.1 (and its kinds are polled, not watched).
RETRY_HTTP2 = 300.0
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

    def soon(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the loop's thread (a task started there needs no thread future:
        thousands of watches each hold one)."""
        self.loop.call_soon_threadsafe(callback)

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
    """HTTP/2 to one :class:`Endpoint`: requests share one connection, watches spread over
    connections of their own; a server without HTTP/2 gets requests over HTTP/1.1 (httpx),
    and is asked for HTTP/2 again after ``retry_http2`` seconds (default :data:`RETRY_HTTP2`)."""

    def __init__(self, endpoint: Endpoint, retry_http2: float = RETRY_HTTP2) -> None:
        self.endpoint = endpoint
        self._retry_http2 = retry_http2
        self._requests: H2Connection | None = None
        self._http1: httpx.AsyncClient | None = None  # once the server turned HTTP/2 down
        self._http1_since: float | None = None  # when it last did (loop time)
        self._watch_connections: list[H2Connection] = []
        self.users = 0  # cluster clients holding this transport (see Transports)

    def _connection(self) -> H2Connection:
        return H2Connection(
            self.endpoint.origin, self.endpoint.ssl_context(), self.endpoint.server_name
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None,
        headers: dict[str, str],
        read_timeout: float,
        connect_timeout: float,
    ) -> tuple[int, bytes, str]:
        """One request: status, body and the HTTP version it went over."""
        now = asyncio.get_running_loop().time()
        if self._http1_since is not None and now - self._http1_since >= self._retry_http2:
            self._http1_since = None  # ask for HTTP/2 again
        if self._http1_since is None and self.endpoint.origin.startswith("https:"):
            for attempt in (1, 2):
                if self._requests is None or not self._requests.usable:
                    self._requests = self._connection()
                try:
                    status, data = await self._requests.request(
                        method,
                        url,
                        headers,
                        content,
                        read_timeout=read_timeout,
                        connect_timeout=connect_timeout,
                    )
                    return status, data, "HTTP/2"
                except NoHTTP2:
                    self._http1_since = now
                    break
                except NotProcessed:
                    if attempt == 2:
                        raise  # (a GOAWAY: once more on a new connection)
        if self._http1 is None:
            self._http1 = self._http1_client()
        name = self.endpoint.server_name
        response = await self._http1.request(
            method,
            url,
            content=content,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            extensions={"sni_hostname": name} if name else {},
        )
        return response.status_code, response.content, response.http_version

    def _http1_client(self) -> httpx.AsyncClient:
        tls = self.endpoint.ssl_context() if self.endpoint.origin.startswith("https:") else None
        return httpx.AsyncClient(
            http2=False,
            verify=tls if tls is not None else True,
            trust_env=False,  # API servers are reached directly, never through a proxy
            limits=_LIMITS,
            follow_redirects=False,
        )

    @contextlib.asynccontextmanager
    async def stream(
        self, url: str, *, headers: dict[str, str], read_timeout: float, connect_timeout: float
    ) -> AsyncIterator[Response]:
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
            connection = self._connection()
            self._watch_connections.append(connection)
        async with connection.stream(
            "GET", url, headers, read_timeout=read_timeout, connect_timeout=connect_timeout
        ) as response:
            yield response

    async def aclose(self) -> None:
        client, self._http1 = self._http1, None
        connections = [c for c in (self._requests, *self._watch_connections) if c is not None]
        self._requests, self._watch_connections = None, []
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
