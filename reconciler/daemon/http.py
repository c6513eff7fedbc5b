"""The daemon's small HTTP endpoint: /healthz, /readyz, /metrics.

The server binds where it is told (loopback by default); port 0 picks a free port, reported by
:attr:`HttpEndpoint.port`.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from reconciler.daemon.metrics import Metrics
from reconciler.errors import ReconcilerError

DEFAULT_LISTEN = "127.0.0.1:9465"
_REQUEST_TIMEOUT = 10.0  # an idle or slow client is dropped after this many seconds
_MAX_CONNECTIONS = 32  # connections served at once; more are closed at once


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


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most ``_MAX_CONNECTIONS`` at once: beyond that a new
    connection is closed without an answer (scrapers retry), so idle clients cannot pile up
    threads. Each connection times out after ``_REQUEST_TIMEOUT`` seconds of silence."""

    daemon_threads = True
    max_connections = _MAX_CONNECTIONS
    request_timeout = _REQUEST_TIMEOUT

    def __init__(
        self,
        address: tuple[str, int],
        metrics: Metrics,
        ready: Callable[[], bool],
        healthy: Callable[[], bool],
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.metrics = metrics
        self.ready = ready
        self.healthy = healthy
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many connections: refuse this one
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went silent or away is not worth a traceback on stderr."""
        if isinstance(sys.exc_info()[1], OSError):  # timeouts and resets included
            return
        super().handle_error(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # drop an idle client

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.server.metrics.exposition(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok = self.server.healthy()
            self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n")
        elif path == "/readyz":
            ok = self.server.ready()
            self._send(200 if ok else 503, b"ok\n" if ok else b"no valid config loaded yet\n")
        else:
            self._send(404, b"not found: try /healthz, /readyz or /metrics\n")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds would drown the daemon's own log: stay quiet."""


class HttpEndpoint:
    """/healthz, /readyz and /metrics on one address, served by a background thread."""

    def __init__(
        self,
        listen: str,
        metrics: Metrics,
        *,
        ready: Callable[[], bool],
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        host, port = parse_listen(listen)
        try:
            self._server = _Server((host, port), metrics, ready, healthy)
        except OSError as err:
            raise ReconcilerError(f"--listen {listen}: cannot listen: {err.strerror}") from err
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="reconciler-http",
            daemon=True,
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HttpEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
