"""A client for one cluster: the module that speaks the Kubernetes API.

A ``ClusterClient`` wraps one kubeconfig context: cached discovery (kind -> resource, scope),
server-side apply (real and dry-run are the same call with one flag), get, list, delete.
Responses are plain dicts; errors are the project's own (``KubeError`` and subclasses) with
the client's exception kept as the cause. Nothing here logs; callers do.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from reconciler import FIELD_MANAGER
from reconciler.errors import ClusterUnreachable, ConflictError, KubeError
from reconciler.kube.credentials import Credentials
from reconciler.kube.kubeconfig import Kubeconfig
from reconciler.objects import Manifest, ObjectRef, group_of

DEFAULT_TIMEOUT = 10.0
LIST_PAGE = 500


@dataclass(frozen=True)
class Resource:
    """Where a kind is served: ``/apis/<group>/<version>/[namespaces/<ns>/]<plural>``."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


class UnknownKind(KubeError):
    """The cluster does not serve this apiVersion/kind (yet: maybe its CRD is not installed)."""


_CONFLICT_MANAGER = re.compile(r'conflicts? with "([^"]+)"')


class ClusterClient:
    """A client for one cluster (one kubeconfig context). Thread-safe."""

    def __init__(
        self,
        name: str,
        *,
        context: str | None = None,
        kubeconfig: str | Credentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 16,
    ) -> None:
        self.name = name
        self.context = context or name
        self.timeout = timeout
        if kubeconfig is None or isinstance(kubeconfig, str):
            kubeconfig = Kubeconfig(kubeconfig)
        configuration = k8s.Configuration()
        try:
            kubeconfig.configure(self.context, configuration)
        except (ConfigException, OSError, ValueError) as err:
            raise KubeError(f"{kubeconfig.origin}: {err}", cluster=name) from err
        configuration.connection_pool_maxsize = max_connections
        configuration.retries = False  # our own backoff decides; a dead cluster fails fast
        self._api = k8s.ApiClient(configuration)
        self._lock = threading.Lock()
        self._groups: dict[str, str] | None = None  # group -> preferred version
        self._resources: dict[tuple[str, str], dict[str, Resource]] = {}  # (group, version)

    # ---- low level -----------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        obj: str | None = None,
    ) -> Any:
        try:
            response = self._api.rest_client.request(
                method,
                self._api.configuration.host + path,
                query_params=query,
                headers={
                    "Accept": "application/json",
                    "Content-Type": content_type,
                    **self._auth_headers(),
                },
                body=body,
                _request_timeout=(min(self.timeout, 5.0), self.timeout),
            )
        except ApiException as err:
            if err.status == 0:  # the client's way of saying TLS failed
                raise ClusterUnreachable(
                    f"TLS to {self._api.configuration.host} failed", cluster=self.name
                ) from err
            raise self._wrap(err, obj) from err
        except (urllib3.exceptions.HTTPError, OSError) as err:
            host = self._api.configuration.host
            raise ClusterUnreachable(
                f"unreachable at {host}: {_reason(err)}", cluster=self.name
            ) from err
        except ConfigException as err:  # refreshing credentials (exec plugin, token file)
            raise KubeError(f"credentials: {err}", cluster=self.name) from err
        data = response.data
        try:
            return json.loads(data) if data else None
        except ValueError as err:
            host = self._api.configuration.host
            raise KubeError(
                f"{host} answered {method} {path} with something that is not JSON: is it a "
                "Kubernetes API server?",
                cluster=self.name,
                obj=obj,
            ) from err

    def _auth_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        self._api.update_params_for_auth(headers, [], ["BearerToken"])
        return headers

    def _wrap(self, err: ApiException, obj: str | None) -> KubeError:
        message = _status_message(err)
        if err.status == 409 and "conflict" in message.lower() and "apply" in message.lower():
            managers = sorted(set(_CONFLICT_MANAGER.findall(message)))
            return ConflictError(message, cluster=self.name, obj=obj, managers=managers)
        if err.status in (502, 503, 504):
            return ClusterUnreachable(
                f"HTTP {err.status}: {message}", cluster=self.name, obj=obj, status=err.status
            )
        if err.status == 422 and "immutable" in message:
            message += (
                " (immutable field: delete the object to let it be recreated, "
                "or revert the change in Git)"
            )
        else:
            message = f"HTTP {err.status}: {message}"
        return KubeError(message, cluster=self.name, obj=obj, status=err.status)

    # ---- discovery -----------------------------------------------------------------------

    def ping(self) -> str:
        """Server version (``v1.36.3``); raises ClusterUnreachable when the cluster is down."""
        info = self._request("GET", "/version")
        return str(info.get("gitVersion", "?"))

    def resource(self, api_version: str, kind: str) -> Resource:
        """Resolve apiVersion + kind via cached discovery; re-discovers once on a miss."""
        group = group_of(api_version)
        version = api_version.rpartition("/")[2]
        for refresh in (False, True):
            found = self._lookup(group, version, kind, refresh)
            if found is not None:
                return found
        raise UnknownKind(f"{api_version} {kind} is not served by this cluster", cluster=self.name)

    def invalidate(self) -> None:
        """Forget discovery (after installing CRDs)."""
        with self._lock:
            self._groups = None
            self._resources.clear()

    def _lookup(self, group: str, version: str, kind: str, refresh: bool) -> Resource | None:
        key = (group, version)
        with self._lock:
            if refresh:
                self._resources.pop(key, None)
            cached = self._resources.get(key)
        if cached is None:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = self._request("GET", path)
            except KubeError as err:
                if err.status != 404:
                    raise
                listing = {"resources": []}
            cached = {
                r["kind"]: Resource(group, version, r["kind"], r["name"], bool(r["namespaced"]))
                for r in listing.get("resources", [])
                if "/" not in r["name"]  # skip subresources
            }
            with self._lock:
                self._resources[key] = cached
        return cached.get(kind)

    # ---- objects -------------------------------------------------------------------------

    def apply(self, manifest: Manifest, *, dry_run: bool = False, force: bool = False) -> Manifest:
        """Server-side apply with field manager ``reconciler``; ``dry_run`` changes nothing."""
        ref = ObjectRef.of(manifest)
        resource = self.resource(str(manifest["apiVersion"]), ref.kind)
        query = {"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"}
        if dry_run:
            query["dryRun"] = "All"
        result: Manifest = self._request(
            "PATCH",
            resource.path(ref.namespace, ref.name),
            query=query,
            body=manifest,
            content_type="application/apply-patch+yaml",
            obj=str(ref),
        )
        return result

    def get(self, resource: Resource, namespace: str, name: str) -> Manifest | None:
        """The live object, or None when it does not exist."""
        try:
            found: Manifest = self._request(
                "GET", resource.path(namespace, name), obj=f"{resource.kind}/{name}"
            )
        except KubeError as err:
            if err.status != 404:
                raise
            return None
        return found

    def list_objects(
        self, resource: Resource, namespace: str = "", label_selector: str | None = None
    ) -> list[Manifest]:
        """All objects of a resource (in ``namespace``, or everywhere), optionally filtered."""
        query = {"limit": str(LIST_PAGE)}
        if label_selector:
            query["labelSelector"] = label_selector
        items: list[Manifest] = []
        while True:  # paged, so a huge namespace never arrives as one response
            body = self._request("GET", resource.path(namespace), query=query)
            items += body.get("items", [])
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
            query["continue"] = token
        for item in items:  # list items omit these; callers expect full objects
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        return items

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete (background propagation); False if it was already gone."""
        body = {"kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            self._request(
                "DELETE",
                resource.path(namespace, name),
                body=body,
                obj=f"{resource.kind}/{namespace + '/' if namespace else ''}{name}",
            )
        except KubeError as err:
            if err.status != 404:
                raise
            return False
        return True

    def wait_established(
        self,
        crd_names: list[str],
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Wait until every named CRD reports condition Established=True."""
        crd = self.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        deadline = time.monotonic() + timeout
        pending = set(crd_names)
        while pending:
            for name in sorted(pending):
                live = self.get(crd, "", name)
                conditions = ((live or {}).get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    pending.discard(name)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise KubeError(
                    f"CRD {', '.join(sorted(pending))} not Established after {timeout:.0f}s",
                    cluster=self.name,
                )
            sleep(0.1)
        self.invalidate()

    def close(self) -> None:
        self._api.close()


def _status_message(err: ApiException) -> str:
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        return str(err.reason or err.status)
    return str(body.get("message") or err.reason or err.status)


def _reason(err: BaseException) -> str:
    """A short, credential-free reason for a connection failure."""
    text = str(getattr(err, "reason", None) or err)
    for marker in ("Connection refused", "timed out", "Name or service not known", "SSL"):
        if marker in text:
            return marker.lower()
    return text.split(":")[-1].strip()[:120] or type(err).__name__
