"""Command-line front end: parses arguments, calls the stages, prints, picks the exit code.

Exit codes: 0 success / no change, 1 changes found (diff, plan, drift), 2 and above errors.
A user error is one line on stderr, never a traceback.

Start-up is kept cheap: this module imports click and nothing heavy. Each command's module
(and with it the kubernetes client, pydantic, rich, the review code) is imported only when
that command runs; ``--help`` lists the commands from the table below without importing them
(tests/unit/test_cli_start.py checks the table against the commands).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from reconciler import __version__
from reconciler.cli.output import emit, output_option

EXIT_ERROR = 2  # reconciler.cli.common.EXIT_ERROR, without importing it

# name -> (module, attribute, short help as `reconciler --help` lists it)
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "apply": (
        "reconciler.cli.sync",
        "apply",
        "One-shot sync: apply what changed, create namespaces, prune what left Git.",
    ),
    "diff": (
        "reconciler.cli.sync",
        "diff",
        "Show what apply would change on the live clusters (server-side apply dry-run).",
    ),
    "render": (
        "reconciler.cli.render",
        "render_command",
        "Print the desired objects per app and cluster, offline, as YAML (or JSON).",
    ),
    "explain": (
        "reconciler.cli.render",
        "explain_command",
        "Why an app is (not) placed on a cluster, and what each override changes there.",
    ),
    "validate": (
        "reconciler.cli.render",
        "validate_command",
        "Check a config repo (schema, references, templates, charts, renders); "
        "exit 2 when invalid.",
    ),
    "plan": (
        "reconciler.cli.review",
        "plan_command",
        "Show what merging HEAD into BASE changes, offline from Git (no credentials).",
    ),
    "run": (
        "reconciler.cli.run",
        "run_command",
        "Follow REPO and keep every cluster reconciled to it (the daemon).",
    ),
    "release": (
        "reconciler.cli.release",
        "release_command",
        "Let a revision the prune guard holds apply (recorded with your user name and the time).",
    ),
    "status": (
        "reconciler.cli.status",
        "status_command",
        "How fetching the repo goes, the newest revision, and the state of every app on "
        "every cluster, as the daemon last saw them.",
    ),
    "drift": (
        "reconciler.cli.drift",
        "drift_command",
        "Drift history: what differed from Git, who changed it, when, and whether it was "
        "corrected.",
    ),
    "wait": (
        "reconciler.cli.wait",
        "wait_command",
        "Wait until every target of --app is synced or healthy, reading the daemon's state.",
    ),
    "rollout": (
        "reconciler.cli.rollout",
        "rollout_group",
        "Progressive rollouts: see, approve, pause, resume or abort them.",
    ),
    "rollback": (
        "reconciler.cli.rollout",
        "rollback_command",
        "Pin APP (or some of its clusters) to an older revision until ``--release``.",
    ),
    "dev": (
        "reconciler.cli.dev",
        "dev",
        "Local real Kubernetes clusters (etcd, apiservers, controllers, kwok) for demo and tests.",
    ),
}


def load_command(name: str) -> click.Command:
    """The command ``name`` of LAZY_COMMANDS, importing its module."""
    module, attribute, _ = LAZY_COMMANDS[name]
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command)
    return command


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at a word to fit ``limit`` with "...", as click shortens a command's help."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "..."


class ReconcilerGroup(click.Group):
    """Loads each command on first use; turns every ReconcilerError into one line on stderr
    and exit code 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(limit)))
            else:
                help_text = LAZY_COMMANDS[name][2]
                rows.append((name, _shorten(help_text, limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from reconciler.errors import ReconcilerError

        try:
            return super().invoke(ctx)
        except ReconcilerError as err:
            for line in str(err).splitlines() or ["error"]:
                click.echo(f"error: {line}", err=True)
            sys.exit(EXIT_ERROR)


@click.group(
    cls=ReconcilerGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """GitOps delivery of the same applications to many Kubernetes clusters."""


@cli.command("version")
@output_option()
def version_command(output: str) -> None:
    """Print the client's version and the pinned versions of the tools it runs."""
    import platform

    from reconciler.devenv.binaries import BINARIES

    tools = {name: binary.version for name, binary in sorted(BINARIES.items())}
    data = {"reconciler": __version__, "python": platform.python_version(), "tools": tools}

    def table() -> str:
        lines = [f"reconciler {__version__} (python {data['python']})", "pinned tools:"]
        lines += [f"  {name:24} {version}" for name, version in tools.items()]
        return "\n".join(lines)

    emit(output, lambda: data, table)


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash:  eval "$(reconciler completion bash)"   (e.g. in ~/.bashrc)
    zsh:   eval "$(reconciler completion zsh)"    (e.g. in ~/.zshrc)
    fish:  reconciler completion fish > ~/.config/fish/completions/reconciler.fish
    """
    from click.shell_completion import get_completion_class

    completion = get_completion_class(shell)
    assert completion is not None
    click.echo(completion(cli, {}, "reconciler", "_RECONCILER_COMPLETE").source())


# Optional imports a reconciler process never uses, each about a tenth of a second of start-up:
# httpx's own command line (it loads rich and pygments) and trio (httpcore loads it whenever it
# is installed, as test tools install it; our HTTP runs on asyncio). Marked missing, the
# libraries take their own fallbacks.
UNUSED_OPTIONAL_MODULES = ("httpx._main", "trio")


def main() -> None:
    for name in UNUSED_OPTIONAL_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    cli(prog_name="reconciler")
