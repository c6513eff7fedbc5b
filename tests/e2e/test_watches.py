"""Live state from watches (real kube-apiservers): a pass with nothing changed sends no dry-run,
a changed object is planned exactly as without watches, drift is seen and healed without waiting
for the drift interval, and a watch broken by an API server restart recovers."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from reconciler import APP_LABEL
from reconciler.config.load import load_repo
from reconciler.devenv import controlplane
from reconciler.engine import TargetOutcome, reconcile
from reconciler.kube.h2conn import PING_AFTER, PING_TIMEOUT
from reconciler.kube.pool import Clients
from reconciler.render import render_all
from reconciler.sync.model import Action
from tests.apimetrics import delta, request_counts
from tests.clusteraccess import grant
from tests.configrepo import configmap, deployment, unique, write_app, write_clusters
from tests.e2e.daemon_rig import (
    ConfigRepo,
    config_data,
    drift_records,
    eventually,
    running_daemon,
    synced_everywhere,
)
from tests.e2e.watching import account_kubeconfig, server_of, watching_clients


def _dry_runs(sent: Counter[tuple[str, str, str]]) -> int:
    return sum(n for (_, dry_run, _), n in sent.items() if dry_run)


def _plans(outcomes: list[TargetOutcome]) -> list[tuple[str, str, Action, list[Any]]]:
    found = []
    for outcome in outcomes:
        assert outcome.error is None, outcome.error
        assert outcome.plan is not None
        for change in outcome.plan.changes:
            fields = [(f.path, f.git, f.live) for f in change.fields]
            found.append((outcome.cluster, str(change.ref), change.action, fields))
    return sorted(found, key=lambda f: (f[0], f[1]))


def test_a_no_change_pass_sends_no_dry_run_and_a_changed_object_is_planned_exactly(
    tmp_path: Path, kubeconfig: Path, devenv: controlplane.DevEnvState
) -> None:
    root = tmp_path / "repo"
    write_clusters(root)
    app, namespace, instance = unique("quiet"), unique("ns"), unique("inst")
    objects = [configmap(f"c{i}", {"v": "1"}) for i in range(5)] + [deployment("web")]
    placement = {"clusters": ["beijing-1"]}
    write_app(root, app, objects, namespace=namespace, placement=placement)
    repo = load_repo(root)
    server = server_of(devenv, "beijing-1")

    def counts() -> Counter[tuple[str, str, str]]:
        # The API server's own requests (leases, endpoints) are not ours.
        found = request_counts(server, devenv.token, devenv.ca)
        ours = ("configmaps", "deployments", "namespaces")
        return Counter({k: n for k, n in found.items() if k[2] in ours})

    watching = Clients(str(kubeconfig), watch=True)
    polling = Clients(str(kubeconfig))
    try:
        first = reconcile(repo, render_all(repo), watching, "r1", apply=True, instance=instance)
        assert all(o.ok for o in first), [o.error for o in first]

        before = counts()
        again = reconcile(repo, render_all(repo), watching, "r1", apply=True, instance=instance)
        sent = delta(counts(), before)
        print(f"no-change pass over {len(objects)} objects sent {dict(sent)}")
        assert _dry_runs(sent) == 0, sent
        assert sum(sent.values()) == 0, sent  # live state, inventory and prune scan all watched
        assert all(c.action is Action.UNCHANGED for o in again for c in o.plan.changes)  # type: ignore[union-attr]

        # Without watches (and no memory of earlier passes): the same pass dry-runs each one.
        before = counts()
        plain = reconcile(repo, render_all(repo), polling, "r1", apply=False, instance=instance)
        sent = delta(counts(), before)
        print(f"the same pass without watches sent {dict(sent)}")
        assert _dry_runs(sent) == len(objects), sent

        # One object changed in Git: it alone is dry-run, and planned as without watches.
        changed = [configmap("c0", {"v": "2"}), *objects[1:]]
        write_app(root, app, changed, namespace=namespace, placement=placement)
        repo = load_repo(root)
        before = counts()
        diff = reconcile(repo, render_all(repo), watching, "r2", apply=False, instance=instance)
        sent = delta(counts(), before)
        assert _dry_runs(sent) == 1, sent
        plain = reconcile(repo, render_all(repo), polling, "r2", apply=False, instance=instance)
        assert _plans(diff) == _plans(plain)
        updates = [p for p in _plans(diff) if p[2] is not Action.UNCHANGED]
        assert updates == [
            ("beijing-1", f"ConfigMap/{namespace}/c0", Action.UPDATE, [("data.v", "2", "1")])
        ]
    finally:
        watching.close()
        polling.close()


def test_drift_on_a_watched_object_is_healed_without_waiting_for_the_drift_interval(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    repo = ConfigRepo(tmp_path / "repo")
    repo.clusters()
    app, namespace = unique("watched"), unique("ns")
    repo.app(app, namespace, {"clusters": ["beijing-2"]}, {"greeting": "hello"})
    sha = repo.commit("one app")
    state = tmp_path / "state"
    with running_daemon(repo, state, kubeconfig, watch=True, drift_interval=3600.0):
        eventually(synced_everywhere(state, app, ("beijing-2",), sha), 60, "first sync")
        api = api_clients["beijing-2"]
        eventually(lambda: config_data(api, namespace, app) == {"greeting": "hello"}, 30)
        time.sleep(1.0)  # let the pass after our own apply settle: what follows is drift

        edited = time.monotonic()
        client.CoreV1Api(api).patch_namespaced_config_map(
            app, namespace, {"data": {"greeting": "edited"}}, field_manager="kubectl-edit"
        )
        eventually(
            lambda: config_data(api, namespace, app) == {"greeting": "hello"},
            60,
            "the edit healed although the drift interval is an hour",
        )
        healed = time.monotonic() - edited
        records = eventually(lambda: drift_records(state, app), 30, "a drift record")
        print(f"drift healed {healed:.2f}s after the edit (drift interval 3600s)")
    assert any(r.cluster == "beijing-2" and "greeting" in str(r.fields) for r in records), records


def test_an_edit_is_heard_at_once_while_many_idle_watches_share_its_connection(
    kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    """Thirty idle watches and one that sees edits, all on one connection: each edit is heard
    within seconds, not at the next event of an idle watch (a bookmark, about a minute later:
    what happened when the streams of a connection took turns reading its socket)."""
    clients, heard = watching_clients(str(kubeconfig), timeout=10.0)
    try:
        cluster = clients.get("beijing-1", "beijing-1")
        configmaps = cluster.resource("v1", "ConfigMap")
        namespace = unique("idle")
        core = client.CoreV1Api(api_clients["beijing-1"])
        core.create_namespace({"metadata": {"name": namespace}})
        scopes = [(configmaps, namespace, f"idle-{i}") for i in range(30)]
        assert cluster.cached([*scopes, (configmaps, namespace, APP_LABEL)]) == [[]] * 31
        for n in range(3):
            core.create_namespaced_config_map(
                namespace, {"metadata": {"name": f"c{n}", "labels": {APP_LABEL: "x"}}}
            )
            eventually(
                lambda n=n: heard.seen("changed", f"ConfigMap/{namespace}/c{n}"),  # type: ignore[misc]
                10,
                f"edit {n} heard",
            )
    finally:
        clients.close()


@pytest.fixture
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.DevEnvState]:
    """One cluster of this test's own, so its API server can be killed and restarted."""
    directory = tmp_path_factory.mktemp("solo")
    state = controlplane.start(directory, ["solo"], controlplane.Launch(die_with_parent=True))
    try:
        yield state
    finally:
        controlplane.stop(directory)


def test_a_watch_broken_by_an_apiserver_restart_recovers(
    tmp_path: Path, solo: controlplane.DevEnvState
) -> None:
    root = tmp_path / "repo"
    write_clusters(root, {"solo": {}})
    app, namespace = unique("restart"), unique("ns")
    write_app(
        root,
        app,
        [configmap("c", {"v": "1"})],
        namespace=namespace,
        placement={"clusters": ["solo"]},
    )
    repo = load_repo(root)
    clients, heard = watching_clients(solo.kubeconfig, timeout=10.0)
    try:
        outcomes = reconcile(repo, render_all(repo), clients, "r1", apply=True)
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        live = clients.get("solo", "solo").live
        assert live is not None and set(live.watching().values()) == {"live"}

        before = len(heard.seen("changed"))
        victim = solo.clusters[0]
        os.kill(victim.pid, signal.SIGKILL)
        eventually(lambda: heard.seen("broken"), 30, "the watch notices the server is gone")
        controlplane.up(Path(solo.directory), ["solo"], controlplane.Launch(timeout=120))
        eventually(lambda: heard.seen("recovered"), 60, "the watch is listed again")
        assert set(live.watching().values()) == {"live"}

        api = config.new_client_from_config(config_file=solo.kubeconfig, context="solo")
        client.CoreV1Api(api).patch_namespaced_config_map(
            "c", namespace, {"data": {"v": "edited"}}, field_manager="kubectl-edit"
        )
        eventually(lambda: heard.seen("changed", f"ConfigMap/{namespace}/c"), 30, "the edit")
        # Listed again, nothing had changed: the edit (heard after the list) is the only change.
        assert [e.obj for e in heard.seen("changed")[before:]] == [f"ConfigMap/{namespace}/c"]
        again = reconcile(repo, render_all(repo), clients, "r1", apply=False)
        changes = [c for o in again for c in o.plan.changes]  # type: ignore[union-attr]
        assert [(str(c.ref), c.action) for c in changes] == [
            (f"ConfigMap/{namespace}/c", Action.UPDATE)
        ]
        assert [(f.path, f.git, f.live, f.manager) for f in changes[0].fields] == [
            ("data.v", "1", "edited", "kubectl-edit")
        ]
    finally:
        clients.close()


def test_a_watch_on_a_server_that_froze_without_a_word_is_noticed_by_its_pings(
    tmp_path: Path, solo: controlplane.DevEnvState
) -> None:
    """SIGSTOP: the socket stays open and nothing arrives (as behind a dropped route). The
    watch's connection gets no answer to its ping and fails, so the scope is listed again once
    the server is back, instead of trusting what it holds for the rest of a long watch."""
    clients, heard = watching_clients(solo.kubeconfig, timeout=10.0)
    victim = solo.clusters[0]
    try:
        cluster = clients.get("solo", "solo")
        configmaps = cluster.resource("v1", "ConfigMap")
        assert cluster.cached([(configmaps, "default", APP_LABEL)]) == [[]]
        api = config.new_client_from_config(config_file=solo.kubeconfig, context="solo")
        client.CoreV1Api(api).create_namespaced_config_map(
            "default", {"metadata": {"name": "alive", "labels": {APP_LABEL: "x"}}}
        )
        eventually(lambda: heard.seen("changed", "alive"), 10, "the watch is open")
        os.kill(victim.pid, signal.SIGSTOP)
        try:
            broken = eventually(
                lambda: heard.seen("broken"),
                PING_AFTER + PING_TIMEOUT + 30,
                "the frozen server's watch is given up",
            )
            assert "ping" in broken[0].reason, broken
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        eventually(lambda: heard.seen("recovered"), 60, "the watch is listed again")
    finally:
        clients.close()


def test_a_cluster_that_forbids_watching_is_polled_and_still_skips_settled_dry_runs(
    tmp_path: Path,
    kubeconfig: Path,
    devenv: controlplane.DevEnvState,
    api_clients: dict[str, client.ApiClient],
) -> None:
    api = api_clients["us-west-1"]
    who = unique("nowatch")
    verbs = ["get", "list", "create", "patch", "update", "delete"]  # no "watch"
    rules = [{"apiGroups": [""], "resources": ["configmaps", "namespaces"], "verbs": verbs}]
    grant(api, who, rules, {"kind": "ServiceAccount", "name": who, "namespace": "default"})
    limited = account_kubeconfig(api, devenv, "us-west-1", who, tmp_path / "limited")
    root = tmp_path / "repo"
    write_clusters(root, {"us-west-1": {}})
    app, namespace = unique("polled"), unique("ns")
    objects = [configmap(f"c{i}", {"v": "1"}) for i in range(3)]
    write_app(root, app, objects, namespace=namespace, placement={"clusters": ["us-west-1"]})
    repo = load_repo(root)
    clients, heard = watching_clients(str(limited))
    try:
        first = reconcile(repo, render_all(repo), clients, "r1", apply=True)
        assert all(o.ok for o in first), [o.error for o in first]
        assert heard.seen("unwatchable")
        assert all("403" in e.reason for e in heard.seen("unwatchable")), heard.events
        before = request_counts(server_of(devenv, "us-west-1"), devenv.token, devenv.ca)
        again = reconcile(repo, render_all(repo), clients, "r1", apply=True)
        sent = delta(
            request_counts(server_of(devenv, "us-west-1"), devenv.token, devenv.ca), before
        )
        print(f"a polled no-change pass over {len(objects)} objects sent {dict(sent)}")
        assert all(c.action is Action.UNCHANGED for o in again for c in o.plan.changes)  # type: ignore[union-attr]
        assert sent[("LIST", "", "configmaps")] >= 1  # read by requests: polled
        assert _dry_runs(sent) == 0, sent  # settled: same content on both sides
    finally:
        clients.close()
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.delete_cluster_role_binding(who)
        rbac.delete_cluster_role(who)
