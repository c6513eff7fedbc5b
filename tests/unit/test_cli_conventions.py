"""Terminal conventions of the CLI: ``version``, ``completion``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from reconciler import __version__
from reconciler.cli.main import cli
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
