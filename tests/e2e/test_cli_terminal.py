"""CLI conventions against the three real clusters of the devenv: ``--context``, ``-o`` on diff
and apply, colours only on a terminal without NO_COLOR, progress on a terminal only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.configrepo import configmap, deployment, unique, write_app, write_clusters
from tests.terminal import ANSI, run_cli

CLUSTERS = ["beijing-1", "beijing-2", "us-west-1"]


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write_clusters(root)
    return root


def test_context_picks_the_one_cluster_that_uses_it(repo_root: Path, kubeconfig: Path) -> None:
    app, ns = unique("ctx"), unique("ns")
    write_app(repo_root, app, [configmap("a", {"k": "1"})], namespace=ns)
    common = ("--kubeconfig", str(kubeconfig), "--instance", app)

    applied = run_cli("apply", str(repo_root), "--context", "us-west-1", "-o", "json", *common)
    assert applied.returncode == 0, applied
    [target] = json.loads(applied.stdout)
    assert (target["cluster"], target["created"]) == ("us-west-1", [f"ConfigMap/{ns}/a"])
    diff = run_cli("diff", str(repo_root), "-o", "json", *common)
    pending = {t["cluster"]: len(t["changes"]) for t in json.loads(diff.stdout)}
    assert pending == {"beijing-1": 1, "beijing-2": 1, "us-west-1": 0}

    unknown = run_cli("diff", str(repo_root), "--context", "mars-1", *common)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        f"error: --context mars-1: kubeconfig {kubeconfig} has no such context "
        "(contexts: beijing-1, beijing-2, us-west-1)"
    )
    both = run_cli(
        "apply", str(repo_root), "--context", "beijing-1", "--cluster", "us-west-1", *common
    )
    assert both.returncode == 2
    assert "cluster us-west-1 uses context us-west-1" in both.stderr
    explained = run_cli("explain", str(repo_root), "--app", app, "--context", "beijing-2")
    assert explained.returncode == 0, explained
    assert explained.stdout.startswith(f"app {app} on cluster beijing-2: placed")


def test_diff_and_apply_print_the_same_document_as_json_and_yaml(
    repo_root: Path, kubeconfig: Path
) -> None:
    app, ns = unique("doc"), unique("ns")
    write_app(repo_root, app, [deployment("web")], namespace=ns)
    common = ("--kubeconfig", str(kubeconfig), "--instance", app, "--cluster", "beijing-1")
    documents = {}
    for output in ("json", "yaml"):
        diff = run_cli("diff", str(repo_root), "-o", output, *common, stdout_tty=False)
        assert diff.returncode == 1, diff
        documents[output] = (json.loads if output == "json" else yaml.safe_load)(diff.stdout)
    assert documents["json"] == documents["yaml"]
    [change] = documents["json"][0]["changes"]
    assert (change["object"], change["action"]) == (f"Deployment.apps/{ns}/web", "create")

    applied = run_cli("apply", str(repo_root), "-o", "yaml", *common, stdout_tty=False)
    assert yaml.safe_load(applied.stdout)[0]["created"] == [f"Deployment.apps/{ns}/web"]
    wide = run_cli("diff", str(repo_root), "-o", "wide", *common, stdout_tty=False)
    assert wide.returncode == 0 and f"Deployment.apps/{ns}/web unchanged" in wide.stdout


def test_colours_and_progress_only_on_a_terminal(repo_root: Path, kubeconfig: Path) -> None:
    """A first apply of many objects shows a status line on a terminal's stderr, nothing when
    stderr is not a terminal; NO_COLOR removes every escape sequence, progress stays."""
    app, ns = unique("many"), unique("ns")
    write_app(repo_root, app, [configmap(f"c{i}", {"k": str(i)}) for i in range(60)], namespace=ns)
    common = ("--kubeconfig", str(kubeconfig), "--instance", app)

    colored = run_cli("apply", str(repo_root), *common, env={"NO_COLOR": None, "TERM": "xterm"})
    assert colored.returncode == 0, colored
    assert ANSI.search(colored.stdout)
    assert "\r[" in colored.stderr and "objects written" in colored.stderr
    assert "apply: 3/3 targets, 180/180 objects written" in colored.stderr

    write_app(repo_root, app, [configmap(f"c{i}", {"k": "x"}) for i in range(60)], namespace=ns)
    piped = run_cli("apply", str(repo_root), *common, stderr_tty=False)
    assert piped.returncode == 0, piped
    assert piped.stderr == "", piped.stderr
    assert "60 configured" in piped.stdout

    diff = run_cli("diff", str(repo_root), *common, env={"NO_COLOR": "1"})
    assert diff.returncode == 0, diff
    assert "diff: 3/3 targets" in diff.stderr
    assert not ANSI.search(diff.stdout + diff.stderr), diff
