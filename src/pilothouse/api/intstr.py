"""IntOrString values (``maxSurge: 25%``, ``targetPort: http``) and their scaling.

``scaled_value`` is apimachinery's ``GetScaledValueFromIntOrPercent``: an int is
itself, a ``"N%"`` string is N percent of a total rounded up or down, anything else
is an error worded as upstream words it.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any, TypeGuard

_MIN_INT64 = -(2**63)
_MAX_INT64 = 2**63 - 1


class IntOrStringError(ValueError):
    """An IntOrString that cannot be read as an int or a percentage."""


def go_atoi(text: str) -> int:
    """``strconv.Atoi``: an optional sign then ASCII digits, within int64, else ValueError.

    The error message is Go's (``strconv.Atoi: parsing "x": invalid syntax``).
    """
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not _MIN_INT64 <= value <= _MAX_INT64:
        raise ValueError(f'strconv.Atoi: parsing "{text}": value out of range')
    return value


def is_int(value: Any) -> TypeGuard[int]:
    """Whether a JSON value is the int form of an IntOrString (bools are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def scaled_value(int_or_percent: int | str | None, total: int, round_up: bool) -> int:
    """The value of ``int_or_percent`` with percentages taken of ``total``."""
    if int_or_percent is None:
        raise IntOrStringError("nil value for IntOrString")
    if is_int(int_or_percent):
        return int(int_or_percent)
    if not isinstance(int_or_percent, str):
        raise IntOrStringError(
            "invalid value for IntOrString: invalid type: neither int nor percentage"
        )
    if not int_or_percent.endswith("%"):
        raise IntOrStringError(
            "invalid value for IntOrString: invalid type: string is not a percentage"
        )
    try:
        percent = go_atoi(int_or_percent[:-1])
    except ValueError as exc:
        raise IntOrStringError(
            f'invalid value for IntOrString: invalid value "{int_or_percent}": {exc}'
        ) from None
    # Exact integer arithmetic gives the same answer as upstream's float ceil/floor.
    product = percent * total
    return -(-product // 100) if round_up else product // 100


def int_value(value: int | str | None) -> int:
    """``IntOrString.IntValue()``: a string is parsed as an int, failures are 0."""
    if is_int(value):
        return int(value)
    if isinstance(value, str):
        try:
            return go_atoi(value)
        except ValueError:
            return 0
    return 0


def percent_value(value: int | str | None) -> int | None:
    """The N of a valid ``"N%"`` string, or None for anything else."""
    if isinstance(value, str) and len(value) > 1 and value.endswith("%"):
        digits = value[:-1]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    return None
