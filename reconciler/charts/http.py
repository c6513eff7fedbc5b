"""One HTTP GET for chart sources: auth header, custom CA, timeout, size cap.

Authorization follows a redirect only to the same scheme, host and port (registries redirect
blob downloads to object storage, which must not see the registry's credentials). Every status
comes back as a ``Response``; a server that cannot be reached, a broken connection or a body cut
short of its Content-Length raises ``Unreachable`` (a network failure: the resolver may serve a
cached chart instead).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from reconciler.errors import ChartError

USER_AGENT = "reconciler"


class Unreachable(ChartError):
    """The server could not be reached (DNS, refused, timeout, TLS), or the connection broke."""


class Refused(ChartError):
    """The server refused the credentials (HTTP 401 or 403): true of the whole source."""


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
    handlers: list[urllib.request.BaseHandler] = [_SameOriginAuthorization()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        try:
            reply = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as err:  # a status: read its body like any other
            if err.fp is None:
                return Response(err.geturl() or url, err.code, err.headers, b"")
            reply = err
        with reply:
            body = _read(reply, url, limit)
            return Response(reply.geturl() or url, reply.status or 0, reply.headers, body)
    except urllib.error.URLError as err:
        raise Unreachable(f"{shown(url)}: {_reason(err.reason)}") from err
    except TimeoutError as err:
        raise Unreachable(f"{shown(url)}: timed out after {timeout:g}s") from err
    except (OSError, ssl.SSLError) as err:
        raise Unreachable(f"{shown(url)}: {_reason(err)}") from err
    except http.client.HTTPException as err:  # IncompleteRead, BadStatusLine, ...
        raise Unreachable(f"{shown(url)}: the connection broke ({_broken(err)})") from err


class _SameOriginAuthorization(urllib.request.HTTPRedirectHandler):
    """Redirects as urllib does, keeping Authorization when scheme, host and port stay the same."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        authorization = req.unredirected_hdrs.get("Authorization")
        if new is not None and authorization and _origin(req.full_url) == _origin(new.full_url):
            new.add_unredirected_header("Authorization", authorization)
        return new


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port if port is not None else default


def same_origin(url: str, other: str) -> bool:
    """``url`` and ``other`` have the same scheme, host and port (credentials may go to both)."""
    return _origin(url) == _origin(other)


def _read(reply: IO[bytes], url: str, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = reply.read(1024 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise ChartError(f"{shown(url)}: response larger than {limit // (1024 * 1024)} MiB")
        chunks.append(chunk)
    headers: Message | None = getattr(reply, "headers", None)
    declared = headers.get("Content-Length", "") if headers is not None else ""
    chunked = headers is not None and "chunked" in headers.get("Transfer-Encoding", "").lower()
    if declared.strip().isdigit() and not chunked and size < int(declared):
        raise Unreachable(
            f"{shown(url)}: the download was cut short ({size} of {int(declared)} bytes)"
        )
    return b"".join(chunks)


def _broken(err: http.client.HTTPException) -> str:
    if isinstance(err, http.client.IncompleteRead):
        return f"closed after {len(err.partial)} bytes of the body"
    text = str(err).strip()
    return f"{type(err).__name__}: {text[:80]!r}" if text else type(err).__name__


def _reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({reason.verify_message}); set caFile for it"
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    return str(reason) or type(reason).__name__
