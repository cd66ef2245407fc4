"""JSON values as Go's ``interface{}`` sees them: copies, equality and map keys.

Go compares two ``interface{}`` values by dynamic type first, so ``1`` (int64) and
``1.0`` (float64), or ``true`` and ``1``, are different — unlike Python — and
comparing or hashing two maps or two slices panics. The patch engines use these
helpers wherever upstream compares decoded values with ``==`` or keys a Go map
by them.

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api.patch import errors, gofmt


def deep_copy(value: Any) -> Any:
    """A copy of a JSON-shaped value sharing no dict or list with it."""
    kind = type(value)
    if kind is dict:
        return {k: deep_copy(item) for k, item in value.items()}
    if kind is list:
        return [deep_copy(item) for item in value]
    return value


def go_equal(a: Any, b: Any) -> bool:
    """Go's ``a == b`` on two ``interface{}`` values holding decoded JSON."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict or kind is list:
        raise errors.panic(f"runtime error: comparing uncomparable type {gofmt.type_name(a)}")
    return bool(a == b)


def go_key(value: Any) -> tuple[type, Any]:
    """A set/dict key that tells values apart as a Go ``map[interface{}]`` does."""
    kind = type(value)
    if kind is dict or kind is list:
        raise errors.panic(f"runtime error: hash of unhashable type {gofmt.type_name(value)}")
    return (kind, value)


def same_json(a: Any, b: Any) -> bool:
    """Structural equality where numbers of different Go types differ (``1`` vs ``1.0``)."""
    kind = type(a)
    if kind is dict:
        return (
            type(b) is dict
            and len(a) == len(b)
            and all(k in b and same_json(item, b[k]) for k, item in a.items())
        )
    if kind is list:
        return type(b) is list and len(a) == len(b) and all(map(same_json, a, b))
    return kind is type(b) and bool(a == b)
