"""The fields a write gives its manager when nobody owned anything before: one walk.

On create (and on any Update-operation write of an object that has no managers
yet) the general path compares the old object with the new one
(:func:`.typed.compare`), drops the endpoint's reset fields and the stripped
metadata with set algebra, and sorts the result into FieldsV1
(:meth:`.fieldpath.Set.to_fields`). With no other manager to take fields from,
only the added and modified fields matter, so :func:`changed_fields` computes
exactly that set, already filtered and already in FieldsV1 order, in a single
walk over the new object. It is what creates pay on every request, so it avoids
building intermediate sets; tests compare it with the general path on many
objects.

Its rules are the general path's, node for node: a field absent from ``old``
is owned with everything below it; a field whose value changed is owned as a
leaf unless both values are granular maps or lists, in which case only what
changed below it is owned; a removed field is owned by nobody.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from typing import Any, Final

from pilothouse.api.fieldmanager import fieldpath, typed
from pilothouse.api.fieldmanager.fieldpath import SELF, Body
from pilothouse.api.fieldmanager.types import DEDUCED, Type

_MISSING = typed.MISSING
_CONTAINERS = (dict, list)  # a tuple: isinstance checks it faster than ``dict | list``


def changed_fields(
    old: Any, new: Any, typ: Type, *, ignored: Body | None, stripped: Body | None
) -> Body:
    """FieldsV1 of the fields ``new`` added or modified compared with ``old``.

    Paths under a member of ``ignored`` are left out with everything below them
    (:meth:`.fieldpath.Set.recursive_difference`); members of ``stripped`` lose
    their own membership only (:meth:`.fieldpath.Set.__sub__`). The result
    equals ``Set(added | modified).recursive_difference(ignored) -
    stripped``'s ``to_fields()``; it is a new tree the caller may keep.
    """
    if old == new:
        return {}
    return _children(old, new, typ, ignored or None, stripped or None) or {}


def _entry(member: bool, below: Body) -> Body | None:
    if below:
        if not member:
            return below
        out: Body = {SELF: {}}
        out.update(below)
        return out
    return {} if member else None


def _owned(value: Any, typ: Type) -> Body:
    """The entry of a node ``old`` did not have: a member, with everything below it."""
    if isinstance(value, _CONTAINERS):
        below = _plain(value, typ)
        if below:
            return {SELF: {}, **below}
    return {}


def _child_filters(
    pe: str, ignored: Body | None, stripped: Body | None
) -> tuple[bool, Body | None, bool, Body | None]:
    """(skip, ignored below, stripped here, stripped below) for one path element."""
    below_ignored = below_stripped = None
    strip_here = False
    if ignored is not None:
        found = ignored.get(pe)
        if found is not None:
            if fieldpath.is_member(found):
                return True, None, False, None
            below_ignored = found
    if stripped is not None:
        found = stripped.get(pe)
        if found is not None:
            strip_here = fieldpath.is_member(found)
            below_stripped = fieldpath.children(found) or None
    return False, below_ignored, strip_here, below_stripped


def _place(
    out: Body,
    pe: str,
    old: Any,
    new: Any,
    typ: Type,
    ignored: Body | None,
    stripped: Body | None,
) -> None:
    """Add the entry of one node of ``new`` (``old`` may be missing) to ``out``."""
    skip, ignored, strip_here, stripped = _child_filters(pe, ignored, stripped)
    if skip:
        return
    if old is _MISSING:
        member = True
        below = _all_nodes(new, typ, ignored, stripped) if isinstance(new, _CONTAINERS) else {}
    elif old == new:
        return
    else:
        found = _children(old, new, typ, ignored, stripped)
        member = found is None
        below = found or {}
    entry = _entry(member and not strip_here, below)
    if entry is not None:
        out[pe] = entry


def _place_leaf(out: Body, pe: str, ignored: Body | None, stripped: Body | None) -> None:
    skip, _, strip_here, _ = _child_filters(pe, ignored, stripped)
    if not skip and not strip_here:
        out[pe] = {}


def _children(
    old: Any, new: Any, typ: Type, ignored: Body | None, stripped: Body | None
) -> Body | None:
    """What changed below two different values; None when they compare as leaves."""
    if (isinstance(old, dict) or isinstance(new, dict)) and typ.is_map and not typ.map_atomic:
        if not (old is None or isinstance(old, dict)) or not (new is None or isinstance(new, dict)):
            return None
        if not old and not new:
            return None  # empty and null are leaves, and they differ
        return _map_children(old or {}, new or {}, typ, ignored, stripped)
    if (isinstance(old, list) or isinstance(new, list)) and typ.is_list and not typ.list_atomic:
        if not (old is None or isinstance(old, list)) or not (new is None or isinstance(new, list)):
            return None
        if not old and not new:
            return None
        return _list_children(old or [], new or [], typ, ignored, stripped)
    return None


def _map_children(
    old: dict[str, Any],
    new: dict[str, Any],
    typ: Type,
    ignored: Body | None,
    stripped: Body | None,
) -> Body:
    fields = typ.fields
    elem = typ.elem if typ.elem is not None else DEDUCED
    filtered = ignored is not None or stripped is not None
    out: Body = {}
    # Fields only ``old`` has were removed: nobody owns them.
    for name in sorted(new):
        value = new[name]
        child_type = fields.get(name, elem)
        before = old.get(name, _MISSING)
        if filtered:
            _place(out, "f:" + name, before, value, child_type, ignored, stripped)
        elif before is _MISSING:
            out["f:" + name] = _owned(value, child_type)
        elif before != value:
            below = _children(before, value, child_type, None, None)
            if below is None:
                out["f:" + name] = {}
            elif below:
                out["f:" + name] = below
    return out


def _list_children(
    old: list[Any], new: list[Any], typ: Type, ignored: Body | None, stripped: Body | None
) -> Body | None:
    items = typ.items
    assert items is not None
    old_pes = _elements(old, typ)
    new_pes = _elements(new, typ)
    if old_pes is None or new_pes is None:
        return None
    elements = _by_element(new, new_pes)
    out: Body = {}
    if not old_pes:
        # Every item is new (the usual create): owned with all below it.
        for pe, item in elements.items():
            if item is _DUPLICATED:
                _place_leaf(out, pe, ignored, stripped)
            else:
                _place(out, pe, _MISSING, item, items, ignored, stripped)
        return out
    old_values: dict[str, list[Any]] = {}
    for item, pe in zip(old, old_pes, strict=True):
        old_values.setdefault(pe, []).append(item)
    new_values: dict[str, list[Any]] = {}
    for item, pe in zip(new, new_pes, strict=True):
        new_values.setdefault(pe, []).append(item)
    for pe in elements:
        before = old_values.get(pe, ())
        after = new_values[pe]
        if len(before) <= 1 and len(after) <= 1:
            _place(out, pe, before[0] if before else _MISSING, after[0], items, ignored, stripped)
        elif len(before) >= 2 and len(after) >= 2:
            # Duplicated before and after: compared as one atomic value.
            if before != after:
                _place_leaf(out, pe, ignored, stripped)
        elif len(after) >= 2:
            # Duplicated only now: the element is owned, nothing below it.
            _place_leaf(out, pe, ignored, stripped)
        else:
            # Duplicated only before: what is left is new; the general path
            # records the element itself as removed.
            _place(out, pe, _MISSING, after[0], items, ignored, stripped)
    return out


def _elements(items: list[Any], list_type: Type) -> list[str] | None:
    try:
        return [typed.item_element(item, list_type) for item in items]
    except typed.ItemError:
        return None


class _Duplicated:
    __slots__ = ()


_DUPLICATED: Final = _Duplicated()


def _list_elements(value: list[Any], typ: Type) -> dict[str, Any] | None:
    """A granular list's items by path element (see :func:`_by_element`); None
    when an item cannot be named."""
    elements = _elements(value, typ)
    return None if elements is None else _by_element(value, elements)


def _by_element(value: list[Any], elements: list[str]) -> dict[str, Any]:
    """Items by path element, in FieldsV1 order; ``_DUPLICATED`` for an element
    named twice."""
    unique: dict[str, Any] = {}
    for item, pe in zip(value, elements, strict=True):
        unique[pe] = _DUPLICATED if pe in unique else item
    if len(unique) <= 1:
        return unique
    return {pe: unique[pe] for pe in sorted(unique, key=fieldpath.sort_key)}


def _all_nodes(value: Any, typ: Type, ignored: Body | None, stripped: Body | None) -> Body:
    """Every node below a value that ``old`` did not have, in FieldsV1 order."""
    if ignored is None and stripped is None:
        return _plain(value, typ)
    out: Body = {}
    if isinstance(value, dict):
        if value and typ.is_map and not typ.map_atomic:
            for name in sorted(value):
                _place(
                    out, "f:" + name, _MISSING, value[name], typ.field_type(name), ignored, stripped
                )
        return out
    if not value or not typ.is_list or typ.list_atomic:
        return out
    for pe, item in (_list_elements(value, typ) or {}).items():
        if item is _DUPLICATED:
            _place_leaf(out, pe, ignored, stripped)
        else:
            _place(out, pe, _MISSING, item, typ.items, ignored, stripped)  # type: ignore[arg-type]
    return out


def _plain(value: Any, typ: Type) -> Body:
    """:func:`_all_nodes` with nothing to filter: the hot path of every create."""
    out: Body = {}
    if isinstance(value, dict):
        if not value or not typ.is_map or typ.map_atomic:
            return out
        fields = typ.fields
        elem = typ.elem if typ.elem is not None else DEDUCED
        for name in sorted(value):
            child = value[name]
            # _owned, inlined: this loop visits most nodes of a new object.
            if isinstance(child, _CONTAINERS):
                below = _plain(child, fields.get(name, elem))
                out["f:" + name] = {SELF: {}, **below} if below else {}
            else:
                out["f:" + name] = {}
        return out
    if not value or not typ.is_list or typ.list_atomic:
        return out
    items = typ.items
    assert items is not None
    for pe, item in (_list_elements(value, typ) or {}).items():
        out[pe] = {} if item is _DUPLICATED else _owned(item, items)
    return out
