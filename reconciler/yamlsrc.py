"""YAML loading that remembers the line of every node, for located error messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

Path = tuple[str | int, ...]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCT = SafeConstructor()
_RESOLVER = Resolver()
_TAG = "tag:yaml.org,2002:"
_MAX_DEPTH = 200


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

    Raises YamlError for syntax errors, duplicate keys, non-scalar keys and alias cycles; its
    ``documents`` holds the documents that did load, so callers can still check those.
    """
    docs: list[Document] = []
    issues: list[YamlIssue] = []
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None or (isinstance(node, ScalarNode) and node.tag == _TAG + "null"):
                continue
            builder = _Builder(issues)
            line = node.start_mark.line + 1
            value = builder.build(node, (), line, 0)
            docs.append(Document(value, line, builder.lines, frozenset(builder.plain)))
    except yaml.MarkedYAMLError as err:
        issues.append(_syntax_issue(err))
    except yaml.YAMLError as err:
        issues.append(YamlIssue(1, f"invalid YAML: {err}"))
    if issues:
        raise YamlError(issues, docs)
    return docs


def _syntax_issue(err: yaml.MarkedYAMLError) -> YamlIssue:
    mark = err.problem_mark or err.context_mark
    line = mark.line + 1 if mark is not None else 1
    message = f"invalid YAML: {err.problem or 'syntax error'}"
    if err.context and err.context_mark is not None and err.context_mark.line + 1 != line:
        message += f" ({err.context} at line {err.context_mark.line + 1})"
    elif err.context:
        message += f" ({err.context})"
    return YamlIssue(line, message)


def load_fast(text: str) -> list[Any]:
    """Parse every non-empty document without line tracking (tool output)."""
    return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]


class _Builder:
    def __init__(self, issues: list[YamlIssue], documents: list[Document] | None = None) -> None:
        self.issues = issues
        self.documents = documents or []
        self.lines: dict[Path, int] = {}
        self.plain: set[Path] = set()
        self._stack: set[int] = set()

    def build(self, node: Node, path: Path, line: int, depth: int) -> Any:
        self.lines[path] = line
        if isinstance(node, ScalarNode):
            value = _scalar(node)
            if not node.style and isinstance(value, str) and "$" in value:
                self.plain.add(path)
            return value
        if id(node) in self._stack or depth > _MAX_DEPTH:
            self.issues.append(YamlIssue(line, "alias cycle or nesting too deep"))
            return None
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
                self.lines.setdefault((*path, key), line)
        return out

    def _merge_source(self, node: Node, path: Path, depth: int) -> list[tuple[str, Any, int]]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        entries: list[tuple[str, Any, int]] = []
        for src in sources:
            line = src.start_mark.line + 1
            value = _Builder(self.issues).build(src, path, line, depth + 1)
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
    """Type ``text`` the way YAML types an unquoted scalar (int, float, bool, null, else str)."""
    tag: str = _RESOLVER.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return _scalar(ScalarNode(tag, text))
