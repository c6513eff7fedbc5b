"""Health rules written by users as CEL expressions over the live object, per kind.

The only module that imports ``cel`` (common-expression-language). An app declares, per kind::

    health:
    - kind: Widget
      group: example.com          # optional: any group when left out
      degraded: "has(object.status.phase) && object.status.phase == 'Failed'"
      healthy: "has(object.status.phase) && object.status.phase == 'Ready'"
      suspended: "has(object.spec.paused) && object.spec.paused"
      message: "object.status.message"

The object is the variable ``object``. ``degraded`` is checked first, then ``suspended``, then
``healthy`` (Progressing while it is false; Healthy when it is left out). Reading a field the
object does not have counts as false, so a rule does not need ``has()`` before the status
exists; in ``exists()``/``all()`` over a list, a field some elements omit reads as null in
those, so another element can decide (as CEL's error rules say). Any other evaluation error
makes the object Unknown, with the error as its reason. The generic checks come first: an
object being deleted, or whose ``status.observedGeneration`` is behind its generation, is
Progressing whatever the rule says.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.health.model import Assessment, Health

if TYPE_CHECKING:
    import cel

VARIABLE = "object"
_TRIAL = {VARIABLE: {"apiVersion": "", "kind": "", "metadata": {}, "spec": {}, "status": {}}}


class RuleError(ValueError):
    """A health rule that does not compile; ``str()`` is one line (without file:line)."""


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and its source text."""

    source: str
    program: cel.Program = field(compare=False, repr=False)


def compile_expression(source: str, *, boolean: bool = False) -> Expression:
    """Compile once at load time; a syntax error, an unknown variable, a type error whatever
    the object holds, or (``boolean``: a condition) a result that is not a bool is a
    ``RuleError``."""
    if not isinstance(source, str) or not source.strip():
        raise RuleError("must be a non-empty CEL expression")
    import cel  # on first use: importing it costs a command without rules ~0.2 s

    try:
        program = cel.compile(source)
    except ValueError as err:
        raise RuleError(_one_line(str(err))) from None
    _trial(program, boolean)
    return Expression(source, program)


def _trial(program: cel.Program, boolean: bool) -> None:
    """Run ``program`` on an empty object, then on objects holding each field it reads (as a
    bool, number, string, list, map): an undefined name or an operator applied to the wrong
    types on the empty object is an error; a condition none of whose successful runs gives a
    bool is one (``size(object.spec.rules)``, ``'yes'``). Missing fields are judged live."""
    try:
        result = program.execute(_TRIAL)
    except RuntimeError as err:  # undefined variable or function: a typo, not missing data
        raise RuleError(_one_line(str(err))) from None
    except TypeError as err:  # no such overload, with no field read: wrong whatever the object
        raise RuleError(_one_line(str(err)).split(". ")[0]) from None
    except Exception:  # missing fields: try them filled in below
        results = []
        leaves: tuple[Any, ...] = (True, 0, "", [], {})
        for leaf in leaves:
            try:
                results.append(program.execute({VARIABLE: _filled(program.source, leaf)}))
            except Exception:  # a leaf of the wrong type for this expression
                continue
    else:
        results = [result]
    if boolean and results and not any(isinstance(r, bool) for r in results):
        raise RuleError(f"must give a bool (true or false), got {_cel_type(results[0])}")


_FIELD_PATH = re.compile(rf"\b{VARIABLE}((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?!\s*\()")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _filled(source: str, leaf: Any) -> dict[str, Any]:
    """The trial object with every ``object.a.b`` the expression reads set to ``leaf``."""
    obj: dict[str, Any] = copy.deepcopy(_TRIAL[VARIABLE])
    for path in sorted(_FIELD_PATH.findall(_STRING.sub("''", source)), key=len, reverse=True):
        parts = path.strip(".").split(".")
        node = obj
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node.setdefault(parts[-1], copy.deepcopy(leaf))
    return obj


def _cel_type(value: Any) -> str:
    names = {str: "string", int: "int", float: "double", list: "list", dict: "map", bytes: "bytes"}
    return names.get(type(value), type(value).__name__)


def _one_line(message: str) -> str:
    """The CEL library's multi-line error as ``1:5: Syntax error: ...``."""
    for line in message.splitlines():
        if "ERROR: <input>:" in line:
            return line.split("ERROR: <input>:", 1)[1].strip()
    return " ".join(message.split())


@dataclass(frozen=True)
class HealthRule:
    """A user's rule for one kind (of one group, or of any group when ``group`` is None)."""

    kind: str
    group: str | None = None
    healthy: Expression | None = None
    degraded: Expression | None = None
    suspended: Expression | None = None
    message: Expression | None = None

    def matches(self, group: str, kind: str) -> bool:
        return kind == self.kind and (self.group is None or group == self.group)


def compile_rule(
    kind: str,
    group: str | None = None,
    *,
    healthy: str | None = None,
    degraded: str | None = None,
    suspended: str | None = None,
    message: str | None = None,
) -> HealthRule:
    """Build a rule; the ``RuleError`` names the field whose expression is wrong."""
    if healthy is None and degraded is None and suspended is None:
        raise RuleError("needs at least one of healthy, degraded, suspended")
    compiled: dict[str, Expression | None] = {}
    for name, source in (
        ("healthy", healthy),
        ("degraded", degraded),
        ("suspended", suspended),
        ("message", message),
    ):
        try:
            boolean = name != "message"
            compiled[name] = None if source is None else compile_expression(source, boolean=boolean)
        except RuleError as err:
            raise RuleError(f"{name}: {err}") from None
    return HealthRule(kind, group, **compiled)


def find_rule(rules: tuple[HealthRule, ...], group: str, kind: str) -> HealthRule | None:
    """The first rule for this kind: one naming the group wins over one for any group."""
    exact = [r for r in rules if r.group is not None and r.matches(group, kind)]
    anywhere = [r for r in rules if r.group is None and r.matches(group, kind)]
    found = exact or anywhere
    return found[0] if found else None


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _check(name: str, expr: Expression | None, context: Mapping[str, Any]) -> bool | None:
    if expr is None:
        return None
    try:
        try:
            value = expr.program.execute(dict(context))
        except (KeyError, IndexError):
            # The library stops at the first element of exists()/all() that lacks a field,
            # where CEL lets another element decide: read such fields as null and try again.
            value = expr.program.execute({k: _fill_lists(v) for k, v in context.items()})
    except (KeyError, IndexError):
        return False  # a field the object does not have (yet)
    except Exception as err:  # the library raises plain Python errors
        raise _Failed(f"health rule {name} failed: {_one_line(str(err))}") from None
    if not isinstance(value, bool):
        raise _Failed(f"health rule {name} gave {type(value).__name__} {value!r}, not a bool")
    return value


def _fill_lists(value: Any) -> Any:
    """``value`` with each map in a list of maps given, as null, the fields its siblings have
    (the API server omits empty fields: a condition without ``reason``)."""
    if isinstance(value, Mapping):
        return {k: _fill_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_fill_lists(v) for v in value]
        if items and all(isinstance(v, dict) for v in items):
            keys = {k for v in items for k in v}
            return [{**dict.fromkeys(keys), **v} for v in items]
        return items
    return value


def evaluate(rule: HealthRule, obj: Mapping[str, Any]) -> Assessment:
    """Judge a live object with a user's rule."""
    context = {VARIABLE: obj}
    try:
        if _check("degraded", rule.degraded, context):
            health, source = Health.DEGRADED, rule.degraded
        elif _check("suspended", rule.suspended, context):
            health, source = Health.SUSPENDED, rule.suspended
        else:
            ok = _check("healthy", rule.healthy, context)
            health = Health.PROGRESSING if ok is False else Health.HEALTHY
            source = rule.healthy
    except _Failed as failed:
        return Assessment(Health.UNKNOWN, failed.reason)
    return Assessment(health, _message(rule, context, health, source))


def _message(
    rule: HealthRule, context: Mapping[str, Any], health: Health, source: Expression | None
) -> str:
    if rule.message is not None:
        try:
            value = rule.message.program.execute(dict(context))
        except Exception:  # a message that cannot be built falls back
            value = None
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    if source is None:
        return "by health rule"
    verdict = "false" if health is Health.PROGRESSING else "true"
    return f"health rule: {source.source} is {verdict}"
