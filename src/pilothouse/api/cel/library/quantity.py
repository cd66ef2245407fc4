"""Kubernetes' CEL quantity library (``k8s.io/apiserver/pkg/cel/library/quantity.go``).

``quantity('1.5Gi')``, ``isQuantity``, and on quantities ``sign``, ``isGreaterThan``,
``isLessThan``, ``compareTo``, ``asApproximateFloat``, ``asInteger``, ``isInteger``,
``add`` and ``sub`` (of a quantity or an integer). Values are exact decimals
(:mod:`pilothouse.api.quantity`); a quantity travels as its value's text.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import decimal
from typing import Any

from pilothouse.api import quantity as q
from pilothouse.api.cel.library import opaque
from pilothouse.api.cel.library.lists import LibraryError

_INT64 = (-(1 << 63), (1 << 63) - 1)


def _text(value: decimal.Decimal) -> str:
    normal = value.normalize(decimal.Context(prec=4000))
    return format(normal, "f")


def _wrap(value: decimal.Decimal) -> dict[str, str]:
    return opaque.wrap(opaque.QUANTITY, _text(value))


def _value(arg: Any) -> decimal.Decimal:
    return decimal.Decimal(opaque.unwrap(opaque.QUANTITY, arg))


def quantity(text: Any) -> dict[str, str]:
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    try:
        parsed = q.parse(text)
    except q.QuantityError as exc:
        raise LibraryError(str(exc)) from None
    if text != text.strip():
        raise LibraryError(q.FORMAT_ERROR)
    return _wrap(parsed.value)


def is_quantity(text: Any) -> bool:
    if not isinstance(text, str):
        raise opaque.NoSuchOverload()
    try:
        quantity(text)
    except LibraryError:
        return False
    return True


def sign(arg: Any) -> int:
    value = _value(arg)
    return (value > 0) - (value < 0)


def compare_to(a: Any, b: Any) -> int:
    x, y = _value(a), _value(b)
    return (x > y) - (x < y)


def is_greater_than(a: Any, b: Any) -> bool:
    return compare_to(a, b) == 1


def is_less_than(a: Any, b: Any) -> bool:
    return compare_to(a, b) == -1


def as_approximate_float(arg: Any) -> float:
    return float(_value(arg))


def _exact_int(value: decimal.Decimal) -> int | None:
    if value != value.to_integral_value():
        return None
    number = int(value)
    return number if _INT64[0] <= number <= _INT64[1] else None


def is_integer(arg: Any) -> bool:
    return _exact_int(_value(arg)) is not None


def as_integer(arg: Any) -> int:
    number = _exact_int(_value(arg))
    if number is None:
        raise LibraryError("cannot convert value to integer")
    return number


def _operand(arg: Any) -> decimal.Decimal:
    if isinstance(arg, int) and not isinstance(arg, bool):
        return decimal.Decimal(arg)
    return _value(arg)


def add(a: Any, b: Any) -> dict[str, str]:
    return _wrap(_value(a) + _operand(b))


def sub(a: Any, b: Any) -> dict[str, str]:
    return _wrap(_value(a) - _operand(b))
