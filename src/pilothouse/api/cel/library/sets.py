"""cel-go's sets extension: ``sets.contains``, ``sets.equivalent``, ``sets.intersects``.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.cel.library.lists import index_of
from pilothouse.api.cel.library.opaque import NoSuchOverload


def _lists(a: Any, b: Any) -> tuple[list[Any], list[Any]]:
    if not isinstance(a, list) or not isinstance(b, list):
        raise NoSuchOverload()
    return a, b


def contains(a: Any, b: Any) -> bool:
    outer, inner = _lists(a, b)
    return all(index_of(outer, x) >= 0 for x in inner)


def equivalent(a: Any, b: Any) -> bool:
    return contains(a, b) and contains(b, a)


def intersects(a: Any, b: Any) -> bool:
    left, right = _lists(a, b)
    return any(index_of(left, x) >= 0 for x in right)
