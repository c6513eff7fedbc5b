"""Access to the e2e clusters as the reconciler gets it: deploy/ applied with kubectl, tokens of
its ServiceAccount (TokenRequest API), kubeconfigs that use them."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml
from kubernetes import client

from reconciler.devenv import binaries

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def kubectl(kubeconfig: Path, context: str, *args: str, stdin: str | None = None) -> str:
    command = [
        str(binaries.ensure("kubectl")),
        f"--kubeconfig={kubeconfig}",
        f"--context={context}",
    ]
    result = subprocess.run(
        [*command, *args], input=stdin, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def apply_kustomization(kubeconfig: Path, context: str, directory: Path) -> str:
    """What README says, `kubectl apply --server-side -k DIR`, after a server-side dry-run of
    everything. A dry-run creates nothing, so namespaced objects of a namespace the
    kustomization itself creates would fail it: its Namespaces are applied first, for real."""
    rendered = kubectl(kubeconfig, context, "kustomize", str(directory))
    namespaces = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Namespace"]
    if namespaces:
        docs = yaml.safe_dump_all(namespaces)
        kubectl(kubeconfig, context, "apply", "--server-side", "-f", "-", stdin=docs)
    dry = kubectl(
        kubeconfig, context, "apply", "--server-side", "--dry-run=server", "-k", str(directory)
    )
    assert "serverside-applied (server dry run)" in dry, dry
    return kubectl(kubeconfig, context, "apply", "--server-side", "-k", str(directory))


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
            {"name": n, "cluster": {"server": s, "certificate-authority-data": ca}}
            for n, s in pairs
        ],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "sa"}} for n, _ in pairs],
        "current-context": pairs[0][0],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def grant(
    api: client.ApiClient,
    name: str,
    rules: list[dict[str, list[str]]],
    subject: dict[str, str],
    namespace: str | None = None,
) -> None:
    """A Role and RoleBinding called ``name`` in ``namespace`` (a ClusterRole and
    ClusterRoleBinding without one) granting ``rules`` to ``subject``."""
    rbac = client.RbacAuthorizationV1Api(api)
    kind = "Role" if namespace else "ClusterRole"
    role = {"metadata": {"name": name}, "rules": rules}
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [subject],
    }
    if namespace:
        rbac.create_namespaced_role(namespace, role)
        rbac.create_namespaced_role_binding(namespace, binding)
    else:
        rbac.create_cluster_role(role)
        rbac.create_cluster_role_binding(binding)
