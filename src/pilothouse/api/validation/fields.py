"""Small readers for JSON-shaped objects, tolerant of missing and mistyped fields.

Validation reads objects as upstream's typed structs would see them: a missing or
mistyped field reads as its zero value (``{}``, ``[]``, ``""``, ``0``), and
:func:`semantic_equal` compares two values the way ``apiequality.Semantic`` does
(unset, ``null`` and empty are the same).
"""

from __future__ import annotations

from typing import Any, TypeGuard

from pilothouse.api import quantity


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def as_int(value: Any) -> int:
    return value if is_int(value) else 0


def prune(value: Any) -> Any:
    """``value`` with every empty or zero field removed, recursively."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            pv = prune(v)
            if pv is not None:
                out[k] = pv
        return out or None
    if isinstance(value, list):
        items = [prune(v) for v in value]
        return items or None
    if value is False or value == "" or (isinstance(value, int | float) and value == 0):
        return None
    return value


def semantic_equal(a: Any, b: Any) -> bool:
    """Equality as upstream's ``apiequality.Semantic.DeepEqual`` sees JSON values."""
    # Equal values prune to equal values: only unequal ones need the walk (every update
    # compares six identity fields of metadata, nearly always equal).
    return bool(a == b or prune(a) == prune(b))


def quantity_or_none(value: Any) -> quantity.Quantity | None:
    try:
        return quantity.parse(value)
    except quantity.QuantityError:
        return None
