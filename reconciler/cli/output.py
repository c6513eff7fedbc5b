"""``-o table|wide|json|yaml`` for every command that prints data: one option, one printer.

A command builds one document (plain dicts, lists, strings, numbers) and its table text; the
printer writes the document as JSON or YAML (the same document: YAML is made from the JSON, so
both carry the same keys and values) or the table. Keys are snake_case everywhere
(tests/unit/test_json_keys.py walks every document).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click

TABLE, WIDE, JSON, YAML = "table", "wide", "json", "yaml"
DATA = (JSON, YAML)
OUTPUTS = (TABLE, WIDE, JSON, YAML)


class OutputChoice(click.Choice[str]):
    """The output formats, plus old names kept as aliases (``text`` is ``table``)."""

    def __init__(self, choices: Sequence[str], aliases: dict[str, str]) -> None:
        super().__init__(list(choices))
        self.aliases = aliases

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if isinstance(value, str) and value in self.aliases:
            return self.aliases[value]
        return str(super().convert(value, param, ctx))


def output_option(
    *extra: str,
    wide: str = "the same as table",
    default: str = TABLE,
    aliases: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-o/--output`` with table, wide, json, yaml and ``extra`` formats (``markdown``)."""
    names = [*OUTPUTS, *extra]
    notes = [f"wide: {wide}"]
    if aliases:
        notes.append(", ".join(f"{old}: {new}" for old, new in aliases.items()))
    return click.option(
        "-o",
        "--output",
        type=OutputChoice(names, aliases or {}),
        default=default,
        help="json and yaml print the same document, snake_case keys; " + "; ".join(notes) + ".",
    )


def dump(document: Any, output: str) -> str:
    """``document`` as JSON or YAML text, ending in a newline."""
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    if output == JSON:
        return text + "\n"
    import yaml

    return str(yaml.safe_dump(json.loads(text), sort_keys=False, allow_unicode=True, width=1000))


def emit(output: str, document: Callable[[], Any], table: Callable[[], str]) -> None:
    """Print the document (json, yaml) or the table text (table, wide: ``table`` decides)."""
    if output in DATA:
        click.echo(dump(document(), output), nl=False)
        return
    text = table()
    click.echo(text, nl=not text.endswith("\n"))
