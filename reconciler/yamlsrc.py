"""YAML loading that remembers the line of every node, for located error messages."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

Path = tuple[str | int, ...]

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCT = SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_MAX_DEPTH = 200

# Kubernetes reads YAML with go-yaml v2 (through sigs.k8s.io/yaml): YAML 1.1 types, booleans
# yes/no/on/off included, but no base-60 numbers, so `12:30` stays a string there. PyYAML's
# int and float patterns without their sexagesimal alternatives:
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


def _without_base_60(
    table: dict[str | None, list[tuple[str, re.Pattern[str]]]],
) -> dict[str | None, list[tuple[str, re.Pattern[str]]]]:
    patterns = {_TAG + "int": _INT, _TAG + "float": _FLOAT}
    return {
        first: [(tag, patterns.get(tag, regexp)) for tag, regexp in resolvers]
        for first, resolvers in table.items()
    }


class _Loader(_BaseLoader):  # type: ignore[misc]
    yaml_implicit_resolvers = _without_base_60(_BaseLoader.yaml_implicit_resolvers)


class _Resolver(Resolver):
    yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


_RESOLVER = _Resolver()


@dataclass(frozen=True)
class YamlIssue:
    """One problem in a YAML text: 1-based line and message."""

    line: int
    message: str


class YamlError(Exception):
    """A YAML text could not be fully loaded; carries every issue found."""

    def __init__(self, issues: list[YamlIssue], documents: list[Document] | None = None) -> None:
        self.issues = issues
        self.documents = documents or []
        super().__init__("; ".join(f"line {i.line}: {i.message}" for i in issues))


@dataclass(frozen=True)
class Document:
    """One YAML document: its plain value, the line of every node, and its plain scalars.

    ``plain`` holds the paths of unquoted string scalars, so a template substituted into one
    can be re-typed the way YAML would have typed the result (``replicas: ${cluster.vars.n}``).
    """

    value: Any
    line: int
    lines: Mapping[Path, int] = field(repr=False)
    plain: frozenset[Path] = field(repr=False, default=frozenset())

    def line_of(self, path: Path) -> int:
        """Line of ``path``, or of its nearest ancestor that exists."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return self.line


def format_path(path: Path) -> str:
    """``("spec", "overrides", 0, "name")`` -> ``spec.overrides[0].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def load_documents(text: str) -> list[Document]:
    """Parse every document of ``text`` (empty documents dropped).

    Raises YamlError for syntax errors, duplicate keys, non-scalar keys, alias cycles and alias
    bombs; its ``documents`` holds the documents that did load, so callers can still check those.
    """
    docs: list[Document] = []
    issues: list[YamlIssue] = []
    for line, builder, value in _load_all(text, issues, track=True):
        docs.append(Document(value, line, builder.lines, frozenset(builder.plain)))
    if issues:
        raise YamlError(issues, docs)
    return docs


def load_fast(text: str) -> list[Any]:
    """Parse every non-empty document without line tracking (tool output); raises YamlError.

    Values are typed exactly as ``load_documents`` types them: mapping keys are strings and
    timestamps stay text, as ``kubectl`` reads them.
    """
    issues: list[YamlIssue] = []
    values = [value for _, _, value in _load_all(text, issues, track=False)]
    if issues:
        raise YamlError(issues)
    return values


def _load_all(
    text: str, issues: list[YamlIssue], *, track: bool
) -> list[tuple[int, _Builder, Any]]:
    out: list[tuple[int, _Builder, Any]] = []
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None or (isinstance(node, ScalarNode) and node.tag == _TAG + "null"):
                continue
            builder = _Builder(issues, _Budget(), track=track)
            line = node.start_mark.line + 1
            try:
                value = builder.build(node, (), line, 0)
            except _ExcessiveAliasing as err:
                issues.append(YamlIssue(err.line, _EXCESSIVE_ALIASING))
                continue
            out.append((line, builder, value))
    except yaml.MarkedYAMLError as err:
        issues.append(_syntax_issue(err, text))
    except yaml.YAMLError as err:
        issues.append(YamlIssue(1, f"invalid YAML: {err}"))
    return out


def _syntax_issue(err: yaml.MarkedYAMLError, text: str) -> YamlIssue:
    mark = err.problem_mark or err.context_mark
    line = mark.line + 1 if mark is not None else 1
    message = f"invalid YAML: {err.problem or 'syntax error'}"
    if mark is not None and _char_at(text, mark.line, mark.column) == "\t":
        return YamlIssue(
            line,
            f"invalid YAML: a tab (column {mark.column + 1}): YAML does not allow tabs for "
            "indentation; use spaces",
        )
    if err.context and err.context_mark is not None and err.context_mark.line + 1 != line:
        message += f" ({err.context} at line {err.context_mark.line + 1})"
    elif err.context:
        message += f" ({err.context})"
    return YamlIssue(line, message)


def _char_at(text: str, line: int, column: int) -> str:
    """The character at 0-based ``line`` and ``column`` of ``text``; "" past its end."""
    lines = text.split("\n")
    return lines[line][column : column + 1] if line < len(lines) else ""


_EXCESSIVE_ALIASING = "document contains excessive aliasing (anchors expand to too many nodes)"


class _ExcessiveAliasing(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _allowed_alias_ratio(nodes: int) -> float:
    """go-yaml v2's limit (which Kubernetes relies on) on nodes that come from alias expansion.

    Up to 400,000 nodes 99% may come from aliases, from 4,000,000 on only 10%, linear between.
    """
    low, high = 400_000, 4_000_000
    if nodes <= low:
        return 0.99
    if nodes >= high:
        return 0.10
    return 0.99 - 0.89 * (nodes - low) / (high - low)


class _Budget:
    """Counts the nodes of one document as built, and how many of them an alias repeated.

    PyYAML's composer shares an anchored node between its uses, so a few hundred bytes can
    describe 10^9 nodes (billion laughs); building them would take minutes and gigabytes.
    """

    __slots__ = ("aliased", "depth", "nodes", "seen")

    def __init__(self) -> None:
        self.nodes = 0
        self.aliased = 0
        self.depth = 0  # > 0 while building a node a second time (through an alias)
        self.seen: set[int] = set()  # collection nodes built so far

    def count(self, line: int) -> None:
        self.nodes += 1
        if self.depth:
            self.aliased += 1
            if (
                self.aliased > 100
                and self.nodes > 1000
                and self.aliased / self.nodes > _allowed_alias_ratio(self.nodes)
            ):
                raise _ExcessiveAliasing(line)


class _Builder:
    def __init__(self, issues: list[YamlIssue], budget: _Budget, *, track: bool = True) -> None:
        self.issues = issues
        self.budget = budget
        self.track = track
        self.lines: dict[Path, int] = {}
        self.plain: set[Path] = set()
        self._stack: set[int] = set()

    def build(self, node: Node, path: Path, line: int, depth: int) -> Any:
        self.budget.count(line)
        if self.track:
            self.lines[path] = line
        if isinstance(node, ScalarNode):
            value = _scalar(node)
            if self.track and not node.style and isinstance(value, str) and "$" in value:
                self.plain.add(path)
            return value
        if id(node) in self._stack or depth > _MAX_DEPTH:
            self.issues.append(YamlIssue(line, "alias cycle or nesting too deep"))
            return None
        budget = self.budget
        repeated = id(node) in budget.seen
        budget.seen.add(id(node))
        budget.depth += repeated
        self._stack.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [
                    self.build(child, (*path, i), child.start_mark.line + 1, depth + 1)
                    for i, child in enumerate(node.value)
                ]
            if isinstance(node, MappingNode):
                return self._mapping(node, path, depth)
            return None
        finally:
            self._stack.discard(id(node))
            budget.depth -= repeated

    def _mapping(self, node: MappingNode, path: Path, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: list[tuple[str, Any, int]] = []
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _TAG + "merge":
                merged.extend(self._merge_source(value_node, path, depth))
                continue
            if not isinstance(key_node, ScalarNode):
                self.issues.append(YamlIssue(line, "mapping keys must be scalars"))
                continue
            self.budget.count(line)
            key = _scalar(key_node)
            # Kubernetes and JSON keys are strings; `1: x` or `true: x` means the text.
            key = key_node.value if not isinstance(key, str) else key
            if key in out:
                self.issues.append(YamlIssue(line, f"duplicate key {key!r}"))
                continue
            out[key] = self.build(value_node, (*path, key), line, depth + 1)
        for key, value, line in merged:
            if key not in out:
                out[key] = value
                if self.track:
                    self.lines.setdefault((*path, key), line)
        return out

    def _merge_source(self, node: Node, path: Path, depth: int) -> list[tuple[str, Any, int]]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        entries: list[tuple[str, Any, int]] = []
        for src in sources:
            line = src.start_mark.line + 1
            value = _Builder(self.issues, self.budget, track=False).build(
                src, path, line, depth + 1
            )
            if not isinstance(value, dict):
                self.issues.append(YamlIssue(line, "merge key '<<' needs a mapping"))
                continue
            entries.extend((k, v, line) for k, v in value.items())
        return entries


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag
    if tag == _TAG + "str":
        return node.value
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "bool":
        return _CONSTRUCT.construct_yaml_bool(node)
    if tag == _TAG + "int":
        return _CONSTRUCT.construct_yaml_int(node)
    if tag == _TAG + "float":
        return _CONSTRUCT.construct_yaml_float(node)
    # Timestamps, binary and custom tags stay text, as they do in Kubernetes' YAML->JSON.
    return node.value


def retype_plain(text: str) -> Any:
    """Type ``text`` as an unquoted YAML scalar would be, unless that would change the text.

    ``3`` gives 3 and ``true`` gives True, but ``1.20`` (float 1.2), ``01234`` (octal 668),
    ``yes`` (True) or an empty string (null) stay the strings they are: a template must not
    silently lose what the cluster's variable says.
    """
    tag: str = _RESOLVER.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    value = _scalar(ScalarNode(tag, text))
    return value if _canonical(value) == text else text


def _canonical(value: Any) -> str | None:
    """How YAML (and JSON) writes ``value``; None when it has no exact text form we keep."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return value if isinstance(value, str) else None
