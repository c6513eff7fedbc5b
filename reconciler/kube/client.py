"""A client for one cluster: the module that speaks the Kubernetes API.

A ``ClusterClient`` wraps one kubeconfig context: cached discovery (kind -> resource, scope),
server-side apply (real and dry-run are the same call with one flag), get, list, delete.
Responses are plain dicts; errors are the project's own (``KubeError`` and subclasses) with
the client's exception kept as the cause. Nothing here logs; callers do.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from reconciler import FIELD_MANAGER
from reconciler.errors import ClusterUnreachable, KubeError, RequestTimeout
from reconciler.kube.connection import Connection, CredentialsError
from reconciler.kube.credentials import Credentials
from reconciler.kube.errors import answer_error, transport_error
from reconciler.kube.h2conn import AnswerLost
from reconciler.kube.kubeconfig import Kubeconfig
from reconciler.kube.livecache import LiveCache
from reconciler.kube.scopes import LiveEvent, Scope, View
from reconciler.kube.served import (
    AGGREGATED,
    Resource,
    UnknownKind,
    aggregated_resources,
    resources_of,
    served_names,
)
from reconciler.kube.transport import IO, TRANSPORTS, Endpoint
from reconciler.kube.watches import RETRY_UNWATCHABLE
from reconciler.objects import Manifest, ObjectRef, group_of, object_name

# An SSA of a ~1 MB CRD took up to 21 s on a 2-core machine at load 15 (measured): a default
# that leaves room for that on a busy server.
DEFAULT_TIMEOUT = 60.0
PING_TIMEOUT = 15.0  # /version is tiny: a server silent this long is as good as down
LARGE_BODY = 1 << 20  # bodies above this are sent so that a refusal (413) can still be read
LIST_PAGE = 500


class ClusterClient:
    """A client for one cluster (one kubeconfig context). Thread-safe.

    Requests go over the process's shared HTTP/2 transport to the context's API server
    (``reconciler.kube.transport``): contexts reaching one server with one TLS identity share a
    connection.
    """

    def __init__(
        self,
        name: str,
        *,
        context: str | None = None,
        kubeconfig: str | Credentials | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        watch: bool = False,
        on_event: Callable[[LiveEvent], None] | None = None,
        retry_unwatchable: float = RETRY_UNWATCHABLE,
    ) -> None:
        """``watch``: reads of :meth:`cached` come from watches kept current in memory (for a
        long-running process; ``on_event`` hears what they see; a scope that cannot be watched
        is tried again after ``retry_unwatchable`` seconds)."""
        self.name = name
        self.context = context or name
        self.timeout = timeout
        if kubeconfig is None or isinstance(kubeconfig, str):
            kubeconfig = Kubeconfig(kubeconfig)
        try:
            self._connection = kubeconfig.connection(self.context)
            self._transport = TRANSPORTS.acquire(_endpoint(self._connection, self._auth_headers()))
        except (CredentialsError, OSError, ValueError) as err:
            raise KubeError(f"{kubeconfig.origin}: {err}", cluster=name) from err
        self._host = self._connection.host
        self._closed = False
        self._lock = threading.Lock()
        self._groups: dict[str, str] | None = None  # group -> preferred version
        self._resources: dict[tuple[str, str], dict[str, Resource]] = {}  # (group, version)
        self._capabilities: tuple[str, tuple[str, ...]] | None = None
        self.live = (
            LiveCache(
                name,
                self._transport,
                self._host,
                self._auth_headers,
                timeout,
                on_event,
                retry_unwatchable,
            )
            if watch
            else None
        )
        # What the last plans and applies settled, per object: (digest of what we apply,
        # content version of live). The same pair again needs no dry-run.
        self.settled: dict[ObjectRef, tuple[str, str]] = {}

    @property
    def server(self) -> str:
        return self._host

    def cached(
        self,
        scopes: list[tuple[Resource, str, str]],
        *,
        notify: bool = True,
        across_namespaces: bool = False,
    ) -> list[list[Manifest] | None]:
        """For each (resource, namespace, selector): its objects as the watches see them, or
        None when not watching (or the watch cannot tell now): read instead. ``notify``: their
        changes are reported to the listeners. ``across_namespaces``: one watch of the kind
        across namespaces serves all its namespaces (where RBAC allows it, else one each)."""
        if self.live is None:
            return [None] * len(scopes)
        views = []
        for res, namespace, selector in scopes:
            own = Scope(res.path(namespace), selector, res.api_version, res.kind, notify)
            if across_namespaces and res.namespaced and namespace:
                wide = Scope(res.path(), selector, res.api_version, res.kind, notify, True)
                views.append(View(wide, namespace, own))
            else:
                views.append(View(own))
        return self.live.items(views)

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
        read_timeout: float | None = None,
        accept: str = "application/json",
    ) -> Any:
        host = self._host
        read = read_timeout or self.timeout
        connect = min(read, 5.0)
        url = host + path + (f"?{urlencode(query)}" if query else "")
        payload = None if body is None else json.dumps(body).encode()
        try:
            headers = {"Accept": accept, **self._auth_headers()}
            if payload is not None:
                headers["Content-Type"] = content_type
            if payload is not None and len(payload) > LARGE_BODY:
                status, data = self._send_alone(method, url, payload, headers, read)
            else:
                sent = self._transport.send(
                    method,
                    url,
                    content=payload,
                    headers=headers,
                    read_timeout=read,
                    connect_timeout=connect,
                )
                # The transport's own timeouts answer first; this only guards against a stall.
                try:
                    status, data, _ = IO.call(sent, timeout=connect + 2 * read + 30)
                except AnswerLost:
                    # The server ended the connection (GOAWAY) before the answer, as an API
                    # server does after a request it does not authenticate: once more on a
                    # connection of its own, to read the answer.
                    status, data = self._send_alone(method, url, payload, headers, read)
        except CredentialsError as err:  # refreshing credentials (exec plugin, token file)
            raise KubeError(f"credentials: {err}", cluster=self.name) from err
        except (httpx.TransportError, OSError) as err:
            raise transport_error(err, host, self.name, method, path, read, connect, obj) from err
        if not 200 <= status <= 299:
            raise answer_error(status, data, self.name, obj)
        try:
            return json.loads(data) if data else None
        except ValueError as err:
            raise KubeError(
                f"{host} answered {method} {path} with something that is not JSON: is it a "
                "Kubernetes API server?",
                cluster=self.name,
                obj=obj,
            ) from err

    def _send_alone(
        self,
        method: str,
        url: str,
        payload: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, bytes]:
        """Send a request on an HTTP/1.1 connection of its own (closed after it) and read the
        answer even when the server stops reading early. For big bodies: an API server
        refusing a body over its limit answers 413 and closes the connection while the body is
        still being sent (over TLS the send then fails with an EOF before the answer is read)."""
        parts = urlsplit(url)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname or "",
                parts.port,
                timeout=timeout,
                context=self._transport.endpoint.ssl_context(),
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            # If the server closed while we were sending, its answer may still be there.
            with contextlib.suppress(
                ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError, ConnectionResetError
            ):
                conn.request(method, target, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def _auth_headers(self) -> dict[str, str]:
        return self._connection.headers()

    # ---- discovery -----------------------------------------------------------------------

    def ping(self) -> str:
        """Server version (``v1.36.3``); raises ClusterUnreachable when the cluster is down."""
        try:
            info = self._request("GET", "/version", read_timeout=min(self.timeout, PING_TIMEOUT))
        except RequestTimeout as err:  # not even /version answers: as good as unreachable
            raise ClusterUnreachable(err.message, cluster=self.name) from err
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
            self._capabilities = None

    def capabilities(self) -> tuple[str, tuple[str, ...]]:
        """What the cluster is, as Helm asks: its version and every served ``group/version``
        and ``group/version/Kind`` (cached until discovery is forgotten)."""
        with self._lock:
            cached = self._capabilities
        if cached is not None:
            return cached
        version = self.ping()
        served: set[str] = set()
        for path in ("/api", "/apis"):
            served |= served_names(self._request("GET", path, accept=AGGREGATED) or {})
        found = (version, tuple(sorted(served)))
        with self._lock:
            self._capabilities = found
        return found

    def served_kind(self, group: str, kind: str) -> Resource | None:
        """Where ``kind`` of ``group`` is served now under any version (the preferred one
        first), or None when no version serves it: an object stored under a version the
        cluster no longer serves is still reached through another."""
        path = f"/apis/{group}" if group else "/api"
        try:
            listing = self._request("GET", path)
        except KubeError as err:
            if err.status != 404:
                raise
            return None
        if group:
            preferred = str((listing.get("preferredVersion") or {}).get("version", ""))
            versions = [str(v["version"]) for v in listing.get("versions") or []]
            if preferred:
                versions = [preferred] + [v for v in versions if v != preferred]
        else:
            versions = [str(v) for v in listing.get("versions") or []]
        for version in versions:
            found = self._lookup(group, version, kind, refresh=True)
            if found is not None:
                return found
        return None

    def listable_kinds(self, namespaced: bool = True) -> list[Resource]:
        """Every kind the cluster lists, namespaced (or cluster-scoped), one version each (its
        group's preferred): from aggregated discovery (two requests), else one request per
        group."""
        found: dict[tuple[str, str], Resource] = {}
        for group, version, res in self._discovered_resources():
            kind, plural = str(res.get("kind", "")), str(res.get("name", ""))
            scoped = bool(res.get("namespaced"))
            if kind and "/" not in plural and scoped == namespaced and "list" in res["verbs"]:
                found.setdefault((group, kind), Resource(group, version, kind, plural, scoped))
        return sorted(found.values(), key=lambda r: (r.group, r.kind))

    def _discovered_resources(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(group, version, resource) of every served resource, preferred versions first, each
        resource as plain discovery has it (kind, name, namespaced, verbs)."""
        found = []
        for path in ("/api", "/apis"):
            listing = self._request("GET", path, accept=AGGREGATED) or {}
            aggregated = aggregated_resources(listing)
            if aggregated is not None:
                found += aggregated
                continue
            if path == "/api":
                versions = [("", str(v)) for v in listing.get("versions") or []]
            else:
                versions = [
                    (str(g["name"]), str((g.get("preferredVersion") or {}).get("version", "")))
                    for g in listing.get("groups") or []
                ]
            for group_name, version in versions:
                where = f"/apis/{group_name}/{version}" if group_name else f"/api/{version}"
                for res in self._request("GET", where).get("resources") or []:
                    found.append((group_name, version, {"verbs": [], **res}))
        return found

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
            cached = resources_of(group, version, listing)
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
        if not dry_run and self.live is not None:
            self.live.observe({resource.path(ref.namespace), resource.path()}, result)
        return result

    def patch_json(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        operations: list[dict[str, Any]],
        *,
        field_manager: str = FIELD_MANAGER,
        dry_run: bool = False,
    ) -> Manifest:
        """An RFC 6902 JSON patch (an Update by ``field_manager``); ``dry_run`` changes nothing."""
        query = {"fieldManager": field_manager}
        if dry_run:
            query["dryRun"] = "All"
        result: Manifest = self._request(
            "PATCH",
            resource.path(namespace, name),
            query=query,
            body=operations,
            content_type="application/json-patch+json",
            obj=object_name(resource.group, resource.kind, namespace, name),
        )
        if not dry_run and self.live is not None:
            self.live.observe({resource.path(namespace), resource.path()}, result)
        return result

    def get(self, resource: Resource, namespace: str, name: str) -> Manifest | None:
        """The live object, or None when it does not exist."""
        try:
            found: Manifest = self._request(
                "GET",
                resource.path(namespace, name),
                obj=object_name(resource.group, resource.kind, namespace, name),
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
                obj=object_name(resource.group, resource.kind, namespace, name),
            )
        except KubeError as err:
            if err.status != 404:
                raise  # (still there, as far as we know: the watches keep telling)
            deleted = False
        else:
            deleted = True
        if self.live is not None:
            self.live.forget({resource.path(namespace), resource.path()}, namespace, name)
        return deleted

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

    def stop_watching(self) -> None:
        """Close the watches; :meth:`cached` reads nothing until :meth:`resume_watching`
        (callers read themselves), the client still answers requests."""
        if self.live is not None:
            self.live.close()

    def resume_watching(self) -> None:
        with self._lock:
            closed = self._closed
        if self.live is not None and not closed:
            self.live.reopen()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop_watching()
        TRANSPORTS.release(self._transport)


def _endpoint(connection: Connection, auth: dict[str, str]) -> Endpoint:
    """What a context's connection is keyed by: server, TLS identity and credentials (an API
    server closes an HTTP/2 connection after a request fails authentication: a context with a
    bad token must not break the connection of the others)."""
    parts = urlsplit(connection.host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"server {connection.host!r} is not an http(s) URL")
    return Endpoint.of(
        f"{parts.scheme}://{parts.netloc}",
        ca_file=connection.ca_file,
        cert_file=connection.cert_file,
        key_file=connection.key_file,
        verify=connection.verify,
        server_name=connection.server_name,
        credentials=hashlib.sha256(json.dumps(auth, sort_keys=True).encode()).hexdigest(),
    )
