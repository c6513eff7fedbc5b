"""Member cluster credentials read from Secrets (in-cluster mode): parsing, and what a broken
Secret does (fails its own cluster, says which Secret and key, never shows a value)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.config.config_exception import ConfigException

from reconciler.errors import ReconcilerError
from reconciler.kube.incluster import ServiceAccount, detect
from reconciler.kube.members import IN_CLUSTER, member_credentials

ACCOUNT = ServiceAccount(host="10.0.0.1", port="443", directory=Path("/sa"), namespace="rs")
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
TOKEN = "tok-3c1f9a0b"


def secret(secret_name: str, **data: str) -> dict[str, Any]:
    encoded = {k.replace("_", "."): base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"metadata": {"name": secret_name, "resourceVersion": "1"}, "data": encoded}


def configured(credentials: Any, context: str) -> k8s.Configuration:
    configuration = k8s.Configuration()
    credentials.configure(context, configuration)
    return configuration


def test_server_token_and_ca_make_a_context_named_after_the_secret() -> None:
    found = member_credentials(
        [secret("us-west-1", server="https://10.1.2.3:6443", token=TOKEN, ca_crt=CA)], ACCOUNT
    )
    assert found.contexts == [IN_CLUSTER, "us-west-1"]
    configuration = configured(found, "us-west-1")
    assert configuration.host == "https://10.1.2.3:6443"
    assert configuration.api_key["BearerToken"] == f"Bearer {TOKEN}"
    assert Path(configuration.ssl_ca_cert).read_text() == CA


def test_a_kubeconfig_key_uses_its_current_context_and_the_name_key_names_the_cluster() -> None:
    kubeconfig = {
        "clusters": [{"name": "c", "cluster": {"server": "https://10.9.9.9"}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "other", "context": {"cluster": "c", "user": "u", "namespace": "x"}},
            {"name": "main", "context": {"cluster": "c", "user": "u"}},
        ],
        "current-context": "main",
    }
    found = member_credentials(
        [secret("creds-1", name="beijing-1", kubeconfig=yaml.safe_dump(kubeconfig))], ACCOUNT
    )
    assert found.contexts == ["beijing-1", IN_CLUSTER]
    assert configured(found, "beijing-1").host == "https://10.9.9.9"


def test_in_cluster_is_the_service_account() -> None:
    found = member_credentials([], ACCOUNT)
    assert found.contexts == [IN_CLUSTER]
    assert "in-cluster" in found.origin or "rs" in found.origin


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server": "https://x", "token": TOKEN}, "missing: ca.crt"),
        ({"server": "http://x", "token": TOKEN, "ca_crt": CA}, "must be an https:// URL"),
        ({"kubeconfig": "a: [", "token": TOKEN}, "keep one"),
        ({"kubeconfig": "a: ["}, "'kubeconfig' is not YAML"),
        ({"kubeconfig": "contexts: []"}, "has no contexts"),
    ],
)
def test_a_broken_secret_fails_its_own_cluster_naming_secret_and_key_never_a_value(
    data: dict[str, str], message: str
) -> None:
    good = secret("good", server="https://10.1.1.1", token=TOKEN, ca_crt=CA)
    found = member_credentials([secret("bad", **data), good], ACCOUNT)
    with pytest.raises(ConfigException) as err:
        configured(found, "bad")
    assert message in str(err.value) and "Secret rs/bad" in str(err.value)
    assert TOKEN not in str(err.value) and "BEGIN CERTIFICATE" not in str(err.value)
    assert configured(found, "good").host == "https://10.1.1.1"


def test_two_secrets_for_one_cluster_and_the_reserved_name_are_errors() -> None:
    found = member_credentials(
        [
            secret("a", name="c1", server="https://1.1.1.1", token=TOKEN, ca_crt=CA),
            secret("b", name="c1", server="https://2.2.2.2", token=TOKEN, ca_crt=CA),
            secret("in-cluster", server="https://3.3.3.3", token=TOKEN, ca_crt=CA),
        ],
        ACCOUNT,
    )
    with pytest.raises(ConfigException, match="also comes from Secret rs/a"):
        configured(found, "c1")
    with pytest.raises(ConfigException, match="no Secret gives cluster 'c9'"):
        configured(found, "c9")


def test_in_cluster_detection_needs_the_env_and_the_service_account_files(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert detect({}) is None
    with pytest.raises(ReconcilerError, match=r"has no token, ca\.crt, namespace"):
        detect({**env, "RECONCILER_SERVICE_ACCOUNT_DIR": str(tmp_path)})
    for name, text in (("token", TOKEN), ("ca.crt", CA), ("namespace", "rs\n")):
        (tmp_path / name).write_text(text)
    account = detect({**env, "RECONCILER_SERVICE_ACCOUNT_DIR": str(tmp_path)})
    assert account is not None
    assert (account.namespace, account.server) == ("rs", "https://[fd00::1]:443")
