"""HTTP/2 connections with one reader each: requests and watches multiplexed on one socket.

Every stream of a connection is fed by a single reader task that reads the socket and hands each
frame to the stream it belongs to, so an answer or a watch event reaches its reader as soon as it
arrives, however many other streams wait on the same connection. (With the general-purpose HTTP
client, the streams of a connection took turns reading the socket: an idle watch holding that
turn kept the events of the others until its own next event, a bookmark up to a minute later;
and every request paid for that client's pools, timeouts and hooks, about 2 ms of CPU.)

Requests send their body within the server's flow-control windows; received data is
acknowledged at once (readers keep up). At most :data:`MAX_STREAMS` streams are open at once; more
wait for a free one. A connection the server ends (GOAWAY), closes or breaks takes no new
streams; its open streams end with :class:`StreamClosed` (a ``ConnectionError``). A server that
does not offer HTTP/2 in the TLS handshake raises :class:`NoHTTP2`. All of it runs on the
``kube-io`` event loop: nothing here needs a thread lock. Nothing here logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

_READ = 65536
_WINDOW = 1 << 24  # the connection's receive window: never the bottleneck for a reader
MAX_STREAMS = 100  # open at once on one connection (API servers allow 250)
PING_AFTER = 30.0  # seconds without a byte from the server: ask it for a sign of life
PING_TIMEOUT = 30.0  # no answer to the ping by then: the connection is dead


class NoHTTP2(Exception):
    """The server does not speak HTTP/2 here (no ``h2`` in the TLS handshake)."""


class StreamClosed(ConnectionError):
    """The stream or its connection ended before the answer did."""


class ServerEnded(StreamClosed):
    """The server ended the connection (a GOAWAY, or it closed the socket): a new connection
    may well be served (a watch resumes there from its last resourceVersion)."""


class NotProcessed(ServerEnded):
    """The server ended the connection (GOAWAY) before it took this stream: safe to send again."""


class AnswerLost(ServerEnded):
    """The server took the stream, then ended the connection (GOAWAY) and sent the answer after
    it, which the HTTP/2 library refuses to read on a connection going away (an API server does
    so after a request it does not authenticate). The request must be sent again elsewhere to
    read its answer."""


class ConnectTimeout(TimeoutError):
    """The connection (TCP and TLS) was not up in time."""


class _Stream:
    """One stream's answer as the reader task hands it over: headers, then chunks of the body
    and last None (ended) or an error. Light (a watch holds one for minutes, thousands at once):
    a list and a future to wake the one reader, no queue."""

    __slots__ = ("_waiter", "chunks", "ended", "headers")

    def __init__(self, headers: asyncio.Future[list[tuple[str, str]]]) -> None:
        self.headers = headers
        self.chunks: list[bytes | BaseException | None] = []
        self.ended = False
        self._waiter: asyncio.Future[None] | None = None

    def put(self, chunk: bytes | BaseException | None) -> None:
        self.chunks.append(chunk)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self, timeout: float) -> list[bytes | BaseException | None]:
        """What came since the last call, once something did; TimeoutError after ``timeout``."""
        if not self.chunks:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            except TimeoutError:
                raise TimeoutError(f"no data for {timeout:g}s") from None
            finally:
                self._waiter = None
        taken, self.chunks = self.chunks, []
        return taken


class Response:
    """The answer on one stream of a :class:`H2Connection`: status, then the body as it comes."""

    def __init__(self, status_code: int, stream: _Stream, read_timeout: float) -> None:
        self.status_code = status_code
        self._stream = stream
        self._read_timeout = read_timeout

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            for chunk in await self._stream.take(self._read_timeout):
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
    """One HTTP/2 connection to ``origin`` (see the module docstring)."""

    def __init__(self, origin: str, tls: ssl.SSLContext, server_name: str | None) -> None:
        """``tls``: a context of the connection's own (its ALPN is set here)."""
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
        self._tasks: list[asyncio.Task[None]] = []  # the reader and the keepalive
        self._heard = 0.0  # when the server last sent anything (loop time)
        self._pong = asyncio.Event()
        self._opening = asyncio.Lock()
        self._streams: dict[int, _Stream] = {}
        self._slots = asyncio.Semaphore(MAX_STREAMS)
        self._window = asyncio.Event()  # set when the server lets us send more
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
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(
                        self._host,
                        self._port,
                        ssl=self._tls,
                        server_hostname=self._server_name or self._host,
                    ),
                    timeout,
                )
            except TimeoutError:
                raise ConnectTimeout(f"not connected within {timeout:g}s") from None
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
            loop = asyncio.get_running_loop()
            self._heard = loop.time()
            self._tasks = [loop.create_task(self._read(reader)), loop.create_task(self._ping())]

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(_READ)
                if not data:
                    raise ServerEnded("the server closed the connection")
                self._heard = asyncio.get_running_loop().time()
                for event in self._h2.receive_data(data):
                    self._dispatch(event)
                self._flush()
        except asyncio.CancelledError:
            self._fail(StreamClosed("the connection was closed"))
            raise
        except Exception as err:
            if isinstance(err, StreamClosed):
                self._fail(err)
            elif self._h2.state_machine.state is h2.connection.ConnectionState.CLOSED:
                # frames after a GOAWAY (read in the same chunk, or before): answers lost
                self._fail(AnswerLost(f"the server ended the connection ({_describe(err)})"))
            else:
                self._fail(StreamClosed(_describe(err)))

    async def _ping(self) -> None:
        """A connection that stays silent gets a ping; no answer in time fails it, so watches
        on a connection that died without a word (a dropped route, a frozen server) notice
        within a minute and list again, instead of trusting what they hold."""
        loop = asyncio.get_running_loop()
        while self.failed is None:
            await asyncio.sleep(max(1.0, self._heard + PING_AFTER - loop.time()))
            if self.failed is not None or loop.time() - self._heard < PING_AFTER:
                continue
            self._pong.clear()
            self._h2.ping(b"reconcil")
            self._flush()
            try:
                await asyncio.wait_for(self._pong.wait(), PING_TIMEOUT)
            except TimeoutError:
                self._fail(StreamClosed(f"no answer to a ping within {PING_TIMEOUT:g}s"))

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.PingAckReceived):
            self._pong.set()
            return
        if isinstance(event, h2.events.ConnectionTerminated):
            # GOAWAY: streams after its last id were never taken (safe to send again). Those up
            # to it may still finish in HTTP/2, but the h2 library reads no frame after a GOAWAY
            # (its connection state is closed): their answers are lost now, not at the next
            # frame, so no watch waits on a connection whose pings have stopped.
            reason = f"the server ended the connection ({event.error_code!r})"
            last = event.last_stream_id or 0
            self.failed = NotProcessed(reason)
            lost = AnswerLost(reason)
            for number in list(self._streams):
                self._end(number, self.failed if number > last else lost)
            self._window.set()  # a body waiting for room finds the connection gone
            if self._writer is not None:
                self._writer.close()
            return
        if isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window.set()
        if isinstance(event, h2.events.DataReceived):
            # Every byte received frees the connection's window, also for a stream nobody
            # reads any more: else the window would leak until the server could send nothing.
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream_id = getattr(event, "stream_id", None)
        stream = self._streams.get(stream_id) if stream_id is not None else None
        if stream is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            if not stream.headers.done():
                stream.headers.set_result([(str(k), str(v)) for k, v in event.headers])
        elif isinstance(event, h2.events.DataReceived):
            stream.put(event.data)
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
        stream.put(error)

    def _fail(self, error: BaseException) -> None:
        if self.failed is None or isinstance(self.failed, NotProcessed):
            self.failed = error
        self._window.set()  # a body waiting for room finds the connection gone
        for stream_id in list(self._streams):
            self._end(stream_id, error)
        if self._writer is not None:
            self._writer.close()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        read_timeout: float,
        connect_timeout: float,
    ) -> tuple[int, bytes]:
        """One request and its whole answer: status and body."""
        async with self.stream(
            method,
            url,
            headers,
            body,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
        ) as response:
            return response.status_code, await response.aread()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None = None,
        *,
        read_timeout: float,
        connect_timeout: float,
    ) -> AsyncIterator[Response]:
        """A request whose answer is read as it comes (a watch): the response once its headers
        are in. ``read_timeout`` bounds each wait for the server."""
        if self.failed is not None:
            raise self.failed
        self._taken += 1
        try:
            async with self._slots:
                await self._open(connect_timeout)
                if self.failed is not None:
                    raise self.failed
                async with self._exchange(method, url, headers, body, read_timeout) as response:
                    yield response
        finally:
            self._taken -= 1

    @contextlib.asynccontextmanager
    async def _exchange(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> AsyncIterator[Response]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        request = [
            (":method", method),
            (":scheme", "https"),
            (":authority", self._authority),
            (":path", path),
            *((k.lower(), v) for k, v in headers.items()),
        ]
        if body:
            request.append(("content-length", str(len(body))))
        stream_id = self._h2.get_next_available_stream_id()
        stream = self._streams[stream_id] = _Stream(asyncio.get_running_loop().create_future())
        try:
            self._h2.send_headers(stream_id, request, end_stream=not body)
            self._flush()
            if body:
                await self._send_body(stream_id, stream, body, timeout)
            try:
                answer = dict(await asyncio.wait_for(stream.headers, timeout))
            except TimeoutError:
                raise TimeoutError(f"no answer within {timeout:g}s") from None
            yield Response(int(answer.get(":status", "0")), stream, timeout)
        finally:
            del self._streams[stream_id]
            if not stream.ended:  # the server may still send: tell it to stop
                with contextlib.suppress(h2.exceptions.H2Error):
                    self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                self._flush()

    async def _send_body(
        self, stream_id: int, stream: _Stream, body: bytes, timeout: float
    ) -> None:
        """The body, in frames the server's windows have room for."""
        sent = 0
        while sent < len(body):
            if self.failed is not None:
                raise self.failed
            if stream.ended:
                return  # answered (or refused) before the body was all sent: read the answer
            room = min(
                self._h2.local_flow_control_window(stream_id),
                self._h2.max_outbound_frame_size,
                len(body) - sent,
            )
            if room <= 0:
                self._window.clear()
                try:
                    await asyncio.wait_for(self._window.wait(), timeout)
                except TimeoutError:
                    raise TimeoutError(f"the server took no data for {timeout:g}s") from None
                continue
            self._h2.send_data(
                stream_id, body[sent : sent + room], end_stream=sent + room == len(body)
            )
            sent += room
            self._flush()

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._fail(StreamClosed("the connection was closed"))


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
