"""Merging an applied configuration into the live object, and pruning what was let go.

:func:`merge` is structured-merge-diff's ``TypedValue.Merge``: the applied value
wins on every leaf it sets; granular maps merge key by key; associative lists
merge item by item (matched by key) and take the applied order for the items
the configuration mentions, keeping the others where they were; atomic maps and
lists are replaced whole. An explicit ``null`` for a granular map or list leaves
the live value alone, as upstream does; for a scalar it is the new value.

:func:`prune` removes what an applier applied last time and omits now, unless
another manager owns it: upstream's ``Updater.prune`` with its two add-back passes.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pilothouse.api.fieldmanager import fieldpath, typed
from pilothouse.api.fieldmanager.typed import MISSING
from pilothouse.api.fieldmanager.types import Type


def merge(lhs: Any, rhs: Any, typ: Type) -> Any:
    """``rhs`` (an applied configuration) merged into ``lhs`` (the live object)."""
    if rhs is MISSING:
        return lhs
    if lhs is MISSING:
        return rhs
    if typ.is_map and not typ.map_atomic and _map_like(lhs) and _map_like(rhs):
        if not lhs and not rhs:
            return rhs
        lmap: dict[str, Any] = lhs or {}
        rmap: dict[str, Any] = rhs or {}
        out: dict[str, Any] = {}
        for k, lvalue in lmap.items():
            rvalue = rmap.get(k, MISSING)
            out[k] = lvalue if rvalue is MISSING else merge(lvalue, rvalue, typ.field_type(k))
        for k, rvalue in rmap.items():
            if k not in lmap:
                out[k] = rvalue
        return out
    if typ.is_list and not typ.list_atomic and _list_like(lhs) and _list_like(rhs):
        if not lhs and not rhs:
            return rhs
        merged = _merge_lists(lhs or [], rhs or [], typ)
        return rhs if merged is None else merged
    return rhs


def _map_like(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _list_like(value: Any) -> bool:
    return value is None or isinstance(value, list)


def _merge_lists(lhs: list[Any], rhs: list[Any], typ: Type) -> list[Any] | None:
    """Upstream's associative-list merge, order included (None: items not nameable)."""
    assert typ.items is not None
    try:
        lpes = [typed.item_element(item, typ) for item in lhs]
        rpes = [typed.item_element(item, typ) for item in rhs]
    except typed.ItemError:
        return None
    observed_rhs = dict(zip(rpes, rhs, strict=True))
    observed_lhs: dict[str, Any] = {}
    for pe, item in zip(lpes, lhs, strict=True):
        # A key the live list repeats merges as null with the applied item.
        observed_lhs[pe] = None if pe in observed_lhs else item
    shared = [pe for pe in rpes if pe in observed_lhs]
    shared.reverse()
    next_shared = shared.pop() if shared else None
    merged_rhs: set[str] = set()
    items = typ.items
    out: list[Any] = []
    li = ri = 0
    while li < len(lpes) or ri < len(rpes):
        if li < len(lpes) and ri < len(rpes):
            pe = lpes[li]
            if pe == rpes[ri]:
                merged_rhs.add(pe)
                out.append(merge(observed_lhs.get(pe, MISSING), observed_rhs[pe], items))
                li += 1
                ri += 1
                next_shared = shared.pop() if shared else None
                continue
            if pe in observed_rhs and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(lpes):
            pe = lpes[li]
            if pe not in observed_rhs:
                out.append(merge(lhs[li], MISSING, items))
                li += 1
                continue
            if pe in merged_rhs:
                li += 1
        if ri < len(rpes):
            pe = rpes[ri]
            merged_rhs.add(pe)
            out.append(merge(observed_lhs.get(pe, MISSING), observed_rhs[pe], items))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop() if shared else None
    return out


def prune(
    merged: Any,
    *,
    last_applied: fieldpath.Set | None,
    applied: fieldpath.Set,
    owned: Iterable[fieldpath.Set],
    typ: Type,
) -> Any:
    """Remove what the applier owned last time, no longer applies and nobody else owns.

    ``applied`` is what the applier applies now; ``owned`` are the sets of every
    manager now, the applier's new set included.
    """
    if not last_applied or not (last_applied - applied):
        # Nothing let go (the common re-apply): nothing to remove.
        return merged
    last = typed.ensure_named_fields(last_applied, typ)
    union = fieldpath.Set()
    for fields in owned:
        union = union | fields
    managed = typed.ensure_named_fields(union, typ)
    if not (last - managed):
        # Everything applied last time is still owned by someone: nothing to remove.
        return merged
    pruned = typed.remove_items(merged, last, typ)
    merged_set = typed.ensure_named_fields(typed.to_field_set(merged, typ), typ)
    pruned_set = typed.ensure_named_fields(typed.to_field_set(pruned, typ), typ)
    # Add back what others own (or the applier still applies).
    pruned = typed.remove_items(merged, merged_set - (pruned_set | managed), typ)
    # Add back what was removed only because it lay below something last applied.
    pruned_set = typed.ensure_named_fields(typed.to_field_set(pruned, typ), typ)
    return typed.remove_items(merged, (merged_set - pruned_set) & last, typ)
