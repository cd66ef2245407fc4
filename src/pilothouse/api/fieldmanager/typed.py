"""Walking an object with its type: its field set, differences and removals.

These are structured-merge-diff's ``typed`` walks over plain JSON-shaped values:

* :func:`to_field_set` — every leaf and list item an (applied) object mentions;
* :func:`compare` — the fields added, modified and removed between two objects;
* :func:`remove_items` — an object without the fields and items of a set;
* :func:`ensure_named_fields` — a set plus the struct fields its members lie under.

Checking an applied object against its schema is :mod:`.validation`.

Values whose shape does not fit their type (which validation rejects in applied
configurations) are treated as leaves, so a stored object never makes a walk fail.
Python's ``==`` decides equality, as Go's ``value.Equals`` does except that
``True == 1`` here; schemas keep booleans and numbers apart in practice.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pilothouse.api import gostrings
from pilothouse.api.fieldmanager import fieldpath, gotext
from pilothouse.api.fieldmanager.fieldpath import SELF, Body
from pilothouse.api.fieldmanager.types import DEDUCED, Type


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""An absent value (a key not in a map), as opposed to an explicit null."""


class ItemError(ValueError):
    """A list item that cannot be named (no key field, a null, a map in a set…)."""


def item_element(item: Any, list_type: Type) -> str:
    """The path element naming an item of an associative list or set."""
    keys = list_type.keys
    if keys:
        if item is None:
            raise ItemError("associative list with keys may not have a null element")
        if not isinstance(item, dict):
            raise ItemError("associative list with keys may not have non-map elements")
        if len(keys) == 1:
            name = keys[0]
            if name in item:
                found = item[name]
            elif name in list_type.key_defaults:
                found = list_type.key_defaults[name]
            else:
                raise _missing_key(name)
            if isinstance(found, str):
                return 'k:{"' + name + '":' + gotext.json_string(found) + "}"
            return fieldpath.key(((name, found),))
        pairs = []
        for name in keys:
            if name in item:
                pairs.append((name, item[name]))
            elif name in list_type.key_defaults:
                pairs.append((name, list_type.key_defaults[name]))
            else:
                raise _missing_key(name)
        return fieldpath.key(pairs)
    if isinstance(item, dict):
        raise ItemError("associative list without keys has an element that's a map type")
    if isinstance(item, list):
        raise ItemError("not supported: associative list with lists as elements")
    if item is None:
        raise ItemError("associative list without keys has an element that's an explicit null")
    return fieldpath.value(item)


def _missing_key(name: str) -> ItemError:
    return ItemError(
        f"associative list with keys has an element that omits key field "
        f"{gostrings.quote(name)} (and doesn't have default value)"
    )


def _elements(items: list[Any], list_type: Type) -> list[str] | None:
    try:
        return [item_element(item, list_type) for item in items]
    except ItemError:
        return None


def _duplicates(elements: list[str]) -> set[str]:
    if len(set(elements)) == len(elements):
        return set()
    seen: set[str] = set()
    dups: set[str] = set()
    for pe in elements:
        if pe in seen:
            dups.add(pe)
        seen.add(pe)
    return dups


def _attach(body: Body, pe: str, member: bool, below: Body) -> None:
    if below:
        if member:
            below[SELF] = {}
        body[pe] = below
    elif member:
        body[pe] = {}


# --- field sets ---------------------------------------------------------------------


def to_field_set(value: Any, typ: Type) -> fieldpath.Set:
    """Every field an object sets: its leaves, list items and empty or null fields."""
    body: Body = {}
    if isinstance(value, dict | list):
        _collect(value, typ, body)
    return fieldpath.Set(body)


def _collect(value: Any, typ: Type, body: Body) -> bool:
    """Fill ``body`` with what lies below ``value``; True when ``value`` is a leaf."""
    if isinstance(value, dict):
        if not typ.is_map or typ.map_atomic:
            return True
        fields = typ.fields
        for k, child in value.items():
            child_type = fields.get(k)
            declared = child_type is not None
            if child_type is None:
                child_type = typ.elem if typ.elem is not None else DEDUCED
            if isinstance(child, dict | list):
                below: Body = {}
                leaf = _collect(child, child_type, below)
                member = leaf or not declared or (isinstance(child, dict) and not child)
                _attach(body, "f:" + k, member, below)
            else:
                body["f:" + k] = {}
        return False
    if isinstance(value, list):
        if not typ.is_list or typ.list_atomic:
            return True
        assert typ.items is not None
        elements = _elements(value, typ)
        if elements is None:
            return True
        dups = _duplicates(elements)
        for item, pe in zip(value, elements, strict=True):
            if pe in dups:
                body[pe] = {}
                continue
            below = {}
            if isinstance(item, dict | list):
                _collect(item, typ.items, below)
            _attach(body, pe, True, below)
        return False
    return True


def _all_nodes(value: Any, typ: Type, body: Body) -> None:
    """Fill ``body`` with every node below ``value`` (an added or removed subtree)."""
    if isinstance(value, dict):
        if not value or not typ.is_map or typ.map_atomic:
            return
        for k, child in value.items():
            below: Body = {}
            if isinstance(child, dict | list):
                _all_nodes(child, typ.field_type(k), below)
            _attach(body, "f:" + k, True, below)
    elif isinstance(value, list):
        if not value or not typ.is_list or typ.list_atomic:
            return
        assert typ.items is not None
        elements = _elements(value, typ)
        if elements is None:
            return
        dups = _duplicates(elements)
        for item, pe in zip(value, elements, strict=True):
            if pe in dups:
                body[pe] = {}
                continue
            below = {}
            if isinstance(item, dict | list):
                _all_nodes(item, typ.items, below)
            _attach(body, pe, True, below)


# --- comparison ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Comparison:
    """The fields ``rhs`` added, changed and removed compared with ``lhs``."""

    added: fieldpath.Set
    modified: fieldpath.Set
    removed: fieldpath.Set

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.removed)

    def filtered(self, ignored: fieldpath.Set | None) -> Comparison:
        """Without the ignored fields and everything below them."""
        if not ignored:
            return self
        return Comparison(
            self.added.recursive_difference(ignored),
            self.modified.recursive_difference(ignored),
            self.removed.recursive_difference(ignored),
        )


def compare(lhs: Any, rhs: Any, typ: Type) -> Comparison:
    """How ``rhs`` differs from ``lhs`` (both whole objects, both present)."""
    added: Body = {}
    modified: Body = {}
    removed: Body = {}
    if lhs != rhs:
        _compare_children(lhs, rhs, typ, added, modified, removed)
    return Comparison(fieldpath.Set(added), fieldpath.Set(modified), fieldpath.Set(removed))


def _compare_node(
    lhs: Any, rhs: Any, typ: Type, pe: str, added: Body, modified: Body, removed: Body
) -> None:
    if lhs is MISSING:
        below: Body = {}
        _all_nodes(rhs, typ, below)
        _attach(added, pe, True, below)
        return
    if rhs is MISSING:
        below = {}
        _all_nodes(lhs, typ, below)
        _attach(removed, pe, True, below)
        return
    if lhs == rhs:
        return
    sub_added: Body = {}
    sub_modified: Body = {}
    sub_removed: Body = {}
    if not _compare_children(lhs, rhs, typ, sub_added, sub_modified, sub_removed):
        fieldpath.mark(modified, pe)
        return
    if sub_added:
        added[pe] = sub_added
    if sub_modified:
        modified[pe] = sub_modified
    if sub_removed:
        removed[pe] = sub_removed


def _compare_children(
    lhs: Any, rhs: Any, typ: Type, added: Body, modified: Body, removed: Body
) -> bool:
    """Compare what lies below two different values; False when they are leaves."""
    if (isinstance(lhs, dict) or isinstance(rhs, dict)) and typ.is_map and not typ.map_atomic:
        if not (lhs is None or isinstance(lhs, dict)) or not (rhs is None or isinstance(rhs, dict)):
            return False
        if not lhs and not rhs:
            return False  # empty and null are leaves, and they differ
        lmap: dict[str, Any] = lhs or {}
        rmap: dict[str, Any] = rhs or {}
        for k, lvalue in lmap.items():
            _compare_node(
                lvalue, rmap.get(k, MISSING), typ.field_type(k), "f:" + k, added, modified, removed
            )
        for k, rvalue in rmap.items():
            if k not in lmap:
                _compare_node(
                    MISSING, rvalue, typ.field_type(k), "f:" + k, added, modified, removed
                )
        return True
    if (isinstance(lhs, list) or isinstance(rhs, list)) and typ.is_list and not typ.list_atomic:
        if not (lhs is None or isinstance(lhs, list)) or not (rhs is None or isinstance(rhs, list)):
            return False
        if not lhs and not rhs:
            return False
        return _compare_lists(lhs or [], rhs or [], typ, added, modified, removed)
    return False


def _compare_lists(
    lhs: list[Any], rhs: list[Any], typ: Type, added: Body, modified: Body, removed: Body
) -> bool:
    assert typ.items is not None
    lpes = _elements(lhs, typ)
    rpes = _elements(rhs, typ)
    if lpes is None or rpes is None:
        return False
    lvalues: dict[str, list[Any]] = {}
    for item, pe in zip(lhs, lpes, strict=True):
        lvalues.setdefault(pe, []).append(item)
    rvalues: dict[str, list[Any]] = {}
    for item, pe in zip(rhs, rpes, strict=True):
        rvalues.setdefault(pe, []).append(item)
    items = typ.items
    for pe in {**lvalues, **rvalues}:
        llist = lvalues.get(pe, [])
        rlist = rvalues.get(pe, [])
        if len(llist) <= 1 and len(rlist) <= 1:
            _compare_node(
                llist[0] if llist else MISSING,
                rlist[0] if rlist else MISSING,
                items,
                pe,
                added,
                modified,
                removed,
            )
        elif len(llist) >= 2 and len(rlist) >= 2:
            # Duplicated before and after: compared as one atomic value.
            if llist != rlist:
                fieldpath.mark(modified, pe)
        elif len(llist) >= 2:
            if rlist:
                _compare_node(MISSING, rlist[0], items, pe, added, modified, removed)
            fieldpath.mark(removed, pe)
        else:
            if llist:
                _compare_node(llist[0], MISSING, items, pe, added, modified, removed)
            fieldpath.mark(added, pe)
    return True


# --- named fields and removal ---------------------------------------------------------


def ensure_named_fields(fields: fieldpath.Set, typ: Type) -> fieldpath.Set:
    """The set plus every struct field that has members below it."""
    return fieldpath.Set(_named(fields.body, typ))


_NO_TYPE = Type("none")


def _named(body: Body, typ: Type | None) -> Body:
    out: Body = {}
    for pe, entry in body.items():
        if not entry:
            out[pe] = entry
            continue
        declared = False
        child_type: Type | None = _NO_TYPE
        if pe.startswith("f:") and typ is not None and typ.is_map:
            name = pe[2:]
            declared = name in typ.fields
            child_type = typ.field_type(name)
        elif pe.startswith("k:") and typ is not None and typ.is_list:
            child_type = typ.items
        below = _named(fieldpath.children(entry), child_type)
        made = fieldpath.make_entry(fieldpath.is_member(entry) or declared, below)
        if made is not None:
            out[pe] = made
    return out


class _Emptied:
    __slots__ = ()


_EMPTIED: Final = _Emptied()


def remove_items(value: Any, fields: fieldpath.Set, typ: Type) -> Any:
    """The value without the members of ``fields`` (and what lies below them).

    Maps and lists emptied by the removal are dropped from their parents, as
    Go's typed objects drop empty ``omitempty`` fields.
    """
    if not fields:
        return value
    out = _remove(value, fields.body, typ)
    if out is _EMPTIED:
        return {} if isinstance(value, dict) else []
    return out


def _remove(value: Any, body: Body, typ: Type) -> Any:
    if isinstance(value, dict):
        if not value or not typ.is_map or typ.map_atomic:
            return value
        out: dict[str, Any] = {}
        changed = False
        for k, child in value.items():
            entry = body.get("f:" + k)
            if entry is None:
                out[k] = child
                continue
            changed = True
            if fieldpath.is_member(entry):
                continue
            kept = _remove(child, entry, typ.field_type(k))
            if kept is not _EMPTIED:
                out[k] = kept
        if not changed:
            return value
        return out if out else _EMPTIED
    if isinstance(value, list):
        if not value or not typ.is_list or typ.list_atomic:
            return value
        assert typ.items is not None
        elements = _elements(value, typ)
        if elements is None:
            return value
        items: list[Any] = []
        changed = False
        for item, pe in zip(value, elements, strict=True):
            entry = body.get(pe)
            if entry is None:
                items.append(item)
                continue
            changed = True
            if fieldpath.is_member(entry):
                continue
            kept = _remove(item, entry, typ.items)
            items.append({} if kept is _EMPTIED else kept)
        if not changed:
            return value
        return items if items else _EMPTIED
    return value
