"""Long-lived GETs (watches) multiplexed on one HTTP/2 connection, with one reader per connection.

Every stream of a connection is fed by a single reader task that reads the socket and hands each
frame to the stream it belongs to, so a watch event reaches its reader as soon as it arrives,
however many other watches wait on the same connection. (With the general-purpose HTTP client,
each waiting stream takes its turn reading the socket: an idle watch holding that turn kept the
events of the others until its own next event, a bookmark up to a minute later.)

Only what watches need: GET without a body, the answer's status, its body as lines. Received
data is acknowledged at once (a watch's reader keeps up with the server). A connection the
server ends (GOAWAY), closes or breaks takes no new streams; its open streams end with an error
and are opened again by their watches on a new connection. All of it runs on the ``kube-io``
event loop: nothing here needs a lock. Nothing here logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

_READ = 65536
_WINDOW = 1 << 24  # the connection's receive window: never the bottleneck for watches


class NoHTTP2(Exception):
    """The server does not speak HTTP/2 here (no ``h2`` in the TLS handshake)."""


class StreamClosed(Exception):
    """The stream or its connection ended before the answer did."""


@dataclass
class _Stream:
    headers: asyncio.Future[list[tuple[str, str]]]
    chunks: asyncio.Queue[bytes | BaseException | None] = field(default_factory=asyncio.Queue)
    ended: bool = False


class WatchResponse:
    """The answer to one GET on a :class:`H2Connection`: status, then the body as it comes."""

    http_version = "HTTP/2"

    def __init__(self, status_code: int, stream: _Stream, read_timeout: float) -> None:
        self.status_code = status_code
        self._stream = stream
        self._read_timeout = read_timeout

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            try:
                chunk = await asyncio.wait_for(self._stream.chunks.get(), self._read_timeout)
            except TimeoutError:
                raise TimeoutError(f"no data for {self._read_timeout:g}s") from None
            if chunk is None:
                return
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self._chunks()])

    async def aiter_lines(self) -> AsyncIterator[str]:
        pending = b""
        async for chunk in self._chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode()
        if pending:
            yield pending.decode()


class H2Connection:
    """One HTTP/2 connection to ``origin`` for long-lived GETs (see the module docstring)."""

    def __init__(self, origin: str, tls: ssl.SSLContext, server_name: str | None) -> None:
        parts = urlsplit(origin)
        self._host = parts.hostname or ""
        self._port = parts.port or 443
        self._authority = parts.netloc
        self._tls = tls
        self._server_name = server_name
        self._h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        self._streams: dict[int, _Stream] = {}
        self._taken = 0  # streams open or being opened (counted before the first await)
        self.failed: BaseException | None = None  # why the connection takes no new streams

    @property
    def open_streams(self) -> int:
        return self._taken

    @property
    def usable(self) -> bool:
        return self.failed is None

    async def _open(self, timeout: float) -> None:
        async with self._opening:
            if self._writer is not None:
                return
            self._tls.set_alpn_protocols(["h2"])
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._server_name or self._host,
                ),
                timeout,
            )
            tls = writer.get_extra_info("ssl_object")
            protocol = tls.selected_alpn_protocol() if tls is not None else None
            if protocol != "h2":
                writer.close()
                raise NoHTTP2(f"the server answers {protocol or 'HTTP/1.1'}")
            self._h2.initiate_connection()
            self._h2.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
            self._h2.increment_flow_control_window(_WINDOW)
            writer.write(self._h2.data_to_send())
            self._writer = writer
            self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(_READ)
                if not data:
                    raise StreamClosed("the server closed the connection")
                for event in self._h2.receive_data(data):
                    self._dispatch(event)
                self._flush()
        except asyncio.CancelledError:
            self._fail(StreamClosed("the connection was closed"))
            raise
        except Exception as err:
            self._fail(err if isinstance(err, StreamClosed) else StreamClosed(_describe(err)))

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            # GOAWAY: streams up to its last id may still finish; no new ones here.
            self.failed = StreamClosed(f"the server ended the connection ({event.error_code!r})")
            last = event.last_stream_id or 0
            for later in [s for s in self._streams if s > last]:
                self._end(later, self.failed)
            return
        stream_id = getattr(event, "stream_id", None)
        stream = self._streams.get(stream_id) if stream_id is not None else None
        if stream is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            if not stream.headers.done():
                stream.headers.set_result([(str(k), str(v)) for k, v in event.headers])
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream.chunks.put_nowait(event.data)
        elif isinstance(event, h2.events.StreamEnded):
            self._end(event.stream_id, None)
        elif isinstance(event, h2.events.StreamReset):
            self._end(event.stream_id, StreamClosed(f"stream reset ({event.error_code!r})"))

    def _end(self, stream_id: int, error: BaseException | None) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.ended:
            return
        stream.ended = True
        if not stream.headers.done():
            stream.headers.set_exception(error or StreamClosed("the stream ended without headers"))
        stream.chunks.put_nowait(error)

    def _fail(self, error: BaseException) -> None:
        if self.failed is None:
            self.failed = error
        for stream_id in list(self._streams):
            self._end(stream_id, error)
        if self._writer is not None:
            self._writer.close()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    @contextlib.asynccontextmanager
    async def get(
        self, url: str, headers: dict[str, str], *, read_timeout: float, connect_timeout: float
    ) -> AsyncIterator[WatchResponse]:
        """GET ``url`` (on this connection's origin): the response, its body read as it comes."""
        if self.failed is not None:
            raise self.failed
        self._taken += 1
        try:
            async with self._stream(url, headers, read_timeout, connect_timeout) as response:
                yield response
        finally:
            self._taken -= 1

    @contextlib.asynccontextmanager
    async def _stream(
        self, url: str, headers: dict[str, str], read_timeout: float, connect_timeout: float
    ) -> AsyncIterator[WatchResponse]:
        await self._open(connect_timeout)
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", self._authority),
            (":path", path),
            *((k.lower(), v) for k, v in headers.items()),
        ]
        stream_id = self._h2.get_next_available_stream_id()
        stream = self._streams[stream_id] = _Stream(asyncio.get_running_loop().create_future())
        try:
            self._h2.send_headers(stream_id, request, end_stream=True)
            self._flush()
            try:
                answer = dict(await asyncio.wait_for(stream.headers, read_timeout))
            except TimeoutError:
                raise TimeoutError(f"no answer within {read_timeout:g}s") from None
            yield WatchResponse(int(answer.get(":status", "0")), stream, read_timeout)
        finally:
            del self._streams[stream_id]
            if not stream.ended and self.failed is None:
                with contextlib.suppress(h2.exceptions.H2Error):
                    self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                self._flush()

    async def aclose(self) -> None:
        task, self._reader_task = self._reader_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._fail(StreamClosed("the connection was closed"))


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
