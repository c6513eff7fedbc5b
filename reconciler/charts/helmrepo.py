"""A Helm chart repository over HTTP(S): ``<repo>/index.yaml`` and the archives it lists."""

from __future__ import annotations

from reconciler.charts import http
from reconciler.charts.credentials import ChartCredentials
from reconciler.charts.index import IndexEntry, IndexFormatError, parse_index
from reconciler.errors import ChartError

MAX_INDEX_BYTES = 128 * 1024 * 1024
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024


def _get(url: str, credentials: ChartCredentials, timeout: float, limit: int) -> http.Response:
    """GET with whatever the credentials file sets for ``url`` (longest prefix)."""
    entry = credentials.for_url(url)
    authorization = None
    context = None
    if entry is not None:
        token = entry.token()
        basic = entry.basic()
        if token is not None:
            authorization = http.bearer_auth(token)
        elif basic is not None:
            authorization = http.basic_auth(*basic)
        context = entry.ssl_context()
    return http.get(url, authorization=authorization, context=context, timeout=timeout, limit=limit)


def _failed(what: str, reply: http.Response) -> ChartError:
    hint = {
        401: "credentials missing or refused (see --chart-credentials)",
        403: "access denied",
        404: "not found",
    }.get(reply.status, "")
    return ChartError(f"{what}: HTTP {reply.status}" + (f" ({hint})" if hint else ""))


def fetch_index(
    repo_url: str, credentials: ChartCredentials, timeout: float
) -> dict[str, list[IndexEntry]]:
    url = repo_url.rstrip("/") + "/index.yaml"
    reply = _get(url, credentials, timeout, MAX_INDEX_BYTES)
    if not reply.ok:
        raise _failed(http.shown(url), reply)
    try:
        return parse_index(reply.body)
    except IndexFormatError as err:
        raise ChartError(f"{http.shown(url)}: {err}") from err


def fetch_archive(
    repo_url: str, entry: IndexEntry, credentials: ChartCredentials, timeout: float
) -> bytes:
    url = entry.download_url(repo_url)
    if url is None:
        raise ChartError(f"{http.shown(repo_url)}: index.yaml lists no URL for {entry.name}")
    if not url.startswith(("https://", "http://")):
        raise ChartError(f"{http.shown(repo_url)}: {entry.name} {entry.version}: unsupported URL")
    reply = _get(url, credentials, timeout, MAX_ARCHIVE_BYTES)
    if not reply.ok:
        raise _failed(f"{http.shown(url)} ({entry.name} {entry.version})", reply)
    return reply.body
