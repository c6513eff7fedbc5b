"""Deadlines for HTTP clients, so slow or silent ones cannot hold the endpoint.

Two bounds, both total (not reset by each byte a client trickles in):

- :class:`HeadDeadlineProtocol`: a connection must deliver a complete request head within
  ``head_timeout`` seconds of connecting or of its previous response, else it is closed. uvicorn's
  keep-alive timer alone restarts on every byte received, so a client sending one byte every few
  seconds would otherwise keep its connection forever.
- :class:`RequestDeadline`: the application's answer to one request must be complete within
  ``seconds`` (a 503 when it has not started by then); long-lived streams (server-sent events)
  are exempt and bound their own lifetime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = ["HeadDeadlineProtocol", "RequestDeadline", "head_deadline_protocol"]


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections that are too slow to send a request head."""

    head_timeout = 10.0

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request head arrived: the app's deadline takes over
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request head on this connection gets a fresh deadline

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if not busy and not self.transport.is_closing():
            self.transport.close()


def head_deadline_protocol(seconds: float) -> type[HeadDeadlineProtocol]:
    """The protocol class with its head deadline set (uvicorn takes a class, not an object)."""
    return type("HeadDeadline", (HeadDeadlineProtocol,), {"head_timeout": seconds})


class RequestDeadline:
    """ASGI middleware: every HTTP request but those under ``exempt`` paths ends within
    ``seconds``."""

    def __init__(self, app: ASGIApp, seconds: float, exempt: Collection[str] = ()) -> None:
        self.app = app
        self.seconds = seconds
        self.exempt = tuple(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracked), self.seconds)
        except TimeoutError:
            if started:
                return  # half an answer was sent: the server drops the connection
            body = b"request timed out\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
