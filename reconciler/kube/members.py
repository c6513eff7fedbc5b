"""Member clusters' credentials from Secrets in the reconciler's namespace (in a pod).

One Secret per member cluster, labelled ``reconciler.io/cluster-credentials``. The context it
provides (what a Cluster's ``spec.context`` names, by default the cluster's name) is its ``name``
key, else the Secret's name. It holds a ``kubeconfig`` (its current context is used), or
``server``, ``token`` and ``ca.crt``. Context ``in-cluster`` is the management cluster itself,
reached with the pod's ServiceAccount.

The Secrets are listed at start and again at most every ``interval`` seconds when the client pool
asks; a change (any resourceVersion) rebuilds the clients. Values never reach a log or an error:
errors name the Secret and the key only. A broken Secret fails its own cluster, no other.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from reconciler.errors import ReconcilerError
from reconciler.kube.client import ClusterClient
from reconciler.kube.connection import Connection, configured
from reconciler.kube.incluster import ServiceAccount
from reconciler.kube.served import Resource

if TYPE_CHECKING:
    from kubernetes import client as k8s

CREDENTIALS_LABEL = "reconciler.io/cluster-credentials"
IN_CLUSTER = "in-cluster"
_SECRETS = Resource(group="", version="v1", kind="Secret", plural="secrets", namespaced=True)


@dataclass
class MemberCredentials:
    """The contexts the Secrets give (each as a kubeconfig), or why one is unusable."""

    service_account: ServiceAccount
    kubeconfigs: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # context -> what is wrong (no values)

    @property
    def origin(self) -> str:
        return f"Secrets labelled {CREDENTIALS_LABEL} in namespace {self.service_account.namespace}"

    @property
    def contexts(self) -> list[str]:
        return sorted({IN_CLUSTER, *self.kubeconfigs, *self.errors})

    def connection(self, context: str) -> Connection:
        return configured(lambda configuration: self.configure(context, configuration))

    def configure(self, context: str, configuration: k8s.Configuration) -> None:
        from kubernetes.config.config_exception import ConfigException
        from kubernetes.config.kube_config import KubeConfigLoader

        if context == IN_CLUSTER:
            self.service_account.configure(configuration)
            return
        if context in self.errors:
            raise ConfigException(self.errors[context])
        kubeconfig = self.kubeconfigs.get(context)
        if kubeconfig is None:
            raise ConfigException(
                f"no Secret gives cluster {context!r} (clusters: {', '.join(self.contexts)})"
            )
        KubeConfigLoader(config_dict=kubeconfig, config_base_path=None).load_and_set(configuration)


def member_credentials(
    secrets: Iterable[dict[str, Any]], service_account: ServiceAccount
) -> MemberCredentials:
    """Read listed Secrets (as the API returns them: base64 ``data``). Pure."""
    found = MemberCredentials(service_account=service_account)
    source: dict[str, str] = {}  # context -> Secret it came from
    for secret in sorted(secrets, key=lambda s: str(s["metadata"]["name"])):
        name = str(secret["metadata"]["name"])
        where = f"Secret {service_account.namespace}/{name}"
        raw: dict[str, str] = secret.get("data") or {}
        context = name
        try:
            data = {key: _text(value, where, key) for key, value in raw.items()}
            context = data.get("name", "").strip() or name
            kubeconfig = _kubeconfig(data, where, context)
        except ValueError as err:
            found.errors[context] = str(err)
            continue
        if context == IN_CLUSTER:
            found.errors[context] = f"{where}: {IN_CLUSTER!r} is this cluster, not a member"
        elif context in source:
            found.kubeconfigs.pop(context, None)
            found.errors[context] = (
                f"{where}: cluster {context!r} also comes from Secret "
                f"{service_account.namespace}/{source[context]}; keep one"
            )
        else:
            source[context] = name
            found.kubeconfigs[context] = kubeconfig
    return found


def _text(value: str, where: str, key: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, TypeError):
        raise ValueError(f"{where}: key {key!r} is not base64-encoded text") from None


def _kubeconfig(data: dict[str, str], where: str, context: str) -> dict[str, Any]:
    if "kubeconfig" in data:
        if {"server", "token", "ca.crt"} & data.keys():
            raise ValueError(f"{where}: has 'kubeconfig' and 'server'/'token'/'ca.crt'; keep one")
        try:
            parsed = yaml.safe_load(data["kubeconfig"])
        except yaml.YAMLError:
            raise ValueError(f"{where}: key 'kubeconfig' is not YAML") from None
        contexts = parsed.get("contexts") if isinstance(parsed, dict) else None
        if not isinstance(contexts, list) or not contexts:
            raise ValueError(f"{where}: key 'kubeconfig' has no contexts")
        if not parsed.get("current-context"):
            if len(contexts) != 1 or not isinstance(contexts[0], dict):
                raise ValueError(f"{where}: key 'kubeconfig' has no current-context")
            parsed["current-context"] = contexts[0].get("name")
        return dict(parsed)
    missing = [key for key in ("server", "token", "ca.crt") if not data.get(key, "").strip()]
    if missing:
        raise ValueError(
            f"{where}: needs key 'kubeconfig', or 'server', 'token' and 'ca.crt' "
            f"(missing: {', '.join(missing)})"
        )
    server = data["server"].strip()
    if not server.startswith("https://"):
        raise ValueError(f"{where}: 'server' must be an https:// URL")
    ca = base64.b64encode(data["ca.crt"].encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": server, "certificate-authority-data": ca}}
        ],
        "users": [{"name": context, "user": {"token": data["token"].strip()}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }


class _InClusterOnly:
    """Credentials for the management cluster alone (to read the member Secrets)."""

    def __init__(self, service_account: ServiceAccount) -> None:
        self.service_account = service_account
        self.origin = service_account.origin
        self.contexts = [IN_CLUSTER]

    def connection(self, context: str) -> Connection:
        return configured(lambda configuration: self.configure(context, configuration))

    def configure(self, context: str, configuration: k8s.Configuration) -> None:
        self.service_account.configure(configuration)


class MemberSecrets:
    """The credential source of a pod: its ServiceAccount and the member Secrets."""

    def __init__(
        self,
        service_account: ServiceAccount,
        *,
        timeout: float,
        interval: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service_account = service_account
        self.timeout = timeout
        self.interval = interval
        self._monotonic = monotonic
        self._client: ClusterClient | None = None
        self._listed: list[dict[str, Any]] = []
        self._stamp: tuple[tuple[str, str], ...] | None = None
        self._listed_at = 0.0

    def files(self) -> list[Path]:
        return []

    def stamp(self) -> tuple[tuple[str, str], ...]:
        """Names and resourceVersions of the Secrets (listed at most every ``interval`` s)."""
        now = self._monotonic()
        if self._stamp is not None and now - self._listed_at < self.interval:
            return self._stamp
        if self._client is None:
            self._client = ClusterClient(
                IN_CLUSTER, kubeconfig=_InClusterOnly(self.service_account), timeout=self.timeout
            )
        namespace = self.service_account.namespace
        try:
            items = self._client.list_objects(_SECRETS, namespace, label_selector=CREDENTIALS_LABEL)
        except ReconcilerError as err:
            raise ReconcilerError(
                f"in-cluster: cannot list the member cluster Secrets (labelled "
                f"{CREDENTIALS_LABEL}) in namespace {namespace}: {err}"
            ) from err
        self._listed, self._listed_at = items, now
        self._stamp = tuple(
            sorted(
                (str(s["metadata"]["name"]), str(s["metadata"].get("resourceVersion")))
                for s in items
            )
        )
        return self._stamp

    def load(self) -> MemberCredentials:
        return member_credentials(self._listed, self.service_account)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
