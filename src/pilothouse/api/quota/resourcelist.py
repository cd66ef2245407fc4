"""Resource lists (``corev1.ResourceList``) and their arithmetic, as upstream's quota helpers.

A list maps resource names to :class:`~pilothouse.api.quantity.Quantity`. Sums keep
upstream's formatting rule: adding to a zero quantity takes the other operand's
format, so ``0 + 128Mi`` prints ``128Mi`` and ``0 + 500m`` prints ``500m``.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from pilothouse.api import quantity

ResourceList = dict[str, quantity.Quantity]

ZERO = quantity.Quantity(decimal.Decimal(0), quantity.DECIMAL_SI)


def parse(raw: Any) -> ResourceList:
    """A resource list from its JSON form; entries that are not quantities are skipped
    (validation has refused them before anything is charged)."""
    out: ResourceList = {}
    if not isinstance(raw, dict):
        return out
    for name, value in raw.items():
        try:
            out[str(name)] = quantity.parse(value)
        except quantity.QuantityError:
            continue
    return out


def dump(rl: Mapping[str, quantity.Quantity]) -> dict[str, str]:
    """The JSON form, keys sorted as Go encodes a map."""
    return {name: str(rl[name]) for name in sorted(rl)}


def one() -> quantity.Quantity:
    return quantity.Quantity(decimal.Decimal(1), quantity.DECIMAL_SI)


def count(n: int) -> quantity.Quantity:
    return quantity.Quantity(decimal.Decimal(n), quantity.DECIMAL_SI)


def plus(a: quantity.Quantity, b: quantity.Quantity) -> quantity.Quantity:
    """``a.Add(b)``: a zero ``a`` takes ``b``'s format."""
    fmt = b.format if a.value == 0 else a.format
    return quantity.Quantity(a.value + b.value, fmt)


def minus(a: quantity.Quantity, b: quantity.Quantity) -> quantity.Quantity:
    fmt = b.format if a.value == 0 else a.format
    return quantity.Quantity(a.value - b.value, fmt)


def add(a: Mapping[str, quantity.Quantity], b: Mapping[str, quantity.Quantity]) -> ResourceList:
    out: ResourceList = {}
    for name, value in a.items():
        other = b.get(name)
        out[name] = plus(value, other) if other is not None else value
    for name, value in b.items():
        if name not in out:
            out[name] = value
    return out


def add_into(total: ResourceList, b: Mapping[str, quantity.Quantity]) -> None:
    for name, value in b.items():
        current = total.get(name)
        total[name] = plus(current, value) if current is not None else value


def max_into(total: ResourceList, b: Mapping[str, quantity.Quantity]) -> None:
    for name, value in b.items():
        current = total.get(name)
        if current is None or value.value > current.value:
            total[name] = value


def subtract(
    a: Mapping[str, quantity.Quantity], b: Mapping[str, quantity.Quantity]
) -> ResourceList:
    out: ResourceList = {}
    for name, value in a.items():
        other = b.get(name)
        out[name] = minus(value, other) if other is not None else value
    for name, value in b.items():
        if name not in out:
            out[name] = quantity.Quantity(-value.value, value.format)
    return out


def subtract_non_negative(
    a: Mapping[str, quantity.Quantity], b: Mapping[str, quantity.Quantity]
) -> ResourceList:
    """``SubtractWithNonNegativeResult``: what ``a`` adds over ``b``, never below zero."""
    out: ResourceList = {}
    for name, value in a.items():
        other = b.get(name)
        diff = minus(value, other) if other is not None else value
        out[name] = diff if diff.value > 0 else ZERO
    for name in b:
        out.setdefault(name, ZERO)
    return out


def mask(rl: Mapping[str, quantity.Quantity], names: Iterable[str]) -> ResourceList:
    wanted = set(names)
    return {name: value for name, value in rl.items() if name in wanted}


def names_of(rl: Mapping[str, Any]) -> list[str]:
    return list(rl)


def is_zero(rl: Mapping[str, quantity.Quantity]) -> bool:
    return all(value.value == 0 for value in rl.values())


def negative(rl: Mapping[str, quantity.Quantity]) -> list[str]:
    return [name for name, value in rl.items() if value.value < 0]


def equals(a: Mapping[str, quantity.Quantity], b: Mapping[str, quantity.Quantity]) -> bool:
    if len(a) != len(b):
        return False
    for name, value in a.items():
        other = b.get(name)
        if other is None or other.value != value.value:
            return False
    return True


def less_than_or_equal(
    a: Mapping[str, quantity.Quantity], b: Mapping[str, quantity.Quantity]
) -> tuple[bool, list[str]]:
    """Whether every entry of ``a`` named in ``b`` is at most ``b``'s; and which are not."""
    exceeded = [name for name, limit in b.items() if name in a and a[name].value > limit.value]
    return not exceeded, exceeded


def pretty(rl: Mapping[str, quantity.Quantity]) -> str:
    """``cpu=1,pods=2``: names sorted, as upstream's quota errors print a list."""
    return ",".join(f"{name}={rl[name]}" for name in sorted(rl))


def pretty_names(names: Iterable[str]) -> str:
    return ",".join(sorted(names))
