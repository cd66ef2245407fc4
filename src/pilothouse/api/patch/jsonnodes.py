"""The document under a JSON patch, node by node as evanphx/json-patch v4 keeps it.

v4.12.0 holds the document as lazily decoded nodes, and three kinds of ``null``
behave differently there; clients can see the difference, so they are kept
apart while a patch applies and all become ``null`` in the result:

* ``None`` — a ``null`` of the original document, or one added without a
  ``value`` (a nil node): walking through it finds nothing;
* :data:`OP_NULL` — a ``null`` an ``add`` or ``replace`` put there
  (``"value": null``): walking through it crashes the request;
* :data:`COPIED_NULL` — a copy of :data:`OP_NULL`: it reads as an empty object
  that cannot be written to, and ``test`` finds it equal to ``{}``.

The containers' operations raise :class:`Failed` with the library's messages.

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from pilothouse.api import gostrings
from pilothouse.api.patch import errors, values
from pilothouse.api.patch.errors import PatchError


class _Null:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


OP_NULL: Final = _Null("OP_NULL")
COPIED_NULL: Final = _Null("COPIED_NULL")
ABSENT: Final = _Null("ABSENT")  # an operation without a ``value``

MISSING_VALUE = "missing value"
_INVALID_INDEX = "invalid index referenced"
_ATOI = re.compile(r"[+-]?[0-9]+\Z")
_INT64 = (-(1 << 63), (1 << 63) - 1)


class Failed(Exception):
    """An operation failed; the text is evanphx/json-patch's error."""


def wrap(message: str, cause: object) -> Failed:
    """``errors.Wrapf(cause, message)``."""
    return Failed(f"{message}: {cause}")


def nil_dereference() -> PatchError:
    return errors.panic("runtime error: invalid memory address or nil pointer dereference")


class NilMap:
    """The container :data:`COPIED_NULL` decodes to: a nil Go map."""

    __slots__ = ()


def atoi(text: str) -> int:
    """Go's ``strconv.Atoi``."""
    if not _ATOI.match(text):
        raise Failed(f"strconv.Atoi: parsing {gostrings.quote(text)}: invalid syntax")
    number = int(text)
    if not _INT64[0] <= number <= _INT64[1]:
        raise Failed(f"strconv.Atoi: parsing {gostrings.quote(text)}: value out of range")
    return number


def _invalid_index(index: int) -> Failed:
    return wrap(f"Unable to access invalid index: {index}", _INVALID_INDEX)


def as_container(node: Any) -> dict[str, Any] | list[Any] | NilMap | None:
    """What a path walks into through ``node``, or None where it finds nothing."""
    kind = type(node)
    if kind is dict or kind is list:
        return node  # type: ignore[no-any-return]
    if node is OP_NULL:
        raise nil_dereference()
    if node is COPIED_NULL:
        return NilMap()
    return None


def get(container: Any, key: str) -> Any:
    """The member or element (None when absent or null)."""
    if type(container) is dict:
        return container.get(key)
    if type(container) is NilMap:
        return None
    index = atoi(key)
    if index < 0:
        if index < -len(container):
            raise _invalid_index(index)
        index += len(container)
    if index >= len(container):
        raise _invalid_index(index)
    return container[index]


def _assign_to_nil_map() -> PatchError:
    return errors.panic("assignment to entry in nil map")


def set_(container: Any, key: str, node: Any) -> None:
    """Overwrite a member or element (``replace``)."""
    if type(container) is dict:
        container[key] = node
        return
    if type(container) is NilMap:
        raise _assign_to_nil_map()
    index = atoi(key)
    if index < 0:
        if index < -len(container):
            raise _invalid_index(index)
        index += len(container)
    container[index] = node


def add(container: Any, key: str, node: Any) -> None:
    """Set a member, or insert an element (``-`` appends)."""
    if type(container) is dict:
        container[key] = node
        return
    if type(container) is NilMap:
        raise _assign_to_nil_map()
    if key == "-":
        container.append(node)
        return
    try:
        index = atoi(key)
    except Failed as failure:
        raise wrap(f"value was not a proper array index: '{key}'", failure) from None
    size = len(container) + 1
    if index >= size:
        raise _invalid_index(index)
    if index < 0:
        if index < -size:
            raise _invalid_index(index)
        index += size
    container.insert(index, node)


def remove(container: Any, key: str) -> None:
    """Delete a member or element."""
    if type(container) is NilMap:
        raise wrap(f"Unable to remove nonexistent key: {key}", MISSING_VALUE)
    if type(container) is dict:
        if key not in container:
            raise wrap(f"Unable to remove nonexistent key: {key}", MISSING_VALUE)
        del container[key]
        return
    index = atoi(key)
    if index >= len(container):
        raise _invalid_index(index)
    if index < 0:
        if index < -len(container):
            raise _invalid_index(index)
        index += len(container)
    del container[index]


def equal(node: Any, expected: Any) -> bool:
    """``lazyNode.equal``: does a (non-nil) node equal an operation's value?

    Structural, but upstream dereferences array elements unchecked, so a
    ``null`` at a compared array position crashes the request; numbers compare
    as written (``1`` is not ``1.0``).
    """
    if expected is ABSENT:
        raise nil_dereference()
    if node is OP_NULL:
        return expected is None
    if node is COPIED_NULL:
        return type(expected) is dict and not expected
    kind = type(node)
    if kind is dict:
        if type(expected) is not dict or len(node) != len(expected):
            return False
        for key, item in node.items():
            if key not in expected:
                return False
            other = expected[key]
            if (item is None) != (other is None):
                return False
            if item is not None and not equal(item, other):
                return False
        return True
    if kind is list:
        if type(expected) is not list or len(node) != len(expected):
            return False
        for item, other in zip(node, expected, strict=True):
            if item is None or other is None:
                raise nil_dereference()
            if not equal(item, other):
                return False
        return True
    return values.same_json(node, expected)


def copy_node(node: Any) -> tuple[Any, int]:
    """``deepCopy``: a copy through JSON, and how many bytes the JSON takes."""
    if node is None:
        return None, 0
    if node is OP_NULL or node is COPIED_NULL:
        return COPIED_NULL, 4
    plain = to_json(node)  # already a copy
    return plain, _encoded_size(plain)


def to_json(node: Any) -> Any:
    """The node as plain JSON (every kind of null becomes ``None``)."""
    kind = type(node)
    if kind is dict:
        return {k: to_json(item) for k, item in node.items()}
    if kind is list:
        return [to_json(item) for item in node]
    if type(node) is _Null:
        return None
    return node


def _encoded_size(value: Any) -> int:
    """How many bytes Go's JSON encoder writes for ``value`` (it escapes ``<``, ``>``, ``&``)."""
    try:
        raw = orjson.dumps(value)
    except TypeError:
        return len(str(value))
    return len(raw) + 5 * (raw.count(b"<") + raw.count(b">") + raw.count(b"&"))
