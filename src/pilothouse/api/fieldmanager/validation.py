"""What upstream says when an applied object does not fit its schema.

structured-merge-diff validates an applied configuration while turning it into a
typed value (duplicates not allowed): duplicate keys in associative lists, list
items missing a key field, fields the schema does not declare, and values of the
wrong shape. The messages are upstream's, Go value formatting included
(``expected string, got &value.valueUnstructured{Value:3}``).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import gostrings
from pilothouse.api.fieldmanager import fieldpath, gotext, typed
from pilothouse.api.fieldmanager.types import Type


def validate(value: Any, typ: Type) -> list[str]:
    """Upstream's complaints about an applied object, each ``<path>: <message>``."""
    errors: list[str] = []
    _validate(value, typ, "", errors)
    return errors


def _validate(value: Any, typ: Type, path: str, errors: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, dict) and typ.is_map:
        for k, child in value.items():
            if k not in typ.fields and typ.elem is None:
                errors.append(_at(path + "." + k, "field not declared in schema"))
                return
            _validate(child, typ.field_type(k), path + "." + k, errors)
        return
    if isinstance(value, list) and typ.is_list:
        assert typ.items is not None
        seen: set[str] = set()
        for position, item in enumerate(value):
            if typ.list_atomic:
                _validate(item, typ.items, f"{path}[{position}]", errors)
                continue
            try:
                pe = typed.item_element(item, typ)
            except typed.ItemError as problem:
                errors.append(_at(path, f"element {position}: {problem}"))
                return
            if pe in seen:
                errors.append(
                    _at(path, f"duplicate entries for key {fieldpath.element_string(pe)}")
                )
            seen.add(pe)
            _validate(item, typ.items, path + fieldpath.element_string(pe), errors)
        return
    mismatch = _scalar_problem(value, typ)
    if mismatch:
        errors.append(_at(path, mismatch))


def _scalar_problem(value: Any, typ: Type) -> str:
    # The messages of structured-merge-diff's validateScalar, doMap and doList.
    if not typ.scalar:
        wanted = "map" if typ.is_map else "list"
        return f"expected {wanted}, got &{{{_go_v(value)}}}"
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if typ.scalar == "numeric" and not numeric:
        return f"expected numeric (int or float), got {_go_type(value)}"
    if typ.scalar == "string" and not isinstance(value, str):
        return f"expected string, got &value.valueUnstructured{{Value:{_go_sharp_v(value)}}}"
    if typ.scalar == "boolean" and not isinstance(value, bool):
        return f"expected boolean, got &{{{_go_v(value)}}}"
    if typ.scalar == "untyped" and isinstance(value, dict | list):
        return f"expected any scalar, got &{{{_go_v(value)}}}"
    return ""


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "int64" if isinstance(value, int) else "float64"


def _go_v(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return gotext.value_string(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_v(v) for v in value) + "]"
    return str(value)


def _go_sharp_v(value: Any) -> str:
    """Go's ``%#v`` of a decoded JSON value."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return gostrings.quote(value)
    if isinstance(value, float):
        return gotext.value_string(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{gostrings.quote(k)}:{_go_sharp_v(value[k])}" for k in sorted(value))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_sharp_v(v) for v in value) + "}"
    return str(value)


def _at(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message
