"""The HTTP server on loopback: binding, probes under slow-client load, client deadlines."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from reconciler.errors import ReconcilerError
from reconciler.store.db import Store
from reconciler.web.app import create_app
from reconciler.web.deadline import RequestDeadline
from reconciler.web.server import HttpServer, parse_listen
from reconciler.web.snapshot import SnapshotCache


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    Store.open(tmp_path).close()
    with Store.open_readonly(tmp_path) as store:
        yield store


def serve(store: Store, max_streams: int | None = None, **options: float) -> HttpServer:
    stopping = threading.Event()
    limits = {} if max_streams is None else {"max_streams": max_streams}
    app = create_app(
        SnapshotCache(store), CollectorRegistry(), ready=lambda: True, stopping=stopping, **limits
    )
    return HttpServer("127.0.0.1:0", app, stopping=stopping, **options).start()  # type: ignore[arg-type]


@pytest.fixture
def server(store: Store) -> Iterator[HttpServer]:
    server = serve(store)
    yield server
    server.stop()


def get(server: HttpServer, path: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        url = f"http://127.0.0.1:{server.port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_served(server: HttpServer) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            if get(server, "/healthz", timeout=1)[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.05)


def test_port_0_binds_a_free_loopback_port(server: HttpServer) -> None:
    wait_served(server)
    assert server.host == "127.0.0.1"
    assert server.port > 0


def test_a_busy_port_is_one_clear_error(server: HttpServer) -> None:
    with pytest.raises(ReconcilerError, match=r"--listen 127.0.0.1:\d+: cannot listen: Address"):
        HttpServer(f"127.0.0.1:{server.port}", create_app_stub())


def create_app_stub() -> RequestDeadline:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("never served")

    return RequestDeadline(app, 1.0)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9465", ("127.0.0.1", 9465)),
        ("0", ("127.0.0.1", 0)),
        (":9000", ("127.0.0.1", 9000)),
        ("[::1]:9465", ("::1", 9465)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_listen_addresses_parse(text: str, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["host:port", "127.0.0.1:70000"])
def test_bad_listen_addresses_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="--listen"):
        parse_listen(text)


def dribbler(port: int, stop: threading.Event, opened: list[socket.socket]) -> None:
    """A client that sends a request head one byte at a time, forever."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    opened.append(sock)
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    for byte in head:
        if stop.wait(0.2):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return


def test_healthz_answers_within_a_second_while_64_slow_clients_dribble_bytes(
    server: HttpServer,
) -> None:
    wait_served(server)
    stop = threading.Event()
    opened: list[socket.socket] = []
    threads = [
        threading.Thread(target=dribbler, args=(server.port, stop, opened), daemon=True)
        for _ in range(64)
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 5
        while len(opened) < 64:
            assert time.monotonic() < deadline, f"only {len(opened)} slow clients connected"
            time.sleep(0.05)
        time.sleep(1.0)  # they are all mid-request now
        for _ in range(5):
            started = time.monotonic()
            assert get(server, "/healthz", timeout=1) == (200, "ok\n")  # urlopen's own bound
            assert time.monotonic() - started < 1.0
            assert get(server, "/readyz", timeout=1)[0] == 200
            assert get(server, "/metrics", timeout=1)[0] == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        for sock in opened:
            sock.close()


def test_a_client_dribbling_its_request_head_is_cut_off_at_the_head_deadline(
    store: Store,
) -> None:
    server = serve(store, head_timeout=0.5)
    try:
        wait_served(server)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            started = time.monotonic()
            closed = False
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    closed = True
                    break
                sock.settimeout(0.1)
                try:
                    if sock.recv(1024) == b"":
                        closed = True
                        break
                except TimeoutError:
                    pass
            assert closed, "the server kept a client that never finished its request head"
            assert time.monotonic() - started < 3  # cut at ~0.5 s, not at the 10 s of data
    finally:
        server.stop()


def test_an_idle_connection_is_closed_and_a_keep_alive_one_gets_a_fresh_deadline(
    store: Store,
) -> None:
    server = serve(store, head_timeout=0.5)
    try:
        wait_served(server)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle:
            assert idle.recv(1024) == b""  # closed by the server within its deadline
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"\r\n\r\nok\n"):
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            assert sock.recv(1024) == b""  # the next head never comes: closed again
            assert time.monotonic() - started < 3
    finally:
        server.stop()


def test_an_answer_that_takes_too_long_is_a_503() -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(5)

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request"}

    app = RequestDeadline(slow, 0.1)
    started = time.monotonic()
    asyncio.run(app({"type": "http", "path": "/api/page"}, receive, send))  # type: ignore[arg-type]

    assert time.monotonic() - started < 2
    assert sent[0]["status"] == 503
    assert sent[1]["body"] == b"request timed out\n"


def test_stopping_ends_open_event_streams_quickly(store: Store) -> None:
    server = serve(store)
    wait_served(server)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"text/event-stream" in sock.recv(4096)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5
    finally:
        sock.close()


def test_many_connections_at_once_are_all_accepted(server: HttpServer) -> None:
    wait_served(server)
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(200)]
    try:
        for sock in socks[:20]:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for sock in socks[:20]:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for sock in socks:
            sock.close()


def open_stream(port: int) -> tuple[socket.socket, bytes]:
    """A connection asking for the event stream, and the head of the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        assert chunk, "closed before answering"
        answer += chunk
    return sock, answer


def test_event_streams_beyond_their_cap_are_refused_with_a_503_to_retry_later(
    store: Store,
) -> None:
    server = serve(store, max_streams=3)
    socks: list[socket.socket] = []
    try:
        wait_served(server)
        heads = []
        for _ in range(5):
            sock, head = open_stream(server.port)
            socks.append(sock)
            heads.append(head)
        streaming = [h for h in heads if h.startswith(b"HTTP/1.1 200")]
        refused = [h for h in heads if h.startswith(b"HTTP/1.1 503")]
        assert len(streaming) == 3
        assert all(b"text/event-stream" in h for h in streaming)
        assert len(refused) == 2
        assert all(b"retry-after: 30" in h.lower() for h in refused)
        socks.pop(0).close()  # one stream ends: the next one gets its place
        deadline = time.monotonic() + 5
        while True:
            sock, head = open_stream(server.port)
            socks.append(sock)
            if head.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert head.startswith(b"HTTP/1.1 200"), head
    finally:
        for sock in socks:
            sock.close()
        server.stop()


def test_probes_and_metrics_answer_while_every_connection_is_taken(store: Store) -> None:
    server = serve(store, max_connections=20)
    socks: list[socket.socket] = []
    try:
        wait_served(server)
        for _ in range(25):
            sock, _head = open_stream(server.port)
            socks.append(sock)
        for path in ("/healthz", "/readyz", "/metrics"):
            assert get(server, path)[0] == 200, path
        assert get(server, "/api/status")[0] == 503  # the page's requests wait for room
    finally:
        for sock in socks:
            sock.close()
        server.stop()


def test_head_on_the_event_stream_answers_at_once(server: HttpServer) -> None:
    wait_served(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"HEAD /api/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):  # the server closes the connection once it answered
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"text/event-stream" in answer
    assert answer.endswith(b"\r\n\r\n")  # headers only
