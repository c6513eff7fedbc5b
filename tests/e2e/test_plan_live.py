"""`reconciler plan --live` against real kube-apiservers: drift the merge would overwrite, and an
unreachable cluster marked while the others are still shown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from kubernetes import client

from reconciler.cli.main import cli
from reconciler.config.load import load_repo
from reconciler.devenv import controlplane
from reconciler.engine import reconcile
from reconciler.kube.pool import Clients
from reconciler.render import render_all
from tests.configrepo import configmap, deployment, unique, write_app, write_clusters

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_GIT_ENV},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def commit(root: Path, message: str) -> None:
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "-m", message)


def apply_work_tree(root: Path, kubeconfig: str, instance: str) -> None:
    """Sync what the work tree holds (the last commit) to every cluster; every target ok."""
    repo = load_repo(root)
    clients = Clients(kubeconfig)
    try:
        outcomes = reconcile(repo, render_all(repo), clients, "test", apply=True, instance=instance)
    finally:
        clients.close()
    for outcome in outcomes:
        assert outcome.ok and outcome.result is not None, outcome.error


def plan(root: Path, kubeconfig: str, instance: str, output: str) -> tuple[int, str]:
    args = ["plan", str(root), "--base", "HEAD~1", "--head", "HEAD", "--live"]
    args += ["--kubeconfig", kubeconfig, "--instance", instance, "-o", output]
    result = CliRunner().invoke(cli, args)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def live_of(data: dict[str, Any], app: str) -> dict[str, dict[str, Any]]:
    return {t["cluster"]: t for t in data["live"]["targets"] if t["app"] == app}


def test_plan_live_shows_drift_on_one_cluster_that_the_merge_would_overwrite(
    tmp_path: Path, kubeconfig: Path, api_clients: dict[str, client.ApiClient]
) -> None:
    app, ns = unique("plan"), unique("ns")
    root = tmp_path / "config"
    root.mkdir()
    git(root, "init", "--quiet")
    write_clusters(root)
    write_app(root, app, [deployment("web", replicas=3), configmap("c", {"v": "1"})], namespace=ns)
    commit(root, "base")
    write_app(root, app, [deployment("web", replicas=3), configmap("c", {"v": "2"})], namespace=ns)
    commit(root, "head: v=2")
    apply_work_tree(root, str(kubeconfig), instance=app)
    client.AppsV1Api(api_clients["us-west-1"]).patch_namespaced_deployment(
        "web", ns, {"spec": {"replicas": 7}}, field_manager="kubectl-edit"
    )

    code, out = plan(root, str(kubeconfig), app, "json")
    assert code == 1, out
    data = json.loads(out)
    [reviewed] = [a for a in data["apps"] if a["app"] == app]
    assert {c["cluster"]: [o["object"] for o in c["objects"]] for c in reviewed["clusters"]} == {
        "beijing-1": [f"ConfigMap/{ns}/c"],
        "beijing-2": [f"ConfigMap/{ns}/c"],
        "us-west-1": [f"ConfigMap/{ns}/c"],
    }
    live = live_of(data, app)
    assert live["beijing-1"]["changes"] == [] and live["beijing-2"]["changes"] == []
    [drift] = live["us-west-1"]["changes"]
    assert (drift["object"], drift["drift"], drift["self_heal"]) == (
        f"Deployment.apps/{ns}/web",
        "modified",
        True,
    )
    [replicas] = drift["fields"]
    assert (replicas["path"], replicas["live"], replicas["head"], replicas["manager"]) == (
        "spec.replicas",
        7,
        3,
        "kubectl-edit",
    )

    code, markdown = plan(root, str(kubeconfig), app, "markdown")
    assert code == 1
    section = markdown[markdown.index("### Live dry-run of head") :]
    assert f"- `us-west-1` / `{app}`: 1 change, 1 drifted" in section
    assert f"! Deployment.apps/{ns}/web drifted: the merge would overwrite it" in section
    assert "spec.replicas: git 3, live 7 (live set by kubectl-edit at " in section
    assert f"- `beijing-1` / `{app}`: no changes" in section


def test_plan_live_marks_a_stopped_cluster_and_still_shows_the_others(tmp_path: Path) -> None:
    plane = controlplane.start(
        tmp_path / "plane", ["alive", "stopped"], controlplane.Launch(die_with_parent=True)
    )
    try:
        root = tmp_path / "config"
        root.mkdir()
        git(root, "init", "--quiet")
        write_clusters(root, {"alive": {"env": "x"}, "stopped": {"env": "x"}})
        placement = {"selector": {"matchLabels": {"env": "x"}}}
        write_app(
            root,
            "greeting",
            [configmap("hello", {"who": "a"})],
            namespace="hi",
            placement=placement,
        )
        commit(root, "base")
        apply_work_tree(root, plane.kubeconfig, instance="plan-test")
        write_app(
            root,
            "greeting",
            [configmap("hello", {"who": "b"})],
            namespace="hi",
            placement=placement,
        )
        commit(root, "head: who=b")
        down = next(c for c in plane.clusters if c.name == "stopped")
        os.kill(down.pid, signal.SIGKILL)

        code, out = plan(root, plane.kubeconfig, "plan-test", "json")
        assert code == 2, out
        data = json.loads(out)
        assert data["has_errors"] is True
        live = live_of(data, "greeting")
        assert live["stopped"]["unreachable"] is True
        assert f"unreachable at https://127.0.0.1:{down.port}" in live["stopped"]["error"]
        [update] = live["alive"]["changes"]
        assert (update["object"], update["action"], update["drift"]) == (
            "ConfigMap/hi/hello",
            "update",
            None,
        )
        assert [(f["path"], f["live"], f["head"]) for f in update["fields"]] == [
            ("data.who", "a", "b")
        ]
        [reviewed] = data["apps"]
        assert [c["cluster"] for c in reviewed["clusters"] if c["objects"]] == ["alive", "stopped"]

        code, markdown = plan(root, plane.kubeconfig, "plan-test", "markdown")
        assert code == 2
        assert "- `stopped`: **unreachable** — `cluster stopped: unreachable at" in markdown
        assert "- `alive` / `greeting`: 1 change" in markdown
        assert "~ ConfigMap/hi/hello update" in markdown
        assert "1 cluster unreachable" in markdown.splitlines()[3]
    finally:
        controlplane.stop(tmp_path / "plane")
