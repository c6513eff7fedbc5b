"""ServiceAccount tokens from a real apiserver (TokenRequest API), and kubeconfigs that use them."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

import yaml
from kubernetes import client


def request_token(api: client.ApiClient, namespace: str, name: str, seconds: int = 3600) -> str:
    """A bound token of ServiceAccount ``namespace/name``, as a pod would get it."""
    body = {"spec": {"expirationSeconds": seconds}}
    answer = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, body)
    return str(answer.status.token)


def token_kubeconfig(
    path: Path, servers: Iterable[tuple[str, str]], ca_file: str, token: str
) -> Path:
    """A kubeconfig with one context per (name, server), all authenticating with ``token``."""
    ca = base64.b64encode(Path(ca_file).read_bytes()).decode()
    pairs = list(servers)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": n, "cluster": {"server": s, "certificate-authority-data": ca}} for n, s in pairs
        ],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "sa"}} for n, _ in pairs],
        "current-context": pairs[0][0],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
