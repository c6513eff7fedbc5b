"""An HTTP/2 server that ends the connection (GOAWAY) while a long answer streams: a watch on
that connection must end at once, not wait on a connection whose keepalive has stopped.

The peer is a real HTTP/2 server on loopback (TLS, ALPN h2) written with the h2 library's
server side: an API server sends GOAWAY when it shuts down or, with ``--goaway-chance``, to
move clients to another server; a frozen or dropped peer after it is what this guards against.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import h2.config
import h2.connection
import h2.events

from reconciler.devenv.certs import make_ca, make_serving_cert
from reconciler.kube.h2conn import AnswerLost, H2Connection, NotProcessed

LONG = 30.0  # the read timeout a watch waits with; the test fails long before


class _GoawayServer:
    """Answers the first stream with headers and one chunk, then (when told) sends GOAWAY with
    that stream as the last it took, and falls silent without closing the socket."""

    def __init__(self) -> None:
        self.streams: list[int] = []
        self.goaway = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        reading = asyncio.ensure_future(reader.read(65536))
        going = asyncio.ensure_future(self.goaway.wait())
        while True:
            done, _ = await asyncio.wait({reading, going}, return_when=asyncio.FIRST_COMPLETED)
            if going in done:
                conn.close_connection(last_stream_id=max(self.streams, default=0))
                writer.write(conn.data_to_send())
                await writer.drain()
                await asyncio.sleep(LONG * 2)  # silent: no frame, no close
                return
            data = reading.result()
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    self.streams.append(event.stream_id)
                    conn.send_headers(event.stream_id, [(":status", "200")])
                    conn.send_data(event.stream_id, b'{"type":"ADDED"}\n')
            writer.write(conn.data_to_send())
            reading = asyncio.ensure_future(reader.read(65536))

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


async def _served(tmp: Path) -> tuple[_GoawayServer, asyncio.Server, ssl.SSLContext]:
    ca = make_ca(tmp)
    pair = make_serving_cert(ca, tmp, "goaway")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pair.cert, pair.key)
    server_tls.set_alpn_protocols(["h2"])
    peer = _GoawayServer()
    listening = await asyncio.start_server(peer.handle, "127.0.0.1", 0, ssl=server_tls)
    return peer, listening, ssl.create_default_context(cafile=str(ca.cert))


async def _lines(conn: H2Connection, url: str) -> AsyncIterator[str]:
    async with conn.stream("GET", url, {}, read_timeout=LONG, connect_timeout=5.0) as answer:
        async for line in answer.aiter_lines():
            yield line


def test_a_goaway_ends_a_streaming_answer_at_once_and_no_new_stream_is_taken(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[BaseException | None, float, BaseException | None]:
        peer, listening, tls = await _served(tmp_path)
        port = listening.sockets[0].getsockname()[1]
        origin = f"https://127.0.0.1:{port}"
        conn = H2Connection(origin, tls, None)
        lines = _lines(conn, f"{origin}/api/v1/configmaps?watch=1")
        try:
            assert await anext(lines) == '{"type":"ADDED"}'
            peer.goaway.set()
            started = time.monotonic()
            ended: BaseException | None = None
            try:
                await asyncio.wait_for(anext(lines), LONG)
            except (AnswerLost, TimeoutError, StopAsyncIteration) as err:
                ended = err
            took = time.monotonic() - started
            refused: BaseException | None = None
            try:
                async with conn.stream("GET", origin, {}, read_timeout=1, connect_timeout=1):
                    pass
            except NotProcessed as err:
                refused = err
            return ended, took, refused
        finally:
            await lines.aclose()
            await conn.aclose()
            peer.close()
            listening.close()

    ended, took, refused = asyncio.run(scenario())
    print(f"stream ended with {ended!r} after {took:.2f}s; a new stream: {refused!r}")
    assert isinstance(ended, AnswerLost), ended
    assert took < 5.0
    assert isinstance(refused, NotProcessed)  # no new stream here: send it elsewhere
