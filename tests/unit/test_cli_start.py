"""The CLI starts fast: ``reconciler.cli.main`` imports no heavy library, and the table it lists
commands from (without importing them) matches the commands."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from reconciler.cli.main import LAZY_COMMANDS, cli, load_command

HEAVY = ("kubernetes", "pydantic", "rich", "yaml", "structlog", "reconciler.review", "git")


def _imported_after(code: str) -> set[str]:
    # A module marked missing (None) is not imported.
    probe = f"{code}\nimport sys\nprint('\\n'.join(n for n, m in sys.modules.items() if m))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return {
        name.split(".")[0] if not name.startswith("reconciler.") else name for name in out.split()
    }


def _heavy(modules: set[str]) -> list[str]:
    return sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in modules))


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert _heavy(_imported_after("import reconciler.cli.main")) == []


def test_help_and_version_import_no_heavy_library() -> None:
    for args in (["--help"], ["--version"]):
        code = (
            "import sys\nfrom reconciler.cli.main import cli\n"
            f"try:\n    cli({args!r}, prog_name='reconciler')\nexcept SystemExit:\n    pass"
        )
        assert _heavy(_imported_after(code)) == [], args


def test_a_sync_command_imports_neither_kubernetes_nor_optional_modules_it_never_uses() -> None:
    code = (
        "import sys\nsys.argv = ['reconciler', '--version']\n"
        "from reconciler.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import reconciler.cli.sync, reconciler.engine, reconciler.kube.pool, httpx, httpcore"
    )
    modules = _imported_after(code)
    assert "httpx" in modules and "httpcore" in modules
    assert sorted(modules & {"kubernetes", "trio", "rich", "pygments"}) == []


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_the_listed_help_is_the_commands_own(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    assert LAZY_COMMANDS[name][2] == command.get_short_help_str(1000)


def test_every_command_runs_through_the_lazy_group() -> None:
    ctx = click.Context(cli)
    assert set(LAZY_COMMANDS) <= set(cli.list_commands(ctx))
    for name in LAZY_COMMANDS:
        assert cli.get_command(ctx, name) is load_command(name)


def test_every_registered_command_is_in_the_lazy_table() -> None:
    """A command module's ``register_*`` function adds nothing main.py does not list."""
    import importlib
    import pkgutil

    import reconciler.cli

    group = click.Group()
    for info in pkgutil.iter_modules(reconciler.cli.__path__):
        module = importlib.import_module(f"reconciler.cli.{info.name}")
        for name in dir(module):
            if name.startswith("register_"):
                getattr(module, name)(group)
    assert set(group.commands) <= set(LAZY_COMMANDS)
    for name, command in group.commands.items():
        assert load_command(name) is command
