"""Real chart sources on loopback for tests: a Helm repository and an OCI registry.

The Helm repository is ``helm package`` + ``helm repo index`` output served by a small
http.server (optionally TLS from a test CA, optionally basic auth), in a thread of the test
process. The OCI registry is the CNCF distribution registry binary (``registry serve``) with TLS
from the same kind of CA, charts pushed with ``helm push``; it runs as a child process and is
stopped by its PID. A scripted server answers exactly as a test says, for what real servers
seldom do (a duplicate index entry, redirects, a challenge, pagination to another host).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from reconciler.devenv import binaries
from reconciler.devenv.certs import KeyPair, make_ca, make_serving_cert


def write_chart(directory: Path, name: str, version: str, marker: str = "") -> Path:
    """A minimal chart source directory: one ConfigMap carrying the chart version."""
    chart = directory / f"{name}-{version}-src" / name
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: '{version}'\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n"
        "data:\n  chartVersion: {{ .Chart.Version | quote }}\n"
        "  greeting: {{ .Values.greeting | quote }}\n"
        f"  marker: {marker!r}\n"
    )
    return chart


def helm_binary() -> str:
    """$RECONCILER_HELM (as for rendering), else the pinned helm."""
    return os.environ.get("RECONCILER_HELM") or str(binaries.ensure("helm"))


def helm_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for part in ("CACHE", "CONFIG", "DATA"):
        env[f"HELM_{part}_HOME"] = str(home / part.lower())
    env["HELM_REGISTRY_CONFIG"] = str(home / "registry.json")
    return env


def helm(args: list[str], home: Path) -> str:
    result = subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        env=helm_env(home),
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr}")
    return result.stdout + result.stderr


def package(chart: Path, out: Path, home: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    helm(["package", str(chart), "--destination", str(out)], home)
    version = next(
        line.split(":", 1)[1].strip()
        for line in (chart / "Chart.yaml").read_text().splitlines()
        if line.startswith("version:")
    )
    return out / f"{chart.name}-{version}.tgz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---- HTTP servers on loopback ----------------------------------------------------------------


class _Quiet:
    """A request handler mixin: no request log on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _reply(
    handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes = b""
) -> None:
    """One whole answer; Content-Length is the body's unless ``headers`` gives one."""
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    if "Content-Length" not in headers:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _serve(
    handler: Callable[..., BaseHTTPRequestHandler], tls: KeyPair | None
) -> tuple[ThreadingHTTPServer, str]:
    """Serve on a free loopback port (over TLS with ``tls``) in a thread; the server and its
    scheme://127.0.0.1:port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


# ---- a scripted server: exact answers, for what real servers seldom do -----------------------

Answer = tuple[int, dict[str, str], bytes]  # status, headers, body
Route = Callable[[BaseHTTPRequestHandler], Answer | None]


@dataclass
class ScriptedServer:
    """Answers GET ``path`` (query stripped) from ``routes``: an Answer, or a function of the
    request handler giving one (or None when it wrote the raw reply itself); 404 otherwise.
    ``seen`` lists the (path, Authorization) of every request."""

    url: str  # scheme://127.0.0.1:port (no trailing slash)
    routes: dict[str, Answer | Route]
    seen: list[tuple[str, str | None]]

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


@contextmanager
def scripted_server(tls: KeyPair | None = None) -> Iterator[ScriptedServer]:
    routes: dict[str, Answer | Route] = {}
    seen: list[tuple[str, str | None]] = []

    class Handler(_Quiet, BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            route = routes.get(self.path.split("?", 1)[0])
            answer = route(self) if callable(route) else route or (404, {}, b"not found")
            if answer is not None:
                _reply(self, *answer)

    server, url = _serve(Handler, tls)
    try:
        yield ScriptedServer(url, routes, seen)
    finally:
        server.shutdown()
        server.server_close()


# ---- a Helm repository ----------------------------------------------------------------------


@dataclass
class HelmRepoServer:
    """Serves ``root`` (charts + index.yaml); ``requests`` lists the paths asked for; while
    ``outage`` holds a status (503...), every request is answered with it."""

    root: Path
    url: str
    server: ThreadingHTTPServer
    requests: list[str] = field(default_factory=list)
    outage: list[int] = field(default_factory=list)  # [status] while failing, else []

    def fail(self, status: int | None) -> None:
        """Answer every request with ``status`` from now on (None: serve again)."""
        self.outage[:] = [status] if status is not None else []

    def index(self, home: Path) -> None:
        """(Re)build index.yaml for what ``root`` holds, with relative chart URLs."""
        helm(["repo", "index", str(self.root)], home)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def helm_repo(
    root: Path,
    tls: KeyPair | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> Iterator[HelmRepoServer]:
    root.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    outage: list[int] = []
    expected = (
        "Basic " + base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        if basic_auth
        else None
    )

    class Handler(_Quiet, SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            if outage:
                _reply(self, outage[0], {})
            elif expected is not None and self.headers.get("Authorization") != expected:
                _reply(self, 401, {"WWW-Authenticate": 'Basic realm="charts"'})
            else:
                super().do_GET()

    server, url = _serve(partial(Handler, directory=str(root)), tls)
    repo = HelmRepoServer(root, f"{url}/", server)
    repo.requests = requests
    repo.outage = outage
    try:
        yield repo
    finally:
        repo.stop()


@contextmanager
def demo_chart_repo(directory: Path, versions: Iterable[str]) -> Iterator[HelmRepoServer]:
    """A Helm repository on loopback serving the chart ``demo`` at each of ``versions``
    (charts written, packaged and indexed under ``directory``)."""
    with helm_repo(directory / "served") as server:
        for version in versions:
            package(write_chart(directory / "src", "demo", version), server.root, directory / "h")
        server.index(directory / "h")
        yield server


def make_test_ca(directory: Path) -> tuple[KeyPair, KeyPair]:
    """(CA, serving cert for 127.0.0.1) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory)
    return ca, make_serving_cert(ca, directory, "127.0.0.1")


# ---- an OCI registry ------------------------------------------------------------------------


@dataclass
class Registry:
    host: str  # 127.0.0.1:port
    process: subprocess.Popen[bytes]
    ca: Path
    log: Path

    def login(self, username: str, password: str, home: Path) -> None:
        helm(
            ["registry", "login", self.host, "--username", username, "--password", password,
             "--ca-file", str(self.ca)],
            home,
        )  # fmt: skip

    def push(self, archive: Path, path: str, home: Path) -> str:
        """``helm push`` ``archive`` under ``oci://host/path``; the chart's reference."""
        helm(["push", str(archive), f"oci://{self.host}/{path}", "--ca-file", str(self.ca)], home)
        name = archive.name.rsplit("-", 1)[0]
        return f"oci://{self.host}/{path}/{name}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


@contextmanager
def oci_registry(
    directory: Path, ca: KeyPair, serving: KeyPair, token_auth: tuple[str, str] | None = None
) -> Iterator[Registry]:
    """The distribution registry on a loopback port, TLS from the test CA.

    With ``token_auth`` it requires bearer tokens from a token service (in this process) that
    hands them out for that username and password only, as Docker Hub, GHCR or Harbor do.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / "config.yml"
    text = (
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {directory / 'data'}}}}}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"  tls: {{certificate: {serving.cert}, key: {serving.key}}}\n"
    )
    with contextlib.ExitStack() as stack:
        if token_auth is not None:
            realm = stack.enter_context(_token_service(serving, token_auth))
            text += (
                f"auth:\n  token:\n    realm: {realm}\n    service: {_SERVICE}\n"
                f"    issuer: {_ISSUER}\n    rootcertbundle: {ca.cert}\n"
            )
        config.write_text(text)
        yield stack.enter_context(_registry_process(directory, config, ca, port))


_SERVICE = "test-registry"
_ISSUER = "test-token-service"


@contextmanager
def _token_service(signer: KeyPair, login: tuple[str, str]) -> Iterator[str]:
    """A token service: ES256 JWTs with the signer's certificate in ``x5c``; the realm URL."""
    key = serialization.load_pem_private_key(signer.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(signer.cert.read_bytes())
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    expected = "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def token(scope: str) -> str:
        access = []
        if scope.startswith("repository:"):
            _, name, actions = scope.split(":", 2)
            access.append({"type": "repository", "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "x5c": [x5c]}
        claims = {
            "iss": _ISSUER, "sub": login[0], "aud": _SERVICE, "exp": now + 300, "nbf": now - 10,
            "iat": now, "jti": secrets.token_hex(8), "access": access,
        }  # fmt: skip
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    class Handler(_Quiet, BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                _reply(self, 401, {"WWW-Authenticate": 'Basic realm="token"'})
                return
            query = parse_qs(urlsplit(self.path).query)
            scopes = query.get("scope", [""])
            body = json.dumps({"token": token(scopes[0])}).encode()
            _reply(self, 200, {"Content-Type": "application/json"}, body)

    server, url = _serve(Handler, signer)
    try:
        yield f"{url}/token"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _registry_process(directory: Path, config: Path, ca: KeyPair, port: int) -> Iterator[Registry]:
    log = directory / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binaries.ensure("registry")), "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    registry = Registry(f"127.0.0.1:{port}", process, ca.cert, log)
    try:
        _wait_ready(f"https://127.0.0.1:{port}/", ca.cert, process, log)
        yield registry
    finally:
        registry.stop()


def _wait_ready(url: str, ca: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"registry exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, context=context, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"registry did not answer at {url}: {log.read_text()}")
