"""What an API server's refusal or a request without an answer means, as the project's errors
(``reconciler.errors``): the answer's Status message, the field managers of a conflict, and a
named, credential-free reason for a TLS or connection failure."""

from __future__ import annotations

import json
import re
import ssl
from http import HTTPStatus

import httpx

from reconciler.errors import ClusterUnreachable, ConflictError, KubeError, RequestTimeout
from reconciler.kube.h2conn import ConnectTimeout

_CONFLICT_MANAGER = re.compile(r'conflicts? with "([^"]+)"')


def answer_error(status: int, data: bytes, cluster: str, obj: str | None) -> KubeError:
    """An answer outside 2xx as the error it means: a conflict of field managers, an
    unreachable cluster (a gateway's 5xx), or the Status message with its code."""
    message = status_message(status, data)
    if status == 409 and "conflict" in message.lower() and "apply" in message.lower():
        managers = sorted(set(_CONFLICT_MANAGER.findall(message)))
        return ConflictError(message, cluster=cluster, obj=obj, managers=managers)
    if status in (502, 503, 504):
        return ClusterUnreachable(
            f"HTTP {status}: {message}", cluster=cluster, obj=obj, status=status
        )
    if status == 422 and "immutable" in message:
        message += (
            " (immutable field: delete the object to let it be recreated, "
            "or revert the change in Git)"
        )
    else:
        message = f"HTTP {status}: {message}"
    return KubeError(message, cluster=cluster, obj=obj, status=status)


def transport_error(
    err: BaseException,
    host: str,
    cluster: str,
    method: str,
    path: str,
    read: float,
    connect: float,
    obj: str | None,
) -> KubeError:
    """A request that got no answer, named: timeout, TLS, refused, reset."""
    tls = _ssl_cause(err)
    if isinstance(err, httpx.ConnectTimeout | ConnectTimeout):
        return ClusterUnreachable(
            f"connecting to {host} timed out after {connect:g}s", cluster=cluster
        )
    if isinstance(err, httpx.TimeoutException | TimeoutError):
        return RequestTimeout(
            f"{method} {path} timed out after {read:g}s waiting for {host} "
            "(raise --request-timeout for slow servers or big objects)",
            cluster=cluster,
            obj=obj,
        )
    if tls is not None:
        return ClusterUnreachable(f"TLS to {host} failed: {tls_reason(tls)}", cluster=cluster)
    return ClusterUnreachable(f"unreachable at {host}: {_connection_reason(err)}", cluster=cluster)


def status_message(status: int, data: bytes) -> str:
    """The ``message`` of a Status answer, else the HTTP reason phrase."""
    try:
        body = json.loads(data or b"{}")
    except (TypeError, ValueError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if message:
        return str(message)
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


_TLS_CAUSES = (
    ("unable to get local issuer certificate", "unknown CA"),
    ("self-signed certificate", "unknown CA"),
    ("certificate signature failure", "unknown CA"),
    ("self signed certificate", "unknown CA"),
    ("unable to get issuer certificate", "unknown CA"),
    ("hostname mismatch", "hostname mismatch"),
    ("ip address mismatch", "hostname mismatch"),
    ("certificate has expired", "certificate expired"),
    ("certificate is not yet valid", "certificate not yet valid"),
    ("wrong version number", "the server does not speak TLS"),
    ("eof occurred in violation of protocol", "the server closed the connection"),
)


def tls_reason(err: BaseException) -> str:
    """Why a TLS handshake failed, named: ``certificate verify failed: unknown CA (...)``."""
    cause: BaseException = _ssl_cause(err) or err
    text = str(getattr(cause, "verify_message", None) or cause)
    detail = re.sub(r"^\[[^\]]*\]\s*", "", text)  # "[SSL: CERTIFICATE_VERIFY_FAILED] "
    detail = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", detail).strip()
    lowered = detail.lower()
    for marker, name in _TLS_CAUSES:
        if marker in lowered:
            verify = (
                "certificate verify failed: "
                if "verify" in lowered or name.startswith(("unknown", "hostname", "certificate"))
                else ""
            )
            return f"{verify}{name} ({detail})" if detail.lower() != name else f"{verify}{name}"
    return detail[:160] or type(cause).__name__


def _ssl_cause(err: BaseException) -> ssl.SSLError | None:
    """The TLS error under a transport error (the HTTP library wraps it), if any."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _connection_reason(err: BaseException) -> str:
    """A short, credential-free reason for a connection failure."""
    seen: set[int] = set()
    while id(err) not in seen:  # down to the OS's own words
        seen.add(id(err))
        if isinstance(err, BaseExceptionGroup) and err.exceptions:
            err = err.exceptions[0]  # every address refused: the first one says why
        elif isinstance(err, OSError) and type(err) is not OSError:
            break
        elif err.__cause__ is not None or err.__context__ is not None:
            err = err.__cause__ or err.__context__  # type: ignore[assignment]
        else:
            break
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, ConnectionResetError):
        return "connection reset"
    text = str(getattr(err, "reason", None) or err) or type(err).__name__
    for marker in ("Connection refused", "timed out", "Name or service not known", "SSL"):
        if marker in text:
            return marker.lower()
    return text.split(":")[-1].strip()[:120] or type(err).__name__
