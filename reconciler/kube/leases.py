"""coordination.k8s.io/v1 Leases on the management cluster: list, read, create, conditional update.

Replicas of the daemon share the fleet through Leases (``reconciler.daemon.replicas``). This is
the only module that speaks to the Lease API. Every update is conditional on the
``resourceVersion`` last read (optimistic concurrency): when someone else wrote the Lease
meanwhile the server answers 409 and :class:`LeaseConflict` is raised, so two replicas can never
both believe they took the same Lease. Nothing here logs or decides; the daemon does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from reconciler.errors import ClusterUnreachable, KubeError
from reconciler.kube.credentials import Credentials

MANAGEMENT = "management"  # how errors name the management cluster
_NAME_UNSAFE = re.compile(r"[^a-z0-9.-]+")


class LeaseConflict(KubeError):
    """Someone else created or wrote the Lease first (HTTP 409): read it again, then decide."""


@dataclass(frozen=True)
class Lease:
    """The fields of a Lease the daemon uses (times as the server sent them, RFC 3339)."""

    name: str
    holder: str | None = None
    duration: int | None = None  # leaseDurationSeconds
    renew_time: str | None = None
    acquire_time: str | None = None
    transitions: int = 0
    resource_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> tuple[str | None, str | None, str]:
        """Changes whenever anyone writes the Lease (its resourceVersion does)."""
        return (self.holder, self.renew_time, self.resource_version)


def lease_name(*parts: str) -> str:
    """A valid object name from ``parts`` (lowercase, ``[a-z0-9.-]``, at most 253 characters)."""
    name = _NAME_UNSAFE.sub("-", ".".join(parts).lower()).strip(".-")
    return name[:253].rstrip(".-") or "lease"


def micro_time(at: datetime) -> str:
    """A MicroTime as the Lease API wants it: UTC, microseconds, ``Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseApi:
    """The Leases of one namespace on the management cluster (one kubeconfig context, or the
    pod's own cluster in-cluster). Thread-safe (one connection pool)."""

    def __init__(
        self, credentials: Credentials, context: str, namespace: str, *, timeout: float = 5.0
    ) -> None:
        self.namespace = namespace
        self.timeout = timeout
        self.context = context
        configuration = k8s.Configuration()
        try:
            credentials.configure(context, configuration)
        except (ConfigException, OSError, ValueError) as err:
            raise KubeError(
                f"{credentials.origin}: management context {context!r}: {err}",
                cluster=MANAGEMENT,
            ) from err
        configuration.retries = False  # the renew period is the retry
        self._api = k8s.CoordinationV1Api(k8s.ApiClient(configuration))

    def list(self, selector: str) -> list[Lease]:
        """Every Lease of the namespace matching the label ``selector``."""
        body = self._call(
            "list Leases",
            lambda **kw: self._api.list_namespaced_lease(
                self.namespace, label_selector=selector, **kw
            ),
        )
        return [_lease(item) for item in body.get("items") or []]

    def get(self, name: str) -> Lease | None:
        """The Lease, or None when it does not exist."""
        try:
            body = self._call(
                f"read Lease {name}",
                lambda **kw: self._api.read_namespaced_lease(name, self.namespace, **kw),
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return _lease(body)

    def create(self, lease: Lease) -> Lease:
        """Create ``lease``; LeaseConflict when it exists already."""
        body = self._call(
            f"create Lease {lease.name}",
            lambda **kw: self._api.create_namespaced_lease(self.namespace, _body(lease), **kw),
        )
        return _lease(body)

    def update(self, lease: Lease) -> Lease:
        """Write ``lease`` if nobody wrote it since ``lease.resource_version`` was read;
        LeaseConflict otherwise (and KubeError 404 when it was deleted)."""
        body = self._call(
            f"update Lease {lease.name}",
            lambda **kw: self._api.replace_namespaced_lease(
                lease.name, self.namespace, _body(lease), **kw
            ),
        )
        return _lease(body)

    def delete(self, lease: Lease) -> bool:
        """Delete ``lease`` if unchanged since read; False when already gone."""
        options = {"preconditions": {"resourceVersion": lease.resource_version}}
        try:
            self._call(
                f"delete Lease {lease.name}",
                lambda **kw: self._api.delete_namespaced_lease(
                    lease.name, self.namespace, body=options, **kw
                ),
            )
        except KubeError as err:
            if err.status == 404:
                return False
            raise
        return True

    def close(self) -> None:
        self._api.api_client.close()

    def _call(self, what: str, request: Any) -> dict[str, Any]:
        obj = f"namespace {self.namespace}"
        try:
            response = request(_preload_content=False, _request_timeout=self.timeout)
        except ApiException as err:
            message = _status_message(err)
            cls = LeaseConflict if err.status == 409 else KubeError
            raise cls(
                f"{what}: HTTP {err.status}: {message}",
                cluster=MANAGEMENT,
                obj=obj,
                status=err.status,
            ) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ClusterUnreachable(
                f"{what}: {type(err).__name__}: {_short(err)}", cluster=MANAGEMENT, obj=obj
            ) from err
        except ConfigException as err:  # refreshing credentials (a token file, say)
            raise KubeError(f"{what}: credentials: {err}", cluster=MANAGEMENT) from err
        data = response.data
        return dict(json.loads(data)) if data else {}


def _body(lease: Lease) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": lease.name, "labels": dict(lease.labels)}
    if lease.resource_version:
        metadata["resourceVersion"] = lease.resource_version
    spec: dict[str, Any] = {
        "holderIdentity": lease.holder,
        "leaseDurationSeconds": lease.duration,
        "acquireTime": lease.acquire_time,
        "renewTime": lease.renew_time,
        "leaseTransitions": lease.transitions,
    }
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {k: v for k, v in spec.items() if v is not None},
    }


def _lease(body: dict[str, Any]) -> Lease:
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return Lease(
        name=str(metadata.get("name", "")),
        holder=spec.get("holderIdentity") or None,
        duration=spec.get("leaseDurationSeconds"),
        renew_time=spec.get("renewTime"),
        acquire_time=spec.get("acquireTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str(metadata.get("resourceVersion", "")),
        labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
    )


def _status_message(err: ApiException) -> str:
    try:
        body = json.loads(err.body or b"{}")
    except (TypeError, ValueError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or err.reason or err.status)


def _short(err: BaseException) -> str:
    text = str(getattr(err, "reason", None) or err)
    return text.split(":")[-1].strip()[:120] or type(err).__name__
