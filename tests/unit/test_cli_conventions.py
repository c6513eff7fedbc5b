"""Terminal conventions of the CLI: ``version``, ``completion``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import RepoFactory
from repo_snippets import app, cluster

from reconciler import __version__
from reconciler.cli.main import cli
from reconciler.fields import FieldChange
from reconciler.store.db import Store
from reconciler.store.rows import State, StatusRow
from reconciler.toolchain import HELM_VERSION, KUBERNETES_VERSION


def test_version_names_the_client_and_the_pinned_tools() -> None:
    result = CliRunner().invoke(cli, ["version", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["reconciler"] == __version__
    assert data["tools"]["kubectl"] == KUBERNETES_VERSION
    assert data["tools"]["helm"] == HELM_VERSION
    text = CliRunner().invoke(cli, ["version"]).output
    assert f"reconciler {__version__}" in text and KUBERNETES_VERSION in text


def test_completion_scripts_complete_command_names() -> None:
    for shell in ("bash", "zsh", "fish"):
        result = CliRunner().invoke(cli, ["completion", shell])
        assert result.exit_code == 0, result.output
        assert "_RECONCILER_COMPLETE" in result.output
    env = dict(os.environ, _RECONCILER_COMPLETE="bash_complete")
    env.update(COMP_WORDS="reconciler sta", COMP_CWORD="1")
    code = "from reconciler.cli.main import main; main()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "plain,status" in out.stdout.split()
    assert CliRunner().invoke(cli, ["completion", "tcsh"]).exit_code == 2


NOW = datetime.now(UTC)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state dir with one synced and one failing target and one open drift."""
    directory = tmp_path / "state"
    with Store.open(directory) as store:
        store.record_revision("a" * 40, NOW, True, None)
        store.set_status(StatusRow("web", "beijing-1", State.SYNCED, "", "a" * 40, NOW, NOW))
        store.record_drift(
            "web",
            "beijing-1",
            "ConfigMap/web/web",
            "modified",
            [FieldChange("data.value", "1", "2", "kubectl-edit", NOW)],
            "a" * 40,
            NOW - timedelta(minutes=10),
        )
    return directory


def _run(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args)


def test_drift_refuses_an_app_or_cluster_it_has_never_seen(state: Path) -> None:
    result = _run(["drift", "--state-dir", str(state), "--app", "nosuchapp"])
    assert result.exit_code == 2
    assert "nosuchapp" in result.output and "apps: web" in result.output
    result = _run(["drift", "--state-dir", str(state), "--cluster", "mars-1"])
    assert result.exit_code == 2 and "clusters: beijing-1" in result.output
    assert _run(["drift", "--state-dir", str(state), "--app", "web"]).exit_code == 1


def test_drift_since_a_bare_number_says_the_format(state: Path) -> None:
    result = _run(["drift", "--state-dir", str(state), "--since", "5"])
    assert result.exit_code == 2
    assert "no unit" in result.output and "30m" in result.output
    assert _run(["drift", "--state-dir", str(state), "--since", "5m"]).exit_code == 0


def test_drift_table_names_its_drift_column_and_prints_yaml(state: Path) -> None:
    table = _run(["drift", "--state-dir", str(state)]).output
    assert "DRIFT" in table.splitlines()[0] and "KIND" not in table
    data = yaml.safe_load(_run(["drift", "--state-dir", str(state), "-o", "yaml"]).output)
    assert data == json.loads(_run(["drift", "--state-dir", str(state), "-o", "json"]).output)


def test_status_prints_yaml_and_its_exit_code_says_when_something_fails(state: Path) -> None:
    data = yaml.safe_load(_run(["status", "--state-dir", str(state), "-o", "yaml"]).output)
    assert data == json.loads(_run(["status", "--state-dir", str(state), "-o", "json"]).output)
    assert _run(["status", "--state-dir", str(state), "--exit-code"]).exit_code == 0
    with Store.open(state) as store:
        store.set_status(
            StatusRow("web", "us-west-1", State.FAILED, "conflict on Service/web", "a" * 40, NOW)
        )
    assert _run(["status", "--state-dir", str(state)]).exit_code == 0
    failing = _run(["status", "--state-dir", str(state), "--exit-code", "-o", "wide"])
    assert failing.exit_code == 1 and "conflict on Service/web" in failing.output


def test_context_names_one_cluster_of_the_repo(make_repo: RepoFactory) -> None:
    root = make_repo(
        {
            "clusters/a.yaml": cluster("a"),
            "clusters/b.yaml": cluster("b").replace("spec:\n", "spec:\n  context: shared\n"),
            "clusters/c.yaml": cluster("c").replace("spec:\n", "spec:\n  context: shared\n"),
            "apps/web/app.yaml": app(
                "web", "source: {manifests: m/}\nplacement: {clusters: [a, b, c]}"
            ),
            "apps/web/m/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        }
    )
    explain = ["explain", str(root), "--app", "web"]
    ok = _run([*explain, "--context", "a"])
    assert ok.exit_code == 0 and ok.output.startswith("app web on cluster a: placed"), ok.output
    unknown = _run([*explain, "--context", "mars"])
    assert unknown.exit_code == 2
    assert unknown.output.strip() == (
        "error: --context mars: no cluster of the repo uses it "
        "(contexts: a (a), shared (b), shared (c))"
    )
    several = _run([*explain, "--context", "shared"])
    assert several.exit_code == 2
    assert "clusters b, c all use it; name one with --cluster" in several.output
    assert _run([*explain, "--context", "shared", "--cluster", "c"]).exit_code == 0
    rendered = _run(["render", str(root), "--context", "a", "-o", "json"])
    assert [t["cluster"] for t in json.loads(rendered.output)] == ["a"]


def _commands(group: click.Group, ctx: click.Context) -> Iterator[click.Command]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield command
        if isinstance(command, click.Group):
            yield from _commands(command, ctx)


def test_every_option_read_from_the_environment_says_so_in_its_help() -> None:
    """``--help`` names the variable (``[env var: RECONCILER_STATE_DIR]``) of every option
    that reads one, so the README's table and the help agree."""
    ctx = click.Context(cli)
    silent = [
        f"{command.name} {option.opts[0]}"
        for command in _commands(cli, ctx)
        for option in command.params
        if isinstance(option, click.Option) and option.envvar and not option.show_envvar
    ]
    assert silent == []
    help_text = " ".join(CliRunner().invoke(cli, ["status", "--help"]).output.split())
    assert "[env var: RECONCILER_STATE_DIR; default:" in help_text
