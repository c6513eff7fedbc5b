"""A server that turned HTTP/2 down (a load balancer during a failover) is asked for it again
after a while: requests go over HTTP/1.1 meanwhile, over HTTP/2 once it is offered again.

The peer is a real TLS server on loopback whose ALPN offer changes between connections:
HTTP/1.1 only, then h2 as well (answered with the h2 library's server side).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import h2.config
import h2.connection
import h2.events

from reconciler.devenv.certs import make_ca, make_serving_cert
from reconciler.kube.transport import Endpoint, Transport


async def _h2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    while data := await reader.read(65536):
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                conn.send_headers(event.stream_id, [(":status", "200")])
                conn.send_data(event.stream_id, b"h2", end_stream=True)
        writer.write(conn.data_to_send())
        await writer.drain()


async def _http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.readuntil(b"\r\n\r\n"):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nh1")
        await writer.drain()


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    tls = writer.get_extra_info("ssl_object")
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        await (_h2 if tls.selected_alpn_protocol() == "h2" else _http1)(reader, writer)
    writer.close()


def test_a_server_that_turned_http2_down_is_asked_for_it_again(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    pair = make_serving_cert(ca, tmp_path, "flaky-lb")

    async def scenario() -> list[str]:
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(pair.cert, pair.key)
        server_tls.set_alpn_protocols(["http/1.1"])  # HTTP/2 turned down
        listening = await asyncio.start_server(_serve, "127.0.0.1", 0, ssl=server_tls)
        origin = f"https://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
        endpoint = Endpoint.of(
            origin,
            ca_file=str(ca.cert),
            cert_file=None,
            key_file=None,
            verify=True,
            server_name=None,
            credentials="-",
        )
        client = Transport(endpoint, retry_http2=0.5)
        seen: list[str] = []

        async def get() -> None:
            status, body, version = await client.send(
                "GET",
                f"{origin}/version",
                content=None,
                headers={},
                read_timeout=5,
                connect_timeout=5,
            )
            assert status == 200
            seen.append(f"{version} {body.decode()}")

        try:
            await get()
            server_tls.set_alpn_protocols(["h2", "http/1.1"])  # offered again
            await get()  # within retry_http2: still HTTP/1.1
            await asyncio.sleep(0.6)
            await get()
            await get()
        finally:
            await client.aclose()
            listening.close()
        return seen

    seen = asyncio.run(scenario())
    print(seen)
    assert seen == ["HTTP/1.1 h1", "HTTP/1.1 h1", "HTTP/2 h2", "HTTP/2 h2"]
