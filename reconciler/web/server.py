"""Serve an ASGI application with uvicorn on a background thread of the daemon.

The socket is bound here, before the thread starts, so a busy or forbidden address is a
one-line error at startup and port 0 reports the port it got. uvicorn runs its own event loop:
thousands of idle or slow connections cost a few KiB each, never a thread, and the probes keep
answering while the page's requests read the store on worker threads.
"""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from starlette.types import ASGIApp

from reconciler.errors import ReconcilerError
from reconciler.web.deadline import HeadDeadlineProtocol

__all__ = ["DEFAULT_LISTEN", "HttpServer", "parse_listen"]

DEFAULT_LISTEN = "127.0.0.1:9465"
BACKLOG = 1024  # connections the kernel queues before we accept them
HEAD_TIMEOUT = 10.0  # seconds for a client to send a whole request head
KEEP_ALIVE = 5.0  # an idle keep-alive connection is closed after this
MAX_CONNECTIONS = 1000  # beyond this, requests get 503 (each connection costs memory, not a thread)
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})  # answered beyond that too


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare ``port`` (loopback) -> (host, port)."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--listen {value!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--listen {value!r}: port must be 0..65535")
    return host, port


class _ProbesUnlimited(HeadDeadlineProtocol):
    """uvicorn answers 503 to any request while ``limit_concurrency`` connections are open;
    the probes and ``/metrics`` (no store read, microseconds each) are answered anyway, so a
    crowd of page clients can never fail a liveness probe. uvicorn reads the limit right after
    it has parsed a request head into ``scope``: the limit is looked up per request."""

    @property
    def limit_concurrency(self) -> int | None:
        scope = getattr(self, "scope", None)
        if scope is not None and scope.get("path") in UNLIMITED_PATHS:
            return None
        return self._limit

    @limit_concurrency.setter
    def limit_concurrency(self, value: int | None) -> None:
        self._limit = value


def _protocol(head_timeout: float) -> type[HeadDeadlineProtocol]:
    return type("Http", (_ProbesUnlimited,), {"head_timeout": head_timeout})


def _bind(listen: str, backlog: int) -> socket.socket:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as err:
        sock.close()
        raise ReconcilerError(f"--listen {listen}: cannot listen: {err.strerror}") from err
    sock.setblocking(False)
    return sock


class HttpServer:
    """``app`` served on ``listen`` by uvicorn in a background thread; ``stopping`` is set
    first on :meth:`stop` (the app ends its event streams on it)."""

    def __init__(
        self,
        listen: str,
        app: ASGIApp,
        *,
        stopping: threading.Event | None = None,
        head_timeout: float = HEAD_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        backlog: int = BACKLOG,
    ) -> None:
        self._socket = _bind(listen, backlog)
        self._stopping = stopping
        config = uvicorn.Config(
            app,
            http=_protocol(head_timeout),
            ws="none",
            lifespan="off",
            interface="asgi3",
            backlog=backlog,
            limit_concurrency=max_connections,
            timeout_keep_alive=int(KEEP_ALIVE),
            timeout_graceful_shutdown=3,
            access_log=False,
            log_config=None,  # leave the daemon's logging alone
            server_header=False,
        )
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="reconciler-http",
            daemon=True,
        )

    @property
    def host(self) -> str:
        return str(self._socket.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end event streams, finish what is in flight (a few seconds at
        most)."""
        if self._stopping is not None:
            self._stopping.set()
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()
