"""Kubernetes' CEL list library: ``isSorted``, ``sum``, ``min``, ``max``, ``indexOf``,
``lastIndexOf`` (``k8s.io/apiserver/pkg/cel/library/lists.go``).

The list forms of ``indexOf``/``lastIndexOf`` share their names with the strings
extension's; :mod:`.strings` dispatches on the receiver.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import datetime
import itertools
from typing import Any

from pilothouse.api.cel.library.opaque import NoSuchOverload


class LibraryError(ValueError):
    """A runtime error a library function reports (the message is upstream's)."""


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise NoSuchOverload()
    return value


def is_sorted(value: Any) -> bool:
    items = _list(value)
    try:
        return all(a <= b for a, b in itertools.pairwise(items))
    except TypeError:
        raise NoSuchOverload() from None


def sum_(value: Any) -> Any:
    items = _list(value)
    if not items:
        return 0
    if all(isinstance(x, datetime.timedelta) for x in items):
        total = datetime.timedelta()
        for x in items:
            total += x
        return total
    if any(isinstance(x, bool) or not isinstance(x, int | float) for x in items):
        raise NoSuchOverload()
    return sum(items)


def min_(value: Any) -> Any:
    items = _list(value)
    if not items:
        raise LibraryError("min called on empty list")
    try:
        return min(items)
    except TypeError:
        raise NoSuchOverload() from None


def max_(value: Any) -> Any:
    items = _list(value)
    if not items:
        raise LibraryError("max called on empty list")
    try:
        return max(items)
    except TypeError:
        raise NoSuchOverload() from None


def _same(a: Any, b: Any) -> bool:
    # CEL equality does not mix booleans with numbers.
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def index_of(items: list[Any], element: Any) -> int:
    for i, item in enumerate(items):
        if _same(item, element):
            return i
    return -1


def last_index_of(items: list[Any], element: Any) -> int:
    for i in range(len(items) - 1, -1, -1):
        if _same(items[i], element):
            return i
    return -1
