"""In-cluster mode against real kube-apiservers: a simulated pod (KUBERNETES_SERVICE_HOST/PORT and
the ServiceAccount's token, ca.crt and namespace files, with a token from the TokenRequest API)
with no kubeconfig reaches its management cluster (beijing-1) in-cluster and the member
clusters with the Secrets of its namespace, under the RBAC of deploy/.

beijing-1 is also a target (context `in-cluster`), beijing-2's Secret holds server + token +
ca.crt, us-west-1's a kubeconfig.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.devenv import controlplane
from reconciler.errors import KubeError
from reconciler.kube.incluster import detect
from reconciler.kube.members import CREDENTIALS_LABEL, MemberSecrets
from reconciler.kube.pool import Clients
from tests import configrepo
from tests.clusteraccess import DEPLOY, apply_kustomization, request_token, token_kubeconfig
from tests.e2e.daemon_rig import eventually

pytestmark = pytest.mark.e2e

SYSTEM = "reconciler-system"
MANAGEMENT = "beijing-1"


@dataclass
class Pod:
    """What a pod of deploy/ sees: its environment (no kubeconfig) and its tokens."""

    env: dict[str, str]
    tokens: list[str]


def _server(devenv: controlplane.DevEnvState, name: str) -> str:
    return next(c.server for c in devenv.clusters if c.name == name)


def _credentials_secret(name: str, data: dict[str, str]) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {CREDENTIALS_LABEL: "true"}},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _put_secret(api: client.ApiClient, body: dict[str, object]) -> None:
    core = client.CoreV1Api(api)
    name = str(body["metadata"]["name"])  # type: ignore[index]
    try:
        core.replace_namespaced_secret(name, SYSTEM, body)
    except ApiException as err:
        if err.status != 404:
            raise
        core.create_namespaced_secret(SYSTEM, body)


@pytest.fixture(scope="module")
def pod(
    kubeconfig: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pod]:
    apply_kustomization(kubeconfig, MANAGEMENT, DEPLOY)
    for name in ("beijing-1", "beijing-2", "us-west-1"):
        apply_kustomization(kubeconfig, name, DEPLOY / "member")
    root = tmp_path_factory.mktemp("pod")
    account = root / "serviceaccount"
    account.mkdir()
    own = request_token(api_clients[MANAGEMENT], SYSTEM, "reconciler")
    (account / "token").write_text(own)
    (account / "ca.crt").write_text(Path(devenv.ca).read_text())
    (account / "namespace").write_text(SYSTEM)

    ca = Path(devenv.ca).read_text()
    b2 = request_token(api_clients["beijing-2"], SYSTEM, "reconciler")
    _put_secret(
        api_clients[MANAGEMENT],
        _credentials_secret(
            "beijing-2", {"server": _server(devenv, "beijing-2"), "token": b2, "ca.crt": ca}
        ),
    )
    usw = request_token(api_clients["us-west-1"], SYSTEM, "reconciler")
    member_kubeconfig = token_kubeconfig(
        root / "usw", [("usw", _server(devenv, "us-west-1"))], devenv.ca, usw
    )
    _put_secret(
        api_clients[MANAGEMENT],
        _credentials_secret(
            "usw-credentials", {"name": "us-west-1", "kubeconfig": member_kubeconfig.read_text()}
        ),
    )
    member_kubeconfig.unlink()
    (root / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env |= {
        "HOME": str(root / "home"),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(_server(devenv, MANAGEMENT).rsplit(":", 1)[1]),
        "RECONCILER_SERVICE_ACCOUNT_DIR": str(account),
    }
    yield Pod(env=env, tokens=[own, b2, usw])


def _repo(root: Path, app: str, namespace: str) -> Path:
    configrepo.write_clusters(root)
    management = root / "clusters" / f"{MANAGEMENT}.yaml"
    cluster = yaml.safe_load(management.read_text())
    cluster["spec"]["context"] = "in-cluster"
    management.write_text(yaml.safe_dump(cluster))
    configrepo.write_app(
        root, app, [configrepo.configmap(app, {"k": "v"}), configrepo.deployment(app)],
        namespace=namespace,
    )  # fmt: skip
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.test"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "app"]):
        subprocess.run(["git", "-C", str(root), *identity, *args], check=True)
    return root


def test_a_pod_without_kubeconfig_reconciles_management_and_member_clusters(
    pod: Pod, api_clients: dict[str, client.ApiClient], tmp_path: Path
) -> None:
    app, namespace = configrepo.unique("incluster"), configrepo.unique("incluster")
    repo = _repo(tmp_path / "repo", app, namespace)
    once = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--once", "--repo", str(repo),
         "--state-dir", str(tmp_path / "state"), "--instance", app],
        env=pod.env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert once.returncode == 0, once.stdout + once.stderr
    for name, api in api_clients.items():
        live = client.CoreV1Api(api).read_namespaced_config_map(app, namespace)
        assert live.metadata.labels["reconciler.io/app"] == app, name
    for token in pod.tokens:  # read, used, never logged
        assert token not in once.stdout and token not in once.stderr


def test_member_secrets_are_read_again_when_they_change(
    pod: Pod, devenv: controlplane.DevEnvState, api_clients: dict[str, client.ApiClient]
) -> None:
    account = detect(pod.env)
    assert account is not None and account.namespace == SYSTEM
    now = [0.0]
    source = MemberSecrets(account, timeout=10.0, interval=1.0, monotonic=lambda: now[0])
    clients = Clients(None, recheck=1.0, monotonic=lambda: now[0], source=source)
    management = api_clients[MANAGEMENT]
    try:
        assert clients.get("us-west-1", "us-west-1").ping()
        assert clients.get("beijing-1", "in-cluster").ping()
        with pytest.raises(KubeError, match="no Secret gives cluster 'extra'"):
            clients.get("extra", "extra")

        # A cluster added by a new Secret is reachable at the next check, no restart.
        token = request_token(api_clients["beijing-2"], SYSTEM, "reconciler")
        ca = Path(devenv.ca).read_text()
        extra = {"server": _server(devenv, "beijing-2"), "token": token, "ca.crt": ca}
        _put_secret(management, _credentials_secret("extra", extra))
        now[0] += 2
        assert clients.get("extra", "extra").ping()

        # Rotated to a bad token: the new client uses it (and the error does not show it).
        _put_secret(management, _credentials_secret("extra", extra | {"token": "bad-7f3e"}))
        now[0] += 2
        with pytest.raises(KubeError) as refused:
            clients.get("extra", "extra").ping()
        assert "401" in str(refused.value) and "bad-7f3e" not in str(refused.value)

        # Removed: that cluster has no credentials any more; the others are unaffected.
        client.CoreV1Api(management).delete_namespaced_secret("extra", SYSTEM)
        now[0] += 2
        with pytest.raises(KubeError, match="no Secret gives cluster 'extra'"):
            clients.get("extra", "extra")
        assert clients.get("us-west-1", "us-west-1").ping()
    finally:
        clients.close()


def test_without_rights_to_the_secrets_the_error_says_what_to_grant(
    pod: Pod, api_clients: dict[str, client.ApiClient], tmp_path: Path
) -> None:
    # A ServiceAccount of another namespace has no Role there: one clear line, no traceback.
    other = tmp_path / "sa"
    other.mkdir()
    core = client.CoreV1Api(api_clients[MANAGEMENT])
    name = configrepo.unique("nobody")
    core.create_namespaced_service_account(SYSTEM, {"metadata": {"name": name}})
    (other / "token").write_text(request_token(api_clients[MANAGEMENT], SYSTEM, name))
    account_dir = Path(pod.env["RECONCILER_SERVICE_ACCOUNT_DIR"])
    for file in ("ca.crt", "namespace"):
        (other / file).write_text((account_dir / file).read_text())
    env = pod.env | {"RECONCILER_SERVICE_ACCOUNT_DIR": str(other)}
    repo = _repo(tmp_path / "repo", name, name)
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", str(repo), "--instance", name],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot list the member cluster Secrets" in result.stderr
    assert "403" in result.stderr and "Traceback" not in result.stderr


def test_a_replica_in_a_pod_shares_through_leases_on_its_own_cluster_under_deploy_rbac(
    pod: Pod, api_clients: dict[str, client.ApiClient], tmp_path: Path
) -> None:
    app, namespace = configrepo.unique("replica"), configrepo.unique("replica")
    repo = _repo(tmp_path / "repo", app, namespace)
    log = tmp_path / "replica.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--repo", str(repo),
             "--state-dir", str(tmp_path / "state"), "--instance", app, "--listen",
             "127.0.0.1:0", "--shard-lease-namespace", SYSTEM, "--shard-lease-duration", "4s",
             "--shard-renew-period", "1s"],
            env=pod.env | {"POD_NAME": "reconciler-7d9f-x2"}, stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    leases = client.CoordinationV1Api(api_clients[MANAGEMENT])

    def holders() -> dict[str, str | None]:
        found = leases.list_namespaced_lease(SYSTEM, label_selector=f"reconciler.io/instance={app}")
        return {lease.metadata.name: lease.spec.holder_identity for lease in found.items}

    try:

        def applied() -> bool:
            for api in api_clients.values():
                try:
                    client.CoreV1Api(api).read_namespaced_config_map(app, namespace)
                except ApiException:
                    return False
            return True

        eventually(applied, 120, "applied by the replica")
        held = eventually(lambda: len(holders()) == 4 and holders(), 30)
        assert set(held.values()) == {"reconciler-7d9f-x2"}, held
        assert f"{app}.replica.reconciler-7d9f-x2" in held
    finally:
        process.terminate()
        assert process.wait(30) == 0, log.read_text()[-2000:]
    assert set(holders().values()) == {None}, "a clean stop gives every Lease back"
