"""Charts in an OCI registry (the distribution API, as ``helm push`` stores them).

``oci://host[:port]/path/name`` names repository ``path/name`` on ``host``; a chart version is
a tag (``+`` written as ``_``). The manifest's chart layer
(``application/vnd.cncf.helm.chart.content.v1.tar+gzip``) is the chart archive; its digest is
the chart's digest. Authentication follows the registry's challenge: a configured bearer token
is sent as is (a challenge to it is a refusal, said as such); otherwise a ``Bearer`` challenge is
answered with a token from the registry's token service (with the configured username/password,
or anonymously), a ``Basic`` one with the username/password. Credentials and tokens go to the
registry's own host only (not to a pagination link elsewhere), and a username/password never
goes to a plain-http token service (unless on loopback).
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

from reconciler.charts import http
from reconciler.charts.cache import sha256_digest
from reconciler.charts.credentials import SourceCredentials
from reconciler.errors import ChartError

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_BLOB_BYTES = 64 * 1024 * 1024
_REFERENCE = re.compile(r"^oci://(?P<host>[A-Za-z0-9.-]+(?::\d+)?)/(?P<repo>[a-z0-9._/-]+)$")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class OciReference:
    host: str
    repository: str

    @property
    def name(self) -> str:
        """The chart name: the last path segment."""
        return self.repository.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"oci://{self.host}/{self.repository}"


def parse_reference(text: str) -> OciReference | None:
    """``oci://host[:port]/path/name`` or None when it is not one."""
    m = _REFERENCE.match(text)
    if not m or "//" in m.group("repo") or m.group("repo").endswith("/"):
        return None
    return OciReference(m.group("host"), m.group("repo"))


def tag_of(version: str) -> str:
    return version.replace("+", "_")


def version_of(tag: str) -> str:
    return tag.replace("_", "+")


@dataclass
class OciClient:
    """A client for one repository; remembers the token the registry handed out."""

    ref: OciReference
    credentials: SourceCredentials | None
    timeout: float = 30.0
    _authorization: str | None = field(default=None, repr=False)
    _configured: str | None = field(default=None, repr=False)  # the tokenFile/tokenEnv token
    _context: ssl.SSLContext | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.credentials is not None:
            self._context = self.credentials.ssl_context()
            token = self.credentials.token()
            if token is not None:
                self._authorization = self._configured = http.bearer_auth(token)

    @property
    def _base(self) -> str:
        return f"https://{self.ref.host}/v2/{self.ref.repository}"

    def tags(self) -> list[str]:
        """Every tag of the repository (following the registry's pagination)."""
        url: str | None = f"{self._base}/tags/list?n=1000"
        tags: list[str] = []
        while url is not None:
            reply = self._get(url, "application/json", MAX_MANIFEST_BYTES)
            if reply.status == 404:
                raise ChartError("repository not found in the registry")
            if not reply.ok:
                raise self._failed("tags", reply)
            try:
                listed = json.loads(reply.body).get("tags") or []
            except (ValueError, AttributeError) as err:
                raise ChartError("the registry's tag list is not JSON") from err
            tags.extend(str(t) for t in listed)
            url = _next_link(url, reply.headers.get("Link"))
        return tags

    def chart_digest(self, version: str) -> str | None:
        """The digest of the chart layer tagged ``version``; None when there is no such tag."""
        url = f"{self._base}/manifests/{tag_of(version)}"
        reply = self._get(url, ", ".join(MANIFEST_TYPES), MAX_MANIFEST_BYTES)
        if reply.status == 404:
            return None
        if not reply.ok:
            raise self._failed(f"manifest {version}", reply)
        claimed = reply.headers.get("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and sha256_digest(reply.body) != claimed:
            raise ChartError(f"{version}: manifest digest mismatch; refusing it")
        try:
            manifest = json.loads(reply.body)
            layers = [
                layer["digest"]
                for layer in manifest.get("layers", [])
                if layer.get("mediaType") == CHART_LAYER
            ]
        except (ValueError, AttributeError, KeyError, TypeError) as err:
            raise ChartError(f"{version}: the manifest is not valid JSON") from err
        if len(layers) != 1 or not isinstance(layers[0], str):
            raise ChartError(f"{version}: not a Helm chart (no single chart layer)")
        return layers[0]

    def blob(self, digest: str) -> bytes:
        reply = self._get(f"{self._base}/blobs/{digest}", None, MAX_BLOB_BYTES)
        if not reply.ok:
            raise self._failed(f"blob {digest}", reply)
        return reply.body

    # ---- auth ---------------------------------------------------------------------------------

    def _get(self, url: str, accept: str | None, limit: int) -> http.Response:
        if not http.same_origin(url, self._base):  # e.g. a pagination link to another host
            return http.get(
                url, context=self._context, accept=accept, timeout=self.timeout, limit=limit
            )
        reply = self._send(url, accept, limit)
        if reply.status != 401:
            return reply
        if self._configured is not None:
            return reply  # the configured token was refused: said so, not swapped for another
        challenge = reply.headers.get("WWW-Authenticate") or ""
        scheme, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        basic = self.credentials.basic() if self.credentials is not None else None
        if scheme.lower() == "bearer" and "realm" in params:
            self._authorization = http.bearer_auth(self._token(params, basic))
        elif scheme.lower() == "basic" and basic is not None:
            self._authorization = http.basic_auth(*basic)
        else:
            return reply
        return self._send(url, accept, limit)

    def _send(self, url: str, accept: str | None, limit: int) -> http.Response:
        return http.get(
            url,
            authorization=self._authorization,
            context=self._context,
            accept=accept,
            timeout=self.timeout,
            limit=limit,
        )

    def _token(self, params: dict[str, str], basic: tuple[str, str] | None) -> str:
        query = {"service": params.get("service", "")}
        query["scope"] = params.get("scope") or f"repository:{self.ref.repository}:pull"
        realm = params["realm"]
        if not realm.startswith("https://") and not realm.startswith("http://"):
            raise ChartError("the registry names an unusable token service")
        if basic is not None and realm.startswith("http://") and not _loopback(realm):
            raise http.Refused(
                f"the registry's token service {http.shown(realm)} is plain http: "
                "refusing to send the username/password there"
            )
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        reply = http.get(
            url,
            authorization=http.basic_auth(*basic) if basic else None,
            context=self._context,
            timeout=self.timeout,
            limit=MAX_MANIFEST_BYTES,
        )
        if not reply.ok:
            raise self._failed("token service", reply)
        try:
            answer = json.loads(reply.body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError) as err:
            raise ChartError("the token service answered no JSON") from err
        if not isinstance(token, str) or not token:
            raise ChartError("the token service answered no token")
        return token

    def _failed(self, what: str, reply: http.Response) -> ChartError:
        hint = {
            401: "credentials missing or refused (see --chart-credentials)",
            403: "access denied",
        }.get(reply.status, "")
        if reply.status == 401 and self._configured is not None and what != "token service":
            hint = "the registry refused the configured token (tokenFile/tokenEnv)"
        text = f"{what}: HTTP {reply.status}" + (f" ({hint})" if hint else "")
        return http.Refused(text) if reply.status in (401, 403) else ChartError(text)


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _next_link(current: str, link: str | None) -> str | None:
    if not link:
        return None
    m = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
    return urljoin(current, m.group(1)) if m else None
