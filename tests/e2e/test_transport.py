"""Transport errors name their cause: a timeout is a timeout, a TLS failure says why, an object
over the server's limit gets the server's 413 on every cluster (real kube-apiservers, and
loopback sockets that misbehave on purpose)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.config.load import load_repo
from reconciler.devenv import certs
from reconciler.engine import reconcile
from reconciler.errors import ClusterUnreachable
from reconciler.kube.client import ClusterClient
from reconciler.kube.pool import Clients
from reconciler.render import render_all
from tests.configrepo import configmap, unique, write_app, write_clusters
from tests.kubeconfigs import with_context


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_a_server_that_never_answers_is_reported_as_a_timeout_by_diff(
    tmp_path: Path, kubeconfig: Path, silent_port: int
) -> None:
    root = tmp_path / "repo"
    write_clusters(root, {"beijing-1": {}, "silent": {}})
    write_app(
        root,
        unique("app"),
        [configmap("c", {"a": "b"})],
        namespace=unique("ns"),
        placement={"clusters": ["beijing-1", "silent"]},
    )
    config = with_context(
        kubeconfig, tmp_path / "kc", "silent", server=f"https://127.0.0.1:{silent_port}"
    )
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "reconciler", "diff", str(root)),
            *("--kubeconfig", str(config), "--request-timeout", "1s"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "timed out after 1s" in out, out
    assert "unreachable" not in out.split("cluster silent", 1)[1].split("\n")[0], out
    assert "cluster beijing-1" in out  # the healthy cluster is still diffed


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _self_signed(
    tmp: Path, name: str, *, hosts: list[str], expired: bool = False
) -> tuple[Path, Path, bytes]:
    """A CA-signed serving certificate (and its CA) for a loopback TLS server."""
    ca_key, key = _key(), _key()
    now = datetime.datetime.now(datetime.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() else x509.DNSName(h)
        for h in hosts
    ]
    end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM)


def _tls_server(cert: Path, key: Path) -> tuple[int, socket.socket]:
    """A loopback TLS listener that completes handshakes (and then closes)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], listener


@pytest.mark.parametrize(
    ("case", "hosts", "expired", "cause"),
    [
        ("expired", ["127.0.0.1"], True, "certificate verify failed: certificate expired"),
        ("mismatch", ["other.example.com"], False, "certificate verify failed: hostname mismatch"),
    ],
)
def test_a_tls_failure_names_its_cause(
    tmp_path: Path,
    kubeconfig: Path,
    case: str,
    hosts: list[str],
    expired: bool,
    cause: str,
) -> None:
    cert, key, ca = _self_signed(tmp_path, case, hosts=hosts, expired=expired)
    port, listener = _tls_server(cert, key)
    try:
        config = with_context(
            kubeconfig, tmp_path / "kc", case, server=f"https://127.0.0.1:{port}", ca_pem=ca
        )
        with pytest.raises(ClusterUnreachable) as err:
            ClusterClient(case, kubeconfig=str(config)).ping()
    finally:
        listener.close()
    assert cause in str(err.value), str(err.value)


def test_a_server_signed_by_another_ca_is_an_unknown_ca(
    tmp_path: Path, kubeconfig: Path, devenv: Any
) -> None:
    other = certs.make_ca(tmp_path)
    port = next(c for c in devenv.clusters if c.name == "beijing-1").port
    server = f"https://127.0.0.1:{port}"
    config = with_context(
        kubeconfig, tmp_path / "kc", "other-ca", server=server, ca_pem=other.cert.read_bytes()
    )
    with pytest.raises(ClusterUnreachable) as err:
        ClusterClient("other-ca", kubeconfig=str(config)).ping()
    assert "certificate verify failed: unknown CA" in str(err.value), str(err.value)


def test_an_object_over_the_servers_limit_gets_its_413_on_every_cluster(
    tmp_path: Path, kubeconfig: Path
) -> None:
    root = tmp_path / "repo"
    write_clusters(root)
    app = unique("big")
    write_app(root, app, [configmap("huge", {"blob": "x"})], namespace=unique("ns"))
    repo = load_repo(root)
    rendered = render_all(repo)
    # The render refuses an object over 1.5 MiB (tests/unit/test_manifestcheck.py); this is the
    # server's own 413 for a body over its 3 MiB limit, read back over the transport.
    for target in rendered:
        assert target.rendered is not None, target.error
        (huge,) = target.rendered.objects
        huge["data"]["blob"] = "x" * (9 << 20)
    clients = Clients(str(kubeconfig))
    try:
        # An instance of its own: apps other tests left under the default one are not its own.
        instance = unique("i")
        outcomes = reconcile(repo, rendered, clients, "rev", apply=True, instance=instance)
    finally:
        clients.close()
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert outcome.error is None, outcome.error
        assert outcome.result is not None
        errors = [message for _, message in outcome.result.failed]
        assert errors and all("HTTP 413" in e and "too large" in e for e in errors), errors
