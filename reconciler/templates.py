"""Template substitution: ``${cluster.name}``, ``${cluster.labels.<k>}``, ``${cluster.vars.<k>}``.

``$${`` escapes a literal ``${``.

Substitution is done on parsed string scalars, never on YAML text, so a value can not break the
document's structure. An unquoted scalar that is exactly one template is re-typed as YAML would
(``replicas: ${cluster.vars.replicas}`` gives an int) when the value reads back as the same text
(``1.20`` or ``01234`` stay strings); a quoted one always stays a string.
"""

from __future__ import annotations

import marshal
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.yamlsrc import Document, Path, retype_plain

_TOKEN = re.compile(r"\$\$\{|\$\{")
_SCOPES = ("name", "labels", "vars")


class TemplateSyntaxError(ValueError):
    """A string holds a malformed or unknown ``${...}`` reference."""


@dataclass(frozen=True)
class Ref:
    """A reference: scope ``name`` (no key), ``labels`` or ``vars`` with a key."""

    scope: str
    key: str = ""

    def __str__(self) -> str:
        return (
            "${cluster.name}" if self.scope == "name" else f"${{cluster.{self.scope}.{self.key}}}"
        )


@dataclass(frozen=True)
class Context:
    """What templates can see of one cluster."""

    name: str
    labels: Mapping[str, str]
    vars: Mapping[str, str]

    def lookup(self, ref: Ref) -> str | None:
        if ref.scope == "name":
            return self.name
        table = self.labels if ref.scope == "labels" else self.vars
        return table.get(ref.key)


class UnknownVariable(Exception):
    """A reference the cluster does not define."""

    def __init__(self, ref: Ref, cluster: str) -> None:
        self.ref = ref
        self.cluster = cluster
        what = "label" if ref.scope == "labels" else "var"
        super().__init__(f"unknown variable {ref} (cluster {cluster} has no {what} {ref.key!r})")


@dataclass(frozen=True)
class Template:
    """A parsed string: literal text and references, in order."""

    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> list[Ref]:
        return [p for p in self.parts if isinstance(p, Ref)]

    def render(self, ctx: Context) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = ctx.lookup(part)
            if value is None:
                raise UnknownVariable(part, ctx.name)
            out.append(value)
        return "".join(out)


def parse(text: str) -> Template | None:
    """Parse ``text``; None when it holds no reference and no escape (the common case)."""
    if "${" not in text:
        return None
    parts: list[str | Ref] = []
    literal: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() < pos:
            continue  # inside a reference already consumed
        literal.append(text[pos : match.start()])
        if match.group() == "$${":
            literal.append("${")
            pos = match.end()
            continue
        end = text.find("}", match.end())
        if end < 0:
            raise TemplateSyntaxError(f"unterminated ${{ in {text!r} (write $${{ for a literal)")
        parts.append("".join(literal))
        literal = []
        parts.append(_ref(text[match.end() : end]))
        pos = end + 1
    literal.append(text[pos:])
    parts.append("".join(literal))
    return Template(tuple(p for p in parts if p != ""))


def _ref(expr: str) -> Ref:
    head, _, rest = expr.partition(".")
    scope, _, key = rest.partition(".")
    if head == "cluster" and scope == "name" and not key:
        return Ref("name")
    if head == "cluster" and scope in ("labels", "vars") and key:
        return Ref(scope, key)
    raise TemplateSyntaxError(
        f"unknown variable ${{{expr}}}; use ${{cluster.name}}, ${{cluster.labels.<key>}} "
        "or ${cluster.vars.<key>} (write $${ for a literal ${)"
    )


@dataclass(frozen=True)
class Site:
    """A string scalar that needs substitution: where it is and what it holds."""

    path: Path
    line: int
    template: Template
    plain: bool


@dataclass(frozen=True)
class SiteProblem:
    path: Path
    line: int
    message: str


def find_sites(doc: Document, base: Path = ()) -> tuple[list[Site], list[SiteProblem]]:
    """Every templated string under ``base`` in ``doc`` (paths relative to ``base``)."""
    subtree: Any = doc.value
    for part in base:
        subtree = subtree[part]
    sites: list[Site] = []
    problems: list[SiteProblem] = []
    for rel, value, is_key in _strings(subtree, ()):
        path = (*base, *rel)
        if "${" not in value:
            continue
        line = doc.line_of(path)
        if is_key:
            problems.append(SiteProblem(path, line, "templates are not allowed in mapping keys"))
            continue
        try:
            template = parse(value)
        except TemplateSyntaxError as err:
            problems.append(SiteProblem(path, line, str(err)))
            continue
        if template is not None:
            sites.append(Site(rel, line, template, path in doc.plain and len(template.parts) == 1))
    return sites, problems


def _strings(value: Any, path: Path) -> Iterator[tuple[Path, str, bool]]:
    if isinstance(value, str):
        yield path, value, False
    elif isinstance(value, dict):
        for key, child in value.items():
            yield (*path, key), key, True
            yield from _strings(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _strings(child, (*path, i))


def copy_tree(value: Any) -> Any:
    """Copy dicts and lists (scalars are immutable and shared); faster than deepcopy."""
    if type(value) is dict:
        return {k: copy_tree(v) if type(v) in (dict, list) else v for k, v in value.items()}
    if type(value) is list:
        return [copy_tree(v) if type(v) in (dict, list) else v for v in value]
    return value


def freeze(value: Any) -> bytes:
    """A snapshot of plain YAML data from which ``thaw`` makes independent copies.

    Rendering copies every manifest once per target, so the copy is done by marshal (C) rather
    than in Python. Strings are interned first so that all copies share them, not hold their own.
    """
    return marshal.dumps(_interned(value))


def thaw(blob: bytes) -> Any:
    """A fresh, independent copy of what ``freeze`` saw."""
    return marshal.loads(blob)


def _interned(value: Any) -> Any:
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, dict):
        return {sys.intern(k): _interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(v) for v in value]
    return value


def substitute(value: Any, sites: Sequence[Site], ctx: Context, *, copy: bool = True) -> Any:
    """``value`` with every site rendered for ``ctx`` (a copy unless ``copy=False``).

    Raises SiteError naming the failing site.
    """
    out = copy_tree(value) if copy else value
    for site in sites:
        try:
            text = site.template.render(ctx)
        except UnknownVariable as err:
            raise SiteError(site, str(err)) from err
        new: Any = retype_plain(text) if site.plain else text
        if not site.path:
            return new
        parent = out
        for part in site.path[:-1]:
            parent = parent[part]
        parent[site.path[-1]] = new
    return out


class SiteError(Exception):
    """Substitution failed at a site; ``site.line`` locates it."""

    def __init__(self, site: Site, message: str) -> None:
        self.site = site
        super().__init__(message)
