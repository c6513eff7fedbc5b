"""The kubeconfig reader: simple contexts set up as the kubernetes package's loader sets them
up, without it; every other context by that loader."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.errors import ReconcilerError
from reconciler.kube.connection import Connection, CredentialsError, configured
from reconciler.kube.kubeconfig import Kubeconfig

CA = b"-----BEGIN CERTIFICATE-----\nnot really a CA\n-----END CERTIFICATE-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def kubeconfig(
    clusters: dict[str, dict[str, Any]],
    users: dict[str, dict[str, Any]],
    contexts: dict[str, tuple[str, str | None]],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [
            {"name": n, "context": {"cluster": c, **({"user": u} if u else {})}}
            for n, (c, u) in contexts.items()
        ],
        **extra,
    }


def seen(connection: Connection) -> dict[str, Any]:
    """What a connection amounts to (files by content: each side writes data to its own)."""

    def content(file: str | None) -> bytes | None:
        return Path(file).read_bytes() if file else None

    return {
        "host": connection.host,
        "ca": content(connection.ca_file),
        "cert": content(connection.cert_file),
        "key": content(connection.key_file),
        "verify": connection.verify,
        "server_name": connection.server_name,
        "headers": connection.headers(),
    }


def by_loader(config: Kubeconfig, context: str) -> dict[str, Any]:
    """The same context as the kubernetes package's loader sets it up."""
    return seen(configured(lambda configuration: config.configure(context, configuration)))


def test_simple_contexts_connect_as_the_kubernetes_loader_connects_them(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(CA)
    (tmp_path / "pki" / "client.crt").write_bytes(CERT)
    (tmp_path / "pki" / "client.key").write_bytes(KEY)
    path = write(
        tmp_path / "config",
        kubeconfig(
            {
                "token-ca-data": {
                    "server": "https://127.0.0.1:6443/",
                    "certificate-authority-data": b64(CA),
                },
                "cert-files": {
                    "server": "https://10.0.0.1:443",
                    "certificate-authority": "pki/ca.crt",  # relative to this file
                    "tls-server-name": "kubernetes.default",
                },
                "insecure": {"server": "https://[::1]:6443", "insecure-skip-tls-verify": True},
                "plain": {"server": "http://127.0.0.1:8080", "certificate-authority": "nowhere"},
            },
            {
                "token": {"token": "t0ken"},
                "cert-data": {"client-certificate-data": b64(CERT), "client-key-data": b64(KEY)},
                "cert-files": {
                    "client-certificate": str(tmp_path / "pki" / "client.crt"),
                    "client-key": "pki/client.key",
                },
            },
            {
                "devenv": ("token-ca-data", "token"),
                "certs-in-data": ("token-ca-data", "cert-data"),
                "certs-in-files": ("cert-files", "cert-files"),
                "insecure": ("insecure", "token"),
                "plain-http": ("plain", "token"),
                "anonymous": ("token-ca-data", None),
                "unknown-user": ("token-ca-data", "nobody"),
            },
            **{"current-context": "devenv"},
        ),
    )
    config = Kubeconfig(str(path))
    assert config.contexts == sorted(
        [
            "devenv",
            "certs-in-data",
            "certs-in-files",
            "insecure",
            "plain-http",
            "anonymous",
            "unknown-user",
        ]
    )
    for context in config.contexts:
        assert seen(config.connection(context)) == by_loader(config, context), context
    devenv = seen(config.connection("devenv"))
    assert devenv["host"] == "https://127.0.0.1:6443"
    assert devenv["ca"] == CA
    assert devenv["headers"] == {"authorization": "Bearer t0ken"}
    files = seen(config.connection("certs-in-files"))
    assert (files["ca"], files["cert"], files["key"]) == (CA, CERT, KEY)
    assert files["server_name"] == "kubernetes.default"
    assert seen(config.connection("insecure"))["verify"] is False


def test_merged_files_keep_the_first_definition_and_their_own_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "b" / "pki").mkdir(parents=True)
    (tmp_path / "b" / "pki" / "ca.crt").write_bytes(CA)
    first = write(
        tmp_path / "a" / "config",
        kubeconfig(
            {"one": {"server": "https://one:6443", "certificate-authority-data": b64(CA)}},
            {"admin": {"token": "first"}},
            {"one": ("one", "admin")},
        ),
    )
    second = write(
        tmp_path / "b" / "config",
        kubeconfig(
            {
                "one": {"server": "https://shadowed:6443"},
                "two": {"server": "https://two:6443", "certificate-authority": "pki/ca.crt"},
            },
            {"admin": {"token": "second"}},
            {"one": ("two", "admin"), "two": ("two", "admin")},
        ),
    )
    monkeypatch.setenv(
        "KUBECONFIG", os.pathsep.join([str(first), str(tmp_path / "gone"), str(second)])
    )
    config = Kubeconfig()
    assert config.contexts == ["one", "two"]
    for context in config.contexts:
        assert seen(config.connection(context)) == by_loader(config, context), context
    one, two = seen(config.connection("one")), seen(config.connection("two"))
    assert (one["host"], one["headers"]) == ("https://one:6443", {"authorization": "Bearer first"})
    assert (two["host"], two["ca"]) == ("https://two:6443", CA)


def test_an_exec_plugin_context_is_set_up_by_the_kubernetes_loader(tmp_path: Path) -> None:
    plugin = tmp_path / "credential-plugin"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "from-the-plugin"},
    }
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}'\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }
    path = write(
        tmp_path / "config",
        kubeconfig(
            {"c": {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(CA)}},
            {"plugin": exec_user},
            {"c": ("c", "plugin")},
        ),
    )
    connection = Kubeconfig(str(path)).connection("c")
    assert connection.headers() == {"authorization": "Bearer from-the-plugin"}
    assert Path(str(connection.ca_file)).read_bytes() == CA


def test_contexts_the_loader_refuses_fail_with_its_words(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config",
        kubeconfig(
            {
                "missing-ca": {"server": "https://x:6443", "certificate-authority": "no/ca.crt"},
                "ok": {"server": "https://x:6443"},
            },
            {"admin": {"token": "t"}},
            {"missing-ca": ("missing-ca", "admin"), "no-cluster": ("absent", "admin")},
        ),
    )
    config = Kubeconfig(str(path))
    with pytest.raises(CredentialsError, match=r"File does not exist: .*no/ca\.crt"):
        config.connection("missing-ca")
    with pytest.raises(CredentialsError, match="Expected object with name absent"):
        config.connection("no-cluster")
    with pytest.raises(CredentialsError, match=r"it has no context 'other' \(contexts: "):
        config.connection("other")


def test_unreadable_kubeconfigs_are_one_error(tmp_path: Path) -> None:
    with pytest.raises(ReconcilerError, match="no such file"):
        Kubeconfig(str(tmp_path / "absent"))
    (tmp_path / "empty").write_text("")
    with pytest.raises(ReconcilerError, match=r"cannot be read: .*file is empty"):
        Kubeconfig(str(tmp_path / "empty"))
    (tmp_path / "broken").write_text("clusters: [\n")
    with pytest.raises(ReconcilerError, match="cannot be read"):
        Kubeconfig(str(tmp_path / "broken"))


def test_a_client_of_a_simple_context_does_not_import_the_kubernetes_package(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "config",
        kubeconfig(
            {"c": {"server": "http://127.0.0.1:1"}}, {"u": {"token": "t"}}, {"c": ("c", "u")}
        ),
    )
    script = (
        "import sys\n"
        "from reconciler.kube.pool import Clients\n"
        f"clients = Clients({str(path)!r})\n"
        "client = clients.get('c', 'c')\n"
        "assert client.server == 'http://127.0.0.1:1', client.server\n"
        "clients.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
