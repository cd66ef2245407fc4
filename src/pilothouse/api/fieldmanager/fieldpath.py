"""Field sets: which fields of an object a manager owns, in the FieldsV1 encoding.

A path element names one step into an object, exactly as upstream's
``sigs.k8s.io/structured-merge-diff`` serialises it in ``metadata.managedFields``:

* ``f:<name>`` — a field of a map or struct;
* ``k:{"name":"c"}`` — the item of an associative list whose key fields have
  these values (keys sorted by name, compact JSON, HTML characters escaped);
* ``v:<json>`` — the item of a set (a list of scalars);
* ``i:<index>`` — an item of an atomic list, by position.

A path element is kept as that very string, so the set needs no conversion to
become ``fieldsV1`` and decoding one is mostly a walk that checks the keys.

A :class:`Set` is a tree in the FieldsV1 shape: a *body* maps path elements to
entries; an entry ``{}`` is a member with nothing below it, an entry with a
``"."`` key is a member that also has members below it, and an entry without
``"."`` only leads to members below. A non-member entry with nothing below never
exists. Sets are immutable values: operations build new bodies and may share
unchanged sub-bodies with their operands, so never change a body in place.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from pilothouse.api.fieldmanager import gotext

Path = tuple[str, ...]
Body = dict[str, Any]

SELF = "."
# --- path elements ------------------------------------------------------------------


def field(name: str) -> str:
    """``f:<name>``."""
    return "f:" + name


def index(position: int) -> str:
    """``i:<n>``: an item of an atomic list."""
    return f"i:{position}"


def value(item: Any) -> str:
    """``v:<json>``: an item of a set."""
    return "v:" + gotext.json_text(_normal(item))


def key(pairs: Iterable[tuple[str, Any]]) -> str:
    """``k:{...}``: an item of an associative list, keys sorted by name."""
    ordered = sorted(pairs, key=lambda pair: pair[0])
    return (
        "k:{"
        + ",".join(gotext.json_string(n) + ":" + gotext.json_text(_normal(v)) for n, v in ordered)
        + "}"
    )


def _normal(item: Any) -> Any:
    # Go reads numbers into float64 and writes integral ones without a fraction,
    # so 80 and 80.0 name the same item.
    if isinstance(item, float) and item == item and abs(item) < 2**63 and item == int(item):
        return int(item)
    return item


@functools.lru_cache(maxsize=16384)
def canonical(element: str) -> str | None:
    """The canonical spelling of a serialised path element; None for unknown kinds.

    Raises ValueError for a malformed element, as upstream's decoder does.
    """
    if len(element) < 2:
        raise ValueError(f"key must be 2 characters long: {element!r}")
    if element[1] != ":":
        raise ValueError(f"missing colon: {element}")
    kind, body = element[0], element[2:]
    if kind == "f":
        return element
    if kind == "v":
        return "v:" + gotext.json_text(_normal(json.loads(body)))
    if kind == "k":
        parsed = json.loads(body)
        if not isinstance(parsed, dict):
            raise ValueError(f"invalid key path element: {element}")
        return key(parsed.items())
    if kind == "i":
        return index(int(body))
    return None


def decode(element: str) -> tuple[str, Any]:
    """``("f", name)``, ``("k", [(name, value), …])``, ``("v", value)`` or ``("i", n)``."""
    kind, body = element[0], element[2:]
    if kind == "f":
        return kind, body
    if kind == "k":
        return kind, sorted(json.loads(body).items())
    if kind == "v":
        return kind, json.loads(body)
    return kind, int(body)


def _value_order(item: Any) -> tuple[Any, ...]:
    # structured-merge-diff's total order: numbers, strings, booleans, lists, maps, null.
    if isinstance(item, bool):
        return (2, item)
    if isinstance(item, int | float):
        return (0, float(item))
    if isinstance(item, str):
        return (1, item)
    if isinstance(item, list):
        return (3, tuple(_value_order(v) for v in item))
    if isinstance(item, dict):
        return (4, tuple((k, _value_order(item[k])) for k in sorted(item)))
    return (5,)


@functools.lru_cache(maxsize=16384)
@functools.lru_cache(maxsize=16384)
def sort_key(element: str) -> tuple[Any, ...]:
    """Where a path element sorts: fields, then keys, then values, then indices.

    Cached as :func:`canonical` is: the same few elements (``f:status``,
    ``k:{"type":"Ready"}``) are sorted in every set encoded, and a key's JSON would
    otherwise be parsed again each time."""
    kind, body = decode(element)
    if kind == "f":
        return (0, body)
    if kind == "k":
        return (1, tuple((name, _value_order(v)) for name, v in body))
    if kind == "v":
        return (2, _value_order(body))
    return (3, body)


def element_string(element: str) -> str:
    """``.name``, ``[name="c"]``, ``[="x"]`` or ``[0]``, as upstream prints paths."""
    kind, body = decode(element)
    if kind == "f":
        return "." + str(body)
    if kind == "k":
        return "[" + ",".join(f"{n}={gotext.value_string(v)}" for n, v in body) + "]"
    if kind == "v":
        return f"[={gotext.value_string(body)}]"
    return f"[{body}]"


def path_string(path: Path) -> str:
    """A whole path, e.g. ``.spec.template.spec.containers[name="nginx"].image``."""
    return "".join(element_string(e) for e in path)


# --- bodies -------------------------------------------------------------------------


def is_member(entry: Body) -> bool:
    return not entry or SELF in entry


def children(entry: Body) -> Body:
    if SELF not in entry:
        return entry
    return {k: v for k, v in entry.items() if k != SELF}


def make_entry(member: bool, below: Body) -> Body | None:
    """An entry from its membership and what is below it (None when it would be empty)."""
    if below:
        if not member:
            return below
        out: Body = {SELF: {}}
        out.update(below)
        return out
    return {} if member else None


def _union(a: Body, b: Body) -> Body:
    if not a:
        return b
    if not b or a is b:
        return a
    out = dict(a)
    for pe, eb in b.items():
        ea = a.get(pe)
        if ea is None:
            out[pe] = eb
        elif ea is not eb:
            entry = make_entry(is_member(ea) or is_member(eb), _union(children(ea), children(eb)))
            out[pe] = entry if entry is not None else {}
    return out


def _difference(a: Body, b: Body) -> Body:
    if not a or not b:
        return a
    out: Body = {}
    changed = False
    for pe, ea in a.items():
        eb = b.get(pe)
        if eb is None:
            out[pe] = ea
            continue
        changed = True
        entry = make_entry(
            is_member(ea) and not is_member(eb), _difference(children(ea), children(eb))
        )
        if entry is not None:
            out[pe] = entry
    return out if changed else a


def _intersection(a: Body, b: Body) -> Body:
    if not a or not b:
        return {}
    if len(b) < len(a):
        a, b = b, a
    out: Body = {}
    for pe, ea in a.items():
        eb = b.get(pe)
        if eb is None:
            continue
        entry = make_entry(
            is_member(ea) and is_member(eb), _intersection(children(ea), children(eb))
        )
        if entry is not None:
            out[pe] = entry
    return out


def _recursive_difference(a: Body, b: Body) -> Body:
    if not a or not b:
        return a
    out: Body = {}
    changed = False
    for pe, ea in a.items():
        eb = b.get(pe)
        if eb is None:
            out[pe] = ea
            continue
        changed = True
        if is_member(eb):
            continue
        entry = make_entry(is_member(ea), _recursive_difference(children(ea), children(eb)))
        if entry is not None:
            out[pe] = entry
    return out if changed else a


def _canonical_body(fields: Any) -> tuple[Body, bool]:
    """A body from a FieldsV1 object, and whether it was already in canonical order."""
    if not isinstance(fields, dict):
        raise ValueError(f"expected a FieldsV1 object, got {type(fields).__name__}")
    body: Body = {}
    same = True
    previous: tuple[Any, ...] | None = None
    for raw, sub in fields.items():
        if raw == SELF:
            same = False  # a "." at the top of a set means nothing
            continue
        pe = canonical(raw)
        if pe is None:
            same = False
            continue
        entry, entry_same = _canonical_entry(sub)
        if pe != raw or not entry_same or entry is not sub or pe in body:
            same = False
        if same:
            order = sort_key(pe)
            if previous is not None and order <= previous:
                same = False
            previous = order
        if pe in body:
            # The same element spelled twice: keep both memberships.
            merged = _union({pe: body[pe]}, {pe: entry})
            body[pe] = merged[pe]
        else:
            body[pe] = entry
    return body, same


def _canonical_entry(sub: Any) -> tuple[Body, bool]:
    if not isinstance(sub, dict):
        raise ValueError(f"expected a FieldsV1 object, got {type(sub).__name__}")
    if not sub:
        return sub, True
    member = SELF in sub
    below = {k: v for k, v in sub.items() if k != SELF} if member else sub
    body, same = _canonical_body(below)
    if member:
        same = same and next(iter(sub)) == SELF and sub[SELF] == {}
    # An entry with nothing recognisable below it is a member (upstream does the same).
    entry = make_entry(member or not body, body)
    assert entry is not None
    if same and (entry == sub):
        return sub, True
    return entry, False


def _sorted_body(body: Body) -> Body:
    out: Body = {}
    for pe in sorted(body, key=sort_key):
        entry = body[pe]
        if not entry:
            out[pe] = {}
            continue
        below = _sorted_body(children(entry))
        if SELF in entry:
            sub: Body = {SELF: {}}
            sub.update(below)
            out[pe] = sub
        else:
            out[pe] = below
    return out


class Set:
    """An immutable set of field paths (see the module docstring for its shape)."""

    __slots__ = ("_body", "_encoded")

    def __init__(self, body: Body | None = None, *, _encoded: Body | None = None) -> None:
        self._body: Body = body if body is not None else {}
        self._encoded = _encoded

    # construction and encoding

    @classmethod
    def of(cls, *paths: Path) -> Set:
        """A set of the given paths (each a tuple of path elements)."""
        body: Body = {}
        for path in paths:
            insert(body, path)
        return cls(body)

    @classmethod
    def from_fields(cls, fields: Any) -> Set:
        """Decode a ``fieldsV1`` object; ValueError when it is malformed."""
        body, same = _canonical_body(fields)
        return cls(body, _encoded=fields if same else None)

    def to_fields(self) -> Body:
        """The ``fieldsV1`` object, keys in upstream's order. Do not change it."""
        if self._encoded is None:
            self._encoded = _sorted_body(self._body)
        return self._encoded

    @property
    def body(self) -> Body:
        """The tree itself; read it, never change it."""
        return self._body

    # set algebra

    def __bool__(self) -> bool:
        return bool(self._body)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Set) and self._body == other._body

    def __hash__(self) -> int:  # pragma: no cover - sets are not used as keys
        raise TypeError("unhashable type: 'Set'")

    def __or__(self, other: Set) -> Set:
        return self._wrap(_union(self._body, other._body), other)

    def __sub__(self, other: Set) -> Set:
        return self._wrap(_difference(self._body, other._body), other)

    def __and__(self, other: Set) -> Set:
        return Set(_intersection(self._body, other._body))

    def recursive_difference(self, other: Set) -> Set:
        """Remove every path of ``other`` *and everything below it*."""
        return self._wrap(_recursive_difference(self._body, other._body), other)

    def _wrap(self, body: Body, other: Set) -> Set:
        if body is self._body:
            return self
        if body is other._body:
            return other
        return Set(body)

    # queries

    def has(self, path: Path) -> bool:
        """Whether the path itself is a member."""
        body = self._body
        for pe in path[:-1]:
            entry = body.get(pe)
            if not entry:
                return False
            body = entry
        if not path:
            return False
        entry = body.get(path[-1])
        return entry is not None and is_member(entry)

    def with_prefix(self, element: str) -> Set:
        """The members below one element, without it."""
        entry = self._body.get(element)
        if not entry:
            return Set()
        return Set(children(entry))

    def paths(self) -> Iterator[Path]:
        """Every member path, in upstream's order (members of a level, then deeper)."""
        yield from _iterate(self._body, ())

    def __len__(self) -> int:
        return sum(1 for _ in self.paths())

    def __repr__(self) -> str:
        return "Set(" + ", ".join(path_string(p) for p in self.paths()) + ")"


def _iterate(body: Body, prefix: Path) -> Iterator[Path]:
    order = sorted(body, key=sort_key)
    for pe in order:
        if is_member(body[pe]):
            yield (*prefix, pe)
    for pe in order:
        entry = body[pe]
        if entry:
            below = children(entry)
            if below:
                yield from _iterate(below, (*prefix, pe))


def insert(body: Body, path: Path) -> None:
    """Add a path to a body being built (only for bodies nobody else holds)."""
    if not path:
        return
    for pe in path[:-1]:
        entry = body.get(pe)
        if entry is None:
            entry = body[pe] = {}
            body = entry
            continue
        if not entry:
            entry[SELF] = {}
        body = entry
    last = path[-1]
    entry = body.get(last)
    if entry is None:
        body[last] = {}
    elif entry and SELF not in entry:
        entry[SELF] = {}


def mark(body: Body, element: str) -> None:
    """Make one element of a body being built a member."""
    entry = body.get(element)
    if entry is None:
        body[element] = {}
    elif entry and SELF not in entry:
        entry[SELF] = {}


# --- timestamps ---------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def unix_seconds(timestamp: str | None) -> int:
    """Seconds since the epoch of an RFC 3339 ``metav1.Time`` (0 when absent or bad)."""
    if not timestamp:
        return 0
    try:
        parsed = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return 0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp())
