"""deploy/ against real kube-apiservers: the manifests apply cleanly (server-side dry-run, then
for real, with the kubectl command the README gives), and the RBAC they grant is enough for the
reconciler's own calls and no more (checked with tokens of the ServiceAccount itself).

The management cluster here is beijing-1, the member (cluster-wide ClusterRole) beijing-2, the
namespaced member us-west-1. Applying the same manifests again in another test is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from reconciler.cli.main import cli
from reconciler.devenv import controlplane
from tests import configrepo
from tests.clusteraccess import (
    DEPLOY,
    apply_kustomization,
    kubectl,
    request_token,
    token_kubeconfig,
)

pytestmark = pytest.mark.e2e

SYSTEM = "reconciler-system"
ApiCall = Callable[[], Any]


def sa_client(
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
    cluster: str,
    path: Path,
) -> tuple[client.ApiClient, Path]:
    """An ApiClient (and a kubeconfig) authenticating as reconciler-system/reconciler."""
    token = request_token(api_clients[cluster], SYSTEM, "reconciler")
    server = next(c.server for c in devenv.clusters if c.name == cluster)
    kubeconfig = token_kubeconfig(path, [(cluster, server)], devenv.ca, token)
    return config.new_client_from_config(config_file=str(kubeconfig), context=cluster), kubeconfig


def status_of(call: ApiCall) -> int:
    try:
        call()
    except ApiException as err:
        return int(err.status)
    return 200


def ensure_namespace(api: client.ApiClient, name: str) -> None:
    try:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    except ApiException as err:
        if err.status != 409:
            raise


@pytest.fixture(scope="module")
def management(kubeconfig: Path) -> str:
    out = apply_kustomization(kubeconfig, "beijing-1", DEPLOY)
    assert "deployment.apps/reconciler serverside-applied" in out
    return "beijing-1"


def test_management_manifests_apply_with_the_promised_pod_security(
    management: str, api_clients: dict[str, client.ApiClient]
) -> None:
    api = api_clients[management]
    deployment = client.AppsV1Api(api).read_namespaced_deployment("reconciler", SYSTEM)
    pod = deployment.spec.template.spec
    (container,) = pod.containers
    assert pod.service_account_name == "reconciler"
    assert pod.security_context.run_as_non_root is True
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert container.liveness_probe.http_get.path == "/healthz"
    assert container.readiness_probe.http_get.path == "/readyz"
    assert "0.0.0.0:9465" in container.args
    assert container.resources.requests and container.resources.limits
    mounts = {m.mount_path for m in container.volume_mounts}
    assert {"/var/lib/reconciler", "/tmp"} <= mounts
    service = client.CoreV1Api(api).read_namespaced_service("reconciler", SYSTEM)
    assert [(p.name, p.port) for p in service.spec.ports] == [("metrics", 9465)]


def test_management_role_allows_the_reconcilers_own_calls_and_nothing_else(
    management: str,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
    namespace: str,
    tmp_path: Path,
) -> None:
    admin = client.CoreV1Api(api_clients[management])
    admin.create_namespaced_secret(namespace, {"metadata": {"name": "other"}, "data": {}})
    sa, _ = sa_client(devenv, api_clients, management, tmp_path / "kubeconfig")
    core, leases = client.CoreV1Api(sa), client.CoordinationV1Api(sa)
    credentials = "reconciler.io/cluster-credentials"
    watch = {"watch": True, "timeout_seconds": 1, "_preload_content": False}  # raw event stream

    # Its own calls: member credentials (listed and watched by label), Leases, status ConfigMaps.
    assert status_of(lambda: core.list_namespaced_secret(SYSTEM, label_selector=credentials)) == 200
    assert status_of(lambda: core.list_namespaced_secret(SYSTEM, **watch)) == 200
    lease = {"metadata": {"name": f"lease-{namespace}"}, "spec": {"holderIdentity": "r-0"}}
    assert status_of(lambda: leases.create_namespaced_lease(SYSTEM, lease)) == 200
    assert status_of(lambda: leases.list_namespaced_lease(SYSTEM, label_selector="k=v")) == 200
    held = leases.read_namespaced_lease(f"lease-{namespace}", SYSTEM)
    held.spec.holder_identity = "r-1"
    assert (
        status_of(lambda: leases.replace_namespaced_lease(held.metadata.name, SYSTEM, held)) == 200
    )
    assert status_of(lambda: leases.delete_namespaced_lease(f"lease-{namespace}", SYSTEM)) == 200
    status = {"metadata": {"name": f"status-{namespace}"}, "data": {"k": "v"}}
    assert status_of(lambda: core.create_namespaced_config_map(SYSTEM, status)) == 200

    # No more: nothing outside its namespace, no Secret writes, no workloads, nothing cluster-wide.
    assert status_of(lambda: core.read_namespaced_secret("other", namespace)) == 403
    assert status_of(lambda: core.list_secret_for_all_namespaces()) == 403
    assert status_of(lambda: core.list_namespaced_config_map(namespace)) == 403
    secret = {"metadata": {"name": f"s-{namespace}"}, "data": {}}
    assert status_of(lambda: core.create_namespaced_secret(SYSTEM, secret)) == 403
    apps = client.AppsV1Api(sa)
    assert status_of(lambda: apps.list_namespaced_deployment(SYSTEM)) == 403
    assert status_of(lambda: core.list_namespace()) == 403
    assert status_of(lambda: core.list_node()) == 403


def _app_repo(root: Path, app: str, namespace: str) -> Path:
    configrepo.write_clusters(root)
    manifests = [
        configrepo.deployment(app),
        configrepo.service(app),
        configrepo.configmap(app, {"k": "v"}),
        configrepo.secret(app, "s3cret"),
    ]
    configrepo.write_app(root, app, manifests, namespace=namespace)
    return root


def _apply(repo: Path, cluster: str, kubeconfig: Path, instance: str) -> tuple[int, str]:
    """`reconciler apply` with its own instance, so it never prunes other tests' apps."""
    args = ["apply", str(repo), "--cluster", cluster, "--kubeconfig", str(kubeconfig)]
    result = CliRunner().invoke(cli, [*args, "--instance", instance])
    return result.exit_code, result.output


def test_member_clusterrole_lets_the_reconciler_apply_and_prune_an_app(
    kubeconfig: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
    tmp_path: Path,
) -> None:
    apply_kustomization(kubeconfig, "beijing-2", DEPLOY / "member")
    sa, sa_kubeconfig = sa_client(devenv, api_clients, "beijing-2", tmp_path / "kubeconfig")
    app, namespace = configrepo.unique("member"), configrepo.unique("member-ns")
    repo = _app_repo(tmp_path / "repo", app, namespace)

    code, output = _apply(repo, "beijing-2", sa_kubeconfig, app)
    assert code == 0, output
    admin = client.AppsV1Api(api_clients["beijing-2"])
    assert (
        admin.read_namespaced_deployment(app, namespace).metadata.labels["reconciler.io/app"] == app
    )

    # Prune: the ConfigMap leaves Git and is deleted with the same token.
    configrepo.write_app(
        repo, app, [configrepo.deployment(app), configrepo.service(app)], namespace=namespace
    )
    code, output = _apply(repo, "beijing-2", sa_kubeconfig, app)
    assert code == 0, output
    core = client.CoreV1Api(api_clients["beijing-2"])
    assert status_of(lambda: core.read_namespaced_config_map(app, namespace)) == 404

    # No more: cluster-scoped RBAC, CRDs and nodes are not what apps may contain.
    assert status_of(lambda: client.CoreV1Api(sa).list_node()) == 403
    binding = {
        "metadata": {"name": f"{app}-admin"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "admin",
        },
        "subjects": [{"kind": "User", "name": "mallory"}],
    }
    rbac = client.RbacAuthorizationV1Api(sa)
    assert status_of(lambda: rbac.create_cluster_role_binding(binding)) == 403


def test_namespaced_member_role_confines_the_reconciler_to_bound_namespaces(
    kubeconfig: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
    namespace: str,
    tmp_path: Path,
) -> None:
    # The variant binds namespace `apps` as shipped (README: one RoleBinding per namespace).
    ensure_namespace(api_clients["us-west-1"], "apps")
    apply_kustomization(kubeconfig, "us-west-1", DEPLOY / "member-namespaced")
    sa, sa_kubeconfig = sa_client(devenv, api_clients, "us-west-1", tmp_path / "kubeconfig")

    app = configrepo.unique("confined")
    ok = _app_repo(tmp_path / "ok", app, "apps")
    code, output = _apply(ok, "us-west-1", sa_kubeconfig, app)
    assert code == 0, output
    assert client.AppsV1Api(api_clients["us-west-1"]).read_namespaced_deployment(app, "apps")

    # An app in a namespace that is not bound fails, naming the object; nothing is written there.
    other = configrepo.unique("outside")
    outside = _app_repo(tmp_path / "no", other, namespace)
    code, output = _apply(outside, "us-west-1", sa_kubeconfig, other)
    assert code == 2
    assert "forbidden" in output.lower() and other in output
    admin = client.AppsV1Api(api_clients["us-west-1"])
    assert status_of(lambda: admin.read_namespaced_deployment(other, namespace)) == 404

    core = client.CoreV1Api(sa)
    assert status_of(lambda: core.list_namespaced_secret("kube-system")) == 403
    assert status_of(lambda: core.list_namespaced_secret(namespace)) == 403
    assert status_of(lambda: core.create_namespace({"metadata": {"name": f"{app}-x"}})) == 403


@pytest.mark.parametrize("component", ["git-ssh", "git-token"])
def test_the_readme_overlay_with_a_git_component_applies_and_mounts_the_credentials(
    management: str, kubeconfig: Path, tmp_path: Path, component: str
) -> None:
    base = os.path.relpath(DEPLOY, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [base],
                "components": [f"{base}/{component}"],
                "images": [{"name": "reconciler", "newName": "registry.example/r", "newTag": "1"}],
            }
        )
    )
    rendered = kubectl(kubeconfig, management, "kustomize", str(tmp_path))
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    wanted = {"git-ssh": "RECONCILER_GIT_SSH_KEY_FILE", "git-token": "RECONCILER_GIT_TOKEN_FILE"}
    assert env[wanted[component]].startswith("/etc/reconciler/git/")
    assert container["image"] == "registry.example/r:1"
    dry = kubectl(
        kubeconfig, management, "apply", "--server-side", "--dry-run=server", "-k", str(tmp_path)
    )
    assert "deployment.apps/reconciler serverside-applied (server dry run)" in dry


def test_the_replicas_component_runs_several_pods_sharing_through_leases(
    management: str, kubeconfig: Path, tmp_path: Path
) -> None:
    base = os.path.relpath(DEPLOY, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [base], "components": [f"{base}/replicas"]})
    )
    rendered = kubectl(kubeconfig, management, "kustomize", str(tmp_path))
    (deployment,) = [d for d in yaml.safe_load_all(rendered) if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}) for e in container["env"]}
    assert env["POD_NAME"] == {"fieldPath": "metadata.name"}
    assert env["RECONCILER_SHARD_LEASE_NAMESPACE"] == {"fieldPath": "metadata.namespace"}
    dry = kubectl(
        kubeconfig, management, "apply", "--server-side", "--dry-run=server", "-k", str(tmp_path)
    )
    assert "deployment.apps/reconciler serverside-applied (server dry run)" in dry
