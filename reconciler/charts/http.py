"""One HTTP GET for chart sources: auth header, custom CA, timeout, size cap.

Authorization is never carried across a redirect (registries redirect blob downloads to object
storage, which must not see the registry's credentials). Every status comes back as a
``Response``; only a server that cannot be reached raises ``Unreachable``.
"""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit, urlunsplit

from reconciler.errors import ChartError

USER_AGENT = "reconciler"


class Unreachable(ChartError):
    """The server could not be reached (DNS, refused, timeout, TLS)."""


@dataclass(frozen=True)
class Response:
    url: str
    status: int
    headers: Message
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def basic_auth(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def bearer_auth(token: str) -> str:
    return f"Bearer {token}"


def shown(url: str) -> str:
    """``url`` fit for a message: no user info, no query (tokens travel there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def get(
    url: str,
    *,
    authorization: str | None = None,
    context: ssl.SSLContext | None = None,
    accept: str | None = None,
    timeout: float = 30.0,
    limit: int = 64 * 1024 * 1024,
) -> Response:
    """GET ``url``; the body is read up to ``limit`` bytes (more is an error)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if accept:
        request.add_header("Accept", accept)
    if authorization:
        request.add_unredirected_header("Authorization", authorization)
    handlers: list[urllib.request.BaseHandler] = []
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as reply:
            return Response(reply.geturl(), reply.status, reply.headers, _read(reply, url, limit))
    except urllib.error.HTTPError as err:
        body = _read(err, url, limit) if err.fp is not None else b""
        return Response(err.geturl() or url, err.code, err.headers, body)
    except urllib.error.URLError as err:
        raise Unreachable(f"{shown(url)}: {_reason(err.reason)}") from err
    except TimeoutError as err:
        raise Unreachable(f"{shown(url)}: timed out after {timeout:g}s") from err
    except (OSError, ssl.SSLError) as err:
        raise Unreachable(f"{shown(url)}: {_reason(err)}") from err


def _read(reply: object, url: str, limit: int) -> bytes:
    read = getattr(reply, "read")  # noqa: B009 - HTTPResponse and HTTPError both have it
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = read(1024 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ChartError(f"{shown(url)}: response larger than {limit // (1024 * 1024)} MiB")
        chunks.append(chunk)


def _reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({reason.verify_message}); set caFile for it"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    return str(reason) or type(reason).__name__
