"""Messages of the config loader: pydantic errors as plain sentences, OS errors, did-you-mean."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Union

from pydantic import BaseModel


def os_error(err: Exception) -> str:
    """An OSError without the full path it repeats (the message names the file already)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


def size_text(limit: int) -> str:
    mib = 1024 * 1024
    return f"{limit // mib} MiB" if limit % mib == 0 else f"{limit} bytes"


def type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    names.update({int: "an integer", float: "a number", type(None): "null"})
    return names.get(type(value), type(value).__name__)


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown(kind: str, name: str, known: dict[str, Any]) -> str:
    return f"unknown {kind} {name!r}{did_you_mean(name, known)}"


_EXPECTED = {
    "string_type": "a string (quote it in YAML)",
    "int_type": "an integer",
    "bool_type": "a boolean",
    "dict_type": "a mapping",
    "list_type": "a list",
    "float_type": "a number",
    "float_parsing": "a number",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

# pydantic's bound errors: the comparison and the ctx key holding the limit.
_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def schema_message(model: type[BaseModel], error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        return f"unknown field {key!r}{did_you_mean(key, _fields_at(model, error['loc'][:-1]))}"
    if kind == "missing":
        return "required field is missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {type_name(error['input'])}"
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        limit = error["ctx"][key]
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {op} {limit}"
    if kind == "literal_error":
        return f"must be one of {error['ctx']['expected']}, got {error['input']!r}"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The YAML field names allowed at ``loc`` (for did-you-mean); best effort."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int) or not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            current = _item_type(current)
            continue
        info = next(
            (f for n, f in current.model_fields.items() if (f.alias or n) == part),
            None,
        )
        if info is None:
            return []
        current = info.annotation
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _item_type(tp: Any) -> Any:
    args = typing.get_args(_unwrap(tp))
    return args[-1] if args else tp
