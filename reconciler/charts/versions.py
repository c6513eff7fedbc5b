"""Chart versions and version constraints, in the syntax Helm uses (Masterminds/semver v3).

Pure: parsing and matching only. Versions are ordered by the ``semver`` library (SemVer 2.0
precedence; build metadata is ignored). Constraints:

- ``1.2.3``, ``=1.2.3``, ``!=1.2.3``, ``>``, ``<``, ``>=`` (``=>``), ``<=`` (``=<``);
- wildcards ``1.2.x``, ``1.x``, ``*`` (also ``X``), and missing parts (``1.2`` is ``1.2.x``);
- ``~1.2.3`` (``>=1.2.3 <1.3.0``), ``~1`` (``>=1.0.0 <2.0.0``), ``~>`` is ``~``;
- ``^1.2.3`` (``>=1.2.3 <2.0.0``), ``^0.2.3`` (``<0.3.0``), ``^0.0.3`` (``<0.0.4``);
- hyphen ranges ``1.2 - 1.4.5``; comparators joined by ``,`` or spaces (AND), ``||`` (OR).

A prerelease version (``1.3.0-rc.1``) matches only a group of comparators of which at least one
names a prerelease, as in Masterminds/semver v3.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from semver import Version

_PARTIAL = re.compile(
    r"^v?(?P<major>0|[1-9]\d*|[xX*])"
    r"(?:\.(?P<minor>0|[1-9]\d*|[xX*]))?"
    r"(?:\.(?P<patch>0|[1-9]\d*|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_OPERATORS = ("!=", ">=", "=>", "<=", "=<", "~>", "=", ">", "<", "~", "^")
_CANONICAL_OP = {"=>": ">=", "=<": "<=", "~>": "~"}
_WILDCARDS = ("x", "X", "*")


class ConstraintError(ValueError):
    """A version constraint that does not parse; the message says which part."""


def parse_version(text: str) -> Version | None:
    """A chart version as Helm reads one (``v`` prefix and missing parts allowed), or None."""
    candidate = text[1:] if text.startswith("v") else text
    try:
        return Version.parse(candidate, optional_minor_and_patch=True)
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class _Partial:
    """A version as written in a constraint: trailing parts may be missing or wildcards."""

    major: int | None
    minor: int | None
    patch: int | None
    pre: str | None

    @property
    def full(self) -> bool:
        return self.patch is not None

    def low(self) -> Version:
        """The smallest version the partial stands for (``1.2`` -> ``1.2.0``)."""
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.pre)

    def next(self) -> Version:
        """The first version past everything the partial stands for (``1.2`` -> ``1.3.0``)."""
        if self.major is None:
            raise AssertionError("'*' has no upper bound")
        if self.minor is None:
            return Version(self.major + 1, 0, 0)
        if self.patch is None:
            return Version(self.major, self.minor + 1, 0)
        return Version(self.major, self.minor, self.patch + 1)


def _partial(text: str, constraint: str) -> _Partial:
    m = _PARTIAL.match(text)
    if not m:
        raise ConstraintError(f"version constraint {constraint!r}: {text!r} is not a version")
    parts: list[int | None] = []
    wild = False
    for name in ("major", "minor", "patch"):
        part = m.group(name)
        if part is None or part in _WILDCARDS or wild:
            wild = True
            parts.append(None)
        else:
            parts.append(int(part))
    pre = m.group("pre")
    if pre is not None and wild:
        raise ConstraintError(f"version constraint {constraint!r}: a wildcard has no prerelease")
    return _Partial(parts[0], parts[1], parts[2], pre)


Predicate = Callable[[Version], bool]


@dataclass(frozen=True)
class _Comparator:
    op: str
    version: _Partial
    test: Predicate


def _comparator(op: str, p: _Partial) -> _Comparator:
    op = _CANONICAL_OP.get(op, op)
    if p.major is None:  # '*', 'x': every version (and nothing for '<', '!=')
        test: Predicate = (lambda v: False) if op in ("<", "!=") else (lambda v: True)
        return _Comparator(op, p, test)
    low, full = p.low(), p.full
    if op == "=":
        test = (lambda v: v.compare(low) == 0) if full else _between(low, p.next())
    elif op == "!=":
        inside = (lambda v: v.compare(low) == 0) if full else _between(low, p.next())
        test = lambda v: not inside(v)  # noqa: E731
    elif op == ">":
        bound = low if full else p.next()
        test = (lambda v: v.compare(bound) > 0) if full else (lambda v: v.compare(bound) >= 0)
    elif op == ">=":
        test = lambda v: v.compare(low) >= 0  # noqa: E731
    elif op == "<":
        test = lambda v: v.compare(low) < 0  # noqa: E731
    elif op == "<=":
        test = (lambda v: v.compare(low) <= 0) if full else _between(None, p.next())
    elif op == "~":
        upper = Version(p.major + 1, 0, 0) if p.minor is None else Version(p.major, p.minor + 1, 0)
        test = _between(low, upper)
    else:  # "^": the first non-zero part given may not change
        test = _between(low, _caret_upper(p))
    return _Comparator(op, p, test)


def _caret_upper(p: _Partial) -> Version:
    assert p.major is not None
    if p.major > 0 or p.minor is None:
        return Version(p.major + 1, 0, 0)
    if p.minor > 0 or p.patch is None:
        return Version(0, p.minor + 1, 0)
    return Version(0, 0, p.patch + 1)


def _between(low: Version | None, upper: Version) -> Predicate:
    def test(v: Version) -> bool:
        return (low is None or v.compare(low) >= 0) and v.compare(upper) < 0

    return test


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint: OR of AND-groups of comparators."""

    text: str
    groups: tuple[tuple[_Comparator, ...], ...]

    @property
    def exact(self) -> Version | None:
        """The one version an ``=1.2.3`` / ``1.2.3`` constraint allows, else None."""
        if len(self.groups) == 1 and len(self.groups[0]) == 1:
            only = self.groups[0][0]
            if only.op == "=" and only.version.full:
                return only.version.low()
        return None

    def allows(self, version: Version) -> bool:
        for group in self.groups:
            if version.prerelease and not any(c.version.pre for c in group):
                continue
            if all(c.test(version) for c in group):
                return True
        return False

    def best(self, versions: Iterable[str]) -> str | None:
        """The highest of ``versions`` (as written) it allows; unparsable ones are skipped."""
        best: tuple[Version, str] | None = None
        for text in versions:
            version = parse_version(text)
            if version is None or not self.allows(version):
                continue
            if best is None or version.compare(best[0]) > 0:
                best = (version, text)
        return best[1] if best else None


_HYPHEN = re.compile(r"(\S+)\s+-\s+(\S+)")
_TOKEN = re.compile(r"^(" + "|".join(re.escape(op) for op in _OPERATORS) + r")?\s*(\S+)$")


def parse_constraint(text: str) -> Constraint:
    """Parse Helm's constraint syntax; raises ConstraintError naming the bad part."""
    if not text.strip():
        raise ConstraintError("version constraint is empty")
    groups = []
    for alternative in text.split("||"):
        comparators: list[_Comparator] = []
        rest = _HYPHEN.sub(lambda m: f">={m.group(1)} <={m.group(2)}", alternative.strip())
        # Operators may be followed by spaces (">= 1.2"): glue them to their version first.
        rest = re.sub(r"(!=|>=|=>|<=|=<|~>|[=<>~^])\s+", r"\1", rest)
        for token in re.split(r"[\s,]+", rest):
            if not token:
                continue
            m = _TOKEN.match(token)
            if not m:
                raise ConstraintError(f"version constraint {text!r}: cannot read {token!r}")
            comparators.append(_comparator(m.group(1) or "=", _partial(m.group(2), text)))
        if not comparators:
            raise ConstraintError(f"version constraint {text!r}: empty alternative around '||'")
        groups.append(tuple(comparators))
    return Constraint(text, tuple(groups))
