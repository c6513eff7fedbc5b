"""When watches end (real kube-apiservers): a cluster that leaves the inventory has its watches
closed; a DELETE the server refuses leaves the object in view; a scope whose WATCH is refused
is retried without listing it again or reporting it recovered each time; a kind whose CRD is
removed stops being watched without counting as an RBAC problem; a namespace's own watch,
needed while RBAC forbade watching across namespaces, is closed once that is allowed; a watch
whose connection a proxy closes resumes on a new one without listing again."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from reconciler.devenv import controlplane
from reconciler.errors import KubeError
from tests.apimetrics import open_watches, request_counts
from tests.clusteraccess import grant, token_kubeconfig
from tests.configrepo import crd_and_resource, unique
from tests.e2e.daemon_rig import ConfigRepo, eventually, running_daemon, synced_everywhere
from tests.e2e.watching import account_kubeconfig, server_of, watching_clients
from tests.tcpproxy import Proxy

pytestmark = pytest.mark.e2e

RETRY = 0.5  # seconds before a scope that cannot be watched is tried again (300 in a daemon)


def _watches(devenv: controlplane.DevEnvState, cluster: str) -> int:
    return sum(open_watches(server_of(devenv, cluster), devenv.token, devenv.ca).values())


def _lists(devenv: controlplane.DevEnvState, cluster: str, resource: str) -> int:
    counts = request_counts(server_of(devenv, cluster), devenv.token, devenv.ca)
    return sum(n for (verb, _, res), n in counts.items() if verb == "LIST" and res == resource)


def _drop_grant(api: client.ApiClient, name: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.delete_cluster_role_binding(name)
    rbac.delete_cluster_role(name)


def test_a_cluster_removed_from_the_inventory_has_its_watches_closed(
    tmp_path: Path, kubeconfig: Path, devenv: controlplane.DevEnvState
) -> None:
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters(("beijing-1", "us-west-1"))
    app, namespace = unique("leaving"), unique("ns")
    repo.app(app, namespace, {"clusters": ["beijing-1", "us-west-1"]}, {"k": "v"})
    sha = repo.commit("two clusters")
    before = {c: _watches(devenv, c) for c in ("beijing-1", "us-west-1")}
    with running_daemon(repo, tmp_path / "state", kubeconfig, watch=True):
        eventually(synced_everywhere(tmp_path / "state", app, ("beijing-1", "us-west-1"), sha), 60)
        eventually(lambda: _watches(devenv, "us-west-1") > before["us-west-1"], 30, "watching")
        (repo.root / "clusters" / "us-west-1.yaml").unlink()
        repo.app(app, namespace, {"clusters": ["beijing-1"]}, {"k": "v"})
        repo.commit("us-west-1 leaves the inventory")
        eventually(
            lambda: _watches(devenv, "us-west-1") == before["us-west-1"],
            30,
            "the departed cluster's watches closed",
        )
        assert _watches(devenv, "beijing-1") > before["beijing-1"]  # the other's kept


def test_a_delete_the_server_refuses_leaves_the_object_in_the_watched_view(
    tmp_path: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
    namespace: str,
) -> None:
    api = api_clients["us-west-1"]
    who = unique("nodelete")
    subject = {"kind": "ServiceAccount", "name": who, "namespace": "default"}
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
    grant(api, who, rules, subject)
    bound = account_kubeconfig(api, devenv, "us-west-1", who, tmp_path / "bound")
    client.CoreV1Api(api).create_namespaced_config_map(
        namespace, {"metadata": {"name": "kept"}, "data": {"k": "v"}}
    )
    clients, _ = watching_clients(str(bound))
    try:
        entry = clients.get("us-west-1", "us-west-1")
        configmaps = entry.resource("v1", "ConfigMap")

        def names() -> list[str]:
            [view] = entry.cached([(configmaps, namespace, "")])
            assert view is not None, "served from the watch"
            return [o["metadata"]["name"] for o in view]

        assert names() == ["kept"]
        with pytest.raises(KubeError) as refused:
            entry.delete(configmaps, namespace, "kept")
        assert refused.value.status == 403
        assert names() == ["kept"]  # still there: the view must say so
    finally:
        clients.close()
        _drop_grant(api, who)


def test_a_scope_whose_watch_is_refused_is_retried_without_a_list_or_a_flap(
    tmp_path: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
    namespace: str,
) -> None:
    api = api_clients["us-west-1"]
    who = unique("nowatch")
    subject = {"kind": "ServiceAccount", "name": who, "namespace": "default"}
    grant(api, who, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}], subject)
    bound = account_kubeconfig(api, devenv, "us-west-1", who, tmp_path / "bound")
    clients, heard = watching_clients(str(bound), retry_unwatchable=RETRY)
    try:
        entry = clients.get("us-west-1", "us-west-1")
        configmaps = entry.resource("v1", "ConfigMap")
        entry.cached([(configmaps, namespace, "")])
        eventually(lambda: heard.seen("unwatchable"), 15, "the WATCH refused")
        lists = _lists(devenv, "us-west-1", "configmaps")
        time.sleep(5 * RETRY)  # each retry tries the WATCH alone: refused
        assert _lists(devenv, "us-west-1", "configmaps") == lists  # no LIST for each retry
        assert not heard.seen("recovered"), heard.events
        assert len(heard.seen("unwatchable")) == 1, heard.events
        assert entry.cached([(configmaps, namespace, "")]) == [None]  # read by the caller

        more = unique("watch")
        watch = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["watch"]}]
        grant(api, more, watch, subject)
        try:
            eventually(lambda: heard.seen("recovered"), 30, "watched once allowed")
            assert entry.cached([(configmaps, namespace, "")]) == [[]]
        finally:
            _drop_grant(api, more)
    finally:
        clients.close()
        _drop_grant(api, who)


def test_a_kind_whose_crd_is_removed_is_no_longer_watched_nor_counted_as_forbidden(
    tmp_path: Path,
    kubeconfig: Path,
    api_clients: dict[str, client.ApiClient],
    namespace: str,
) -> None:
    group = f"{unique('g')}.example.test"
    crd, _ = crd_and_resource(group, "Widget", "w")
    clients, heard = watching_clients(str(kubeconfig))
    try:
        entry = clients.get("beijing-2", "beijing-2")
        entry.apply(crd)
        entry.wait_established([crd["metadata"]["name"]])
        widgets = entry.resource(f"{group}/v1", "Widget")
        assert entry.cached([(widgets, namespace, "")]) == [[]]
        assert entry.live is not None
        assert f"Widget in {namespace}" in entry.live.watching()

        client.ApiextensionsV1Api(api_clients["beijing-2"]).delete_custom_resource_definition(
            crd["metadata"]["name"]
        )
        eventually(lambda: heard.seen("missing"), 60, "the watch of a removed kind dropped")
        assert f"Widget in {namespace}" not in entry.live.watching()
        assert not heard.seen("unwatchable"), heard.events
    finally:
        clients.close()
        try:
            client.ApiextensionsV1Api(api_clients["beijing-2"]).delete_custom_resource_definition(
                crd["metadata"]["name"]
            )
        except ApiException as err:
            if err.status != 404:
                raise


def test_a_namespaces_own_watch_is_closed_once_the_kind_may_be_watched_across_namespaces(
    tmp_path: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
    namespace: str,
) -> None:
    api = api_clients["us-west-1"]
    who, wide = unique("narrow"), unique("wide")
    subject = {"kind": "ServiceAccount", "name": who, "namespace": "default"}
    verbs = ["get", "list", "watch"]
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}]
    grant(api, who, rules, subject, namespace)
    bound = account_kubeconfig(api, devenv, "us-west-1", who, tmp_path / "bound")
    clients, heard = watching_clients(str(bound), retry_unwatchable=RETRY)
    try:
        entry = clients.get("us-west-1", "us-west-1")
        assert entry.live is not None
        configmaps = entry.resource("v1", "ConfigMap")
        ask = [(configmaps, namespace, "")]
        assert entry.cached(ask, across_namespaces=True) == [[]]
        assert heard.seen("narrowed"), heard.events
        assert entry.live.watching().get(f"ConfigMap in {namespace}") == "live"

        grant(api, wide, rules, subject)  # now across namespaces too
        try:
            eventually(lambda: heard.seen("recovered"), 30, "watched across namespaces")
            assert entry.cached(ask, across_namespaces=True) == [[]]
            assert entry.live.watching() == {"ConfigMap": "live"}  # the namespace's own closed
        finally:
            _drop_grant(api, wide)
    finally:
        clients.close()
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.delete_namespaced_role_binding(who, namespace)
        rbac.delete_namespaced_role(who, namespace)


def test_a_watch_whose_connection_is_closed_resumes_on_a_new_one_without_a_list(
    tmp_path: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
    namespace: str,
) -> None:
    server = urlsplit(server_of(devenv, "us-west-1"))
    proxy = Proxy((server.hostname or "127.0.0.1", server.port or 443))
    through = token_kubeconfig(
        tmp_path / "proxied",
        [("us-west-1", f"https://127.0.0.1:{proxy.port}")],
        devenv.ca,
        devenv.token,
    )
    core = client.CoreV1Api(api_clients["us-west-1"])
    clients, heard = watching_clients(str(through))
    try:
        entry = clients.get("us-west-1", "us-west-1")
        configmaps = entry.resource("v1", "ConfigMap")
        ask = [(configmaps, namespace, "")]
        assert entry.cached(ask) == [[]]
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
        eventually(lambda: heard.seen("changed", "before"), 15, "the watch up")
        lists = _lists(devenv, "us-west-1", "configmaps")

        proxy.sever()  # as a load balancer closing its connections does
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "after"}})
        eventually(lambda: heard.seen("changed", "after"), 15, "heard on a new connection")
        [view] = entry.cached(ask)
        assert view is not None
        assert sorted(o["metadata"]["name"] for o in view) == ["after", "before"]
        assert proxy.accepted >= 2  # it did take a new connection
        assert not heard.seen("broken"), heard.events  # resumed, never out of date
        assert _lists(devenv, "us-west-1", "configmaps") == lists  # and not listed again
    finally:
        clients.close()
        proxy.close()
