"""Chart sources over HTTP against scripted loopback servers: where credentials go (redirects,
tag-list pagination, token services), a refused token said as such, and broken or cut-short
replies as network errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from reconciler.charts import helmrepo, http
from reconciler.charts.credentials import ChartCredentials, SourceCredentials
from reconciler.charts.oci import OciClient, OciReference
from reconciler.errors import ChartError
from tests.chartservers import Answer, ScriptedServer, make_test_ca, scripted_server

INDEX = b"apiVersion: v1\nentries: {}\n"
BASIC = http.basic_auth("deploy", "s3cret")


@pytest.fixture
def password(tmp_path: Path) -> Path:
    (tmp_path / "password").write_text("s3cret\n")
    return tmp_path / "password"


def test_authorization_follows_a_redirect_on_the_same_host_only(password: Path) -> None:
    with scripted_server() as repo, scripted_server() as elsewhere:
        elsewhere.routes["/index.yaml"] = (200, {}, INDEX)
        repo.routes["/moved/index.yaml"] = (301, {"Location": "/v2/index.yaml"}, b"")
        repo.routes["/away/index.yaml"] = (302, {"Location": f"{elsewhere.url}/index.yaml"}, b"")
        repo.routes["/v2/index.yaml"] = lambda h: (
            (200, {}, INDEX) if h.headers.get("Authorization") == BASIC else (401, {}, b"")
        )
        creds = ChartCredentials(
            (SourceCredentials(repo.url + "/", username="deploy", password_file=str(password)),)
        )
        assert helmrepo.fetch_index(repo.url + "/moved", creds, 5) == {}
        assert repo.seen == [("/moved/index.yaml", BASIC), ("/v2/index.yaml", BASIC)]
        assert helmrepo.fetch_index(repo.url + "/away", creds, 5) == {}
        assert elsewhere.seen == [("/index.yaml", None)]  # another port is another origin


def broken_chunked_reply(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"100\r\n" + b"x" * 20
    )


def not_http(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"\x15\x03\x01\x00\x02\x02\x50")  # a TLS alert, not a status line


def test_a_broken_or_cut_short_reply_is_a_network_error() -> None:
    with scripted_server() as server:
        server.routes["/short"] = (200, {"Content-Length": "100"}, b"x" * 10)
        server.routes["/short-error"] = (500, {"Content-Length": "100"}, b"x" * 10)
        server.routes["/chunked"] = broken_chunked_reply
        server.routes["/garbage"] = not_http
        server.routes["/whole"] = (200, {}, b"x" * 10)
        for path, reason in [
            ("/short", r"the download was cut short \(10 of 100 bytes\)"),
            ("/short-error", r"the download was cut short \(10 of 100 bytes\)"),
            ("/chunked", r"the connection broke \(closed after 0 bytes of the body\)"),
            ("/garbage", r"the connection broke \(BadStatusLine: "),
        ]:
            with pytest.raises(http.Unreachable, match=rf"127\.0\.0\.1:\d+{path}: {reason}"):
                http.get(server.url + path, timeout=5)
        assert http.get(server.url + "/whole", timeout=5).body == b"x" * 10


# ---- an OCI registry's authentication ---------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    ca, serving = make_test_ca(tmp_path_factory.mktemp("pki"))
    yield ca.cert, serving


def client(registry: ScriptedServer, ca: Path, **creds: str) -> OciClient:
    entry = SourceCredentials(f"oci://{registry.host}/", ca_file=str(ca), **creds)
    return OciClient(OciReference(registry.host, "team/demo"), entry, timeout=5)


def bearer_protected(
    realm: str, token: str, answer: Answer
) -> Any:  # a route: ``answer`` for ``Bearer token``, else a challenge naming ``realm``
    def route(handler: BaseHTTPRequestHandler) -> Answer:
        if handler.headers.get("Authorization") == f"Bearer {token}":
            return answer
        challenge = f'Bearer realm="{realm}",service="registry",scope="repository:team/demo:pull"'
        return 401, {"WWW-Authenticate": challenge}, b""

    return route


def tags(*names: str, link: str | None = None) -> Answer:
    headers = {"Link": f'<{link}>; rel="next"'} if link else {}
    return 200, headers, json.dumps({"name": "team/demo", "tags": list(names)}).encode()


def test_a_tag_list_page_on_another_host_gets_no_credentials(
    tls: tuple[Path, Any], password: Path
) -> None:
    ca, serving = tls
    with scripted_server(serving) as registry, scripted_server(serving) as other:
        other.routes["/v2/team/demo/tags/list"] = tags("2.0.0")
        registry.routes["/token"] = lambda h: (
            (200, {}, b'{"token": "T0KEN"}')
            if h.headers.get("Authorization") == BASIC
            else (401, {}, b"")
        )
        registry.routes["/v2/team/demo/tags/list"] = bearer_protected(
            f"{registry.url}/token",
            "T0KEN",
            tags("1.0.0", link=f"{other.url}/v2/team/demo/tags/list?last=1.0.0"),
        )
        found = client(registry, ca, username="deploy", password_file=str(password)).tags()
        assert found == ["1.0.0", "2.0.0"]
        assert ("/v2/team/demo/tags/list?n=1000", "Bearer T0KEN") in registry.seen
        assert other.seen == [("/v2/team/demo/tags/list?last=1.0.0", None)]


def test_a_password_goes_to_no_plain_http_token_service_but_on_loopback(
    tls: tuple[Path, Any], password: Path
) -> None:
    ca, serving = tls
    with scripted_server(serving) as registry, scripted_server() as plain:
        plain.routes["/token"] = (200, {}, b'{"token": "T0KEN"}')
        answer = tags("1.0.0")
        registry.routes["/v2/team/demo/tags/list"] = bearer_protected(
            "http://auth.example.invalid/token", "T0KEN", answer
        )
        with pytest.raises(
            ChartError,
            match=r"token service http://auth\.example\.invalid/token is plain http: "
            r"refusing to send the username/password there",
        ):
            client(registry, ca, username="deploy", password_file=str(password)).tags()
        # Anonymous, or a token service on this machine: nothing crosses the network in clear.
        registry.routes["/v2/team/demo/tags/list"] = bearer_protected(
            f"{plain.url}/token", "T0KEN", answer
        )
        assert client(registry, ca, username="deploy", password_file=str(password)).tags() == [
            "1.0.0"
        ]
        assert plain.seen[0][1] == BASIC


def test_a_refused_configured_token_is_said_so_not_swapped_for_an_anonymous_one(
    tls: tuple[Path, Any], tmp_path: Path
) -> None:
    ca, serving = tls
    (tmp_path / "token").write_text("EXPIRED\n")
    with scripted_server(serving) as registry:
        registry.routes["/token"] = (200, {}, b'{"token": "ANONYMOUS"}')  # a public repository
        registry.routes["/v2/team/demo/tags/list"] = bearer_protected(
            f"{registry.url}/token", "ANONYMOUS", tags("1.0.0")
        )
        with pytest.raises(
            ChartError, match=r"tags: HTTP 401 \(the registry refused the configured token"
        ):
            client(registry, ca, token_file=str(tmp_path / "token")).tags()
        assert registry.seen == [("/v2/team/demo/tags/list?n=1000", "Bearer EXPIRED")]
