"""Merging lists in a strategic merge patch (``mergeSlice`` and ``mergePatchIntoOriginal``).

Lists of objects merge by the field's merge key, lists of primitives as sets;
``$patch`` items delete or replace, and ``$setElementOrder/<field>`` orders the
result. See :mod:`.strategic` for the whole picture and :mod:`.ordering` for
how the merged items are ordered.

Where the order of the result depends on it, this mirrors what Go's slices do
underneath upstream's code: deleting an item shifts the rest left *in the
original list's array*, and items appended afterwards reuse the freed slots of
that array. Upstream then orders the list by that array, so a list that loses
items and gains new ones in one patch comes out as it does upstream only if
the same happens here (:class:`_GoArray`). The original lists are taken to fill
their arrays exactly, as the API server's deep copy of the stored object leaves
them.

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pilothouse.api.patch import errors, gofmt, meta, ordering, values
from pilothouse.api.patch.meta import GoType
from pilothouse.api.patch.ordering import DELETE, DIRECTIVE, MAP

REPLACE = "replace"
MERGE = "merge"
SET_ELEMENT_ORDER = "$setElementOrder"
BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
NO_LIST_OF_LISTS = "lists of lists are not supported"  # answered 422

MergeMap = Callable[[dict[str, Any], dict[str, Any], GoType], dict[str, Any]]
_SCALAR_KINDS = {str: "string", int: "int64", float: "float64", bool: "bool"}


def merge_list_field(
    current: list[Any],
    change: list[Any],
    field: meta.Field,
    strategy: str,
    *,
    delete_list: bool,
    merge_map: MergeMap,
) -> tuple[list[Any], list[Any]]:
    """``mergeSliceHandler``: the merged list, and the original's array as Go leaves it.

    Lists of strategy ``merge`` (and ``$deleteFromPrimitiveList`` lists) merge;
    others are replaced by ``change``.
    """
    if strategy == MERGE or delete_list:
        return _merge_list(
            current,
            change,
            field.type,
            field.merge_key,
            delete_list=delete_list,
            merge_map=merge_map,
        )
    return change, current


def element_kind(*lists: list[Any]) -> str:
    """``sliceElementType``: the one Go kind of all items (``map`` for objects)."""
    first: type | None = None
    for items in lists:
        for item in items:
            kind = type(item)
            if first is None:
                if item is None:
                    raise errors.panic(
                        "runtime error: invalid memory address or nil pointer dereference"
                    )
                if kind is list:
                    raise errors.rejected(NO_LIST_OF_LISTS)
                first = kind
            elif kind is not first:
                shown = "[" + " ".join(gofmt.v(each) for each in lists) + "]"
                raise errors.plain(f"list element types are not identical: {shown}")
    if first is None:
        raise errors.plain("no elements in any of the given slices")
    return MAP if first is dict else _SCALAR_KINDS.get(first, "interface")


class _GoArray:
    """The array under a Go slice of the original list, as deletions and appends leave it."""

    def __init__(self, items: list[Any]) -> None:
        self.array = list(items)  # what upstream later reads as the server's order
        self.live = list(items)  # the slice upstream goes on merging into
        self.moved = False  # once an append outgrows the array, Go moves to a new one

    def delete_at(self, position: int) -> None:
        # append(s[:i], s[i+1:]...): the tail shifts left, the last slot keeps its old item.
        del self.live[position]
        self.array[: len(self.live)] = self.live

    def append(self, item: Any) -> None:
        if not self.moved and len(self.live) < len(self.array):
            self.array[len(self.live)] = item
        else:
            self.moved = True
        self.live.append(item)


def _merge_list(
    original: list[Any],
    patch: list[Any],
    t: GoType,
    merge_key: str,
    *,
    delete_list: bool,
    merge_map: MergeMap,
) -> tuple[list[Any], list[Any]]:
    """``mergeSlice``, and the original's array afterwards."""
    if not original and not patch:
        return original, original
    kind = element_kind(original, patch)
    if kind != MAP:
        if delete_list:
            doomed = {values.go_key(item) for item in patch}
            return [item for item in original if values.go_key(item) not in doomed], original
        if patch:
            array = original
            both = original + patch
            merged = both[: _deduplicate(both)]
        else:
            # append(original) with nothing to add is the original slice itself.
            array = list(original)
            merged = array[: _deduplicate(array)]
        server_order = array
    else:
        if not merge_key:
            raise errors.plain(f"cannot merge lists without merge key for {t.kind}")
        slices = _GoArray(original)
        patch = _apply_item_directives(slices, patch, merge_key)
        server_order = list(slices.live)
        for item in patch:
            if merge_key not in item:
                raise ordering.no_merge_key(item, merge_key)
            found = ordering.find_by_key(slices.live, merge_key, item[merge_key])
            if found >= 0:
                slices.live[found] = merge_map(slices.live[found], item, t)
            else:
                slices.append(item)
        merged, array = slices.live, slices.array
    if merge_key:
        in_patch, server_only = ordering.partition_maps(merged, patch, merge_key)
    else:
        in_patch, server_only = ordering.partition_primitives(merged, patch)
    result = ordering.normalize_element_order(
        in_patch, server_only, patch, server_order, merge_key, kind
    )
    return result, array


def _deduplicate(items: list[Any]) -> int:
    """``deduplicateScalars`` in place; returns the new length (the rest is left over).

    Like upstream, a duplicate's slot takes the last item, so order changes.
    """
    last = len(items) - 1
    i = 0
    while i < last:
        j = i + 1
        while j <= last:
            if values.go_equal(items[i], items[j]):
                items[j] = items[last]
                last -= 1
                j -= 1
            j += 1
        i += 1
    return last + 1


def _apply_item_directives(slices: _GoArray, patch: list[Any], merge_key: str) -> list[Any]:
    """``mergeSliceWithSpecialElements``: act on ``$patch`` items, return the others.

    A ``$patch: replace`` item makes the other items the whole list.
    """
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == DELETE:
            if merge_key not in item:
                raise ordering.no_merge_key(item, merge_key)
            while (found := ordering.find_by_key(slices.live, merge_key, item[merge_key])) >= 0:
                slices.delete_at(found)
        elif directive == REPLACE:
            replace = True  # keep going: later $patch items are still checked
        elif directive == MERGE:
            raise errors.plain("merging lists cannot yet be specified in the patch")
        else:
            raise errors.plain(f"unknown patch type: {gofmt.s(directive)} in map: {gofmt.v(item)}")
    if replace:
        slices.live, slices.moved = plain, True
        return []
    return plain


def merge_ordered_lists(
    original: dict[str, Any],
    patch: dict[str, Any],
    t: GoType,
    *,
    strategy_of: Callable[[tuple[str, ...]], str],
    merge_map: MergeMap,
) -> None:
    """``mergePatchIntoOriginal``: merge each list that has a ``$setElementOrder``, in that order.

    The directives and their lists are removed from ``patch``.
    """
    for directive in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(directive)
        if type(order) is not list:
            raise ordering.bad_arg_type(ordering.SLICE_TYPE, order)
        head, slash, key = directive.partition("/")
        if not slash or head != SET_ELEMENT_ORDER:
            raise errors.bad_request(BAD_SET_ELEMENT_ORDER)
        current: list[Any] | None = None
        change: list[Any] | None = None
        if key in original:
            current = original[key]
            if type(current) is not list:
                raise ordering.bad_arg_type(ordering.SLICE_TYPE, current)
        if key in patch:
            change = patch[key]
            if type(change) is not list:
                raise ordering.bad_arg_type(ordering.SLICE_TYPE, change)
        field = meta.lookup_slice(t, key)
        strategy = strategy_of(field.strategies)
        _check_order(change or [], order, field.merge_key)
        if current is None and change is None:
            continue
        server_order = current or []
        if change is None:
            merged = server_order
        elif current is None:
            merged = remove_directives(change)[0]
        else:
            merged, server_order = merge_list_field(
                current, change, field, strategy, delete_list=False, merge_map=merge_map
            )
        if field.merge_key:
            in_order, server_only = ordering.partition_maps(merged, order, field.merge_key)
        else:
            in_order, server_only = ordering.partition_primitives(merged, order)
        kind = element_kind(server_order, change or [])
        original[key] = ordering.normalize_element_order(
            in_order, server_only, order, server_order, field.merge_key, kind
        )
        patch.pop(key, None)


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """``validatePatchWithSetOrderList``: the patch's items appear in ``order``, in order."""
    if not order or not patch_list:
        return
    items = ordering.split_deletions(patch_list)[0] if merge_key else patch_list
    i = j = 0
    while i < len(items) and j < len(order):
        if type(items[i]) is dict and DIRECTIVE in items[i]:
            i += 1
            continue
        if _same_key(items[i], order[j], merge_key):
            i += 1
        j += 1
    if i < len(items) and j >= len(order):
        raise errors.plain(
            f"The order in patch list:\n{gofmt.v(patch_list)}\n doesn't match "
            f"{SET_ELEMENT_ORDER} list:\n{gofmt.v(order)}\n"
        )


def _same_key(left: Any, right: Any, merge_key: str) -> bool:
    """``mergeKeyValueEqual``."""
    if not merge_key:
        return values.go_equal(left, right)
    for item in (left, right):
        if type(item) is not dict:
            raise ordering.bad_arg_type(ordering.MAP_TYPE, item)
        if merge_key not in item:
            raise ordering.no_merge_key(item, merge_key)
    return values.go_equal(left[merge_key], right[merge_key])


def remove_directives(value: Any) -> tuple[Any, bool]:
    """``removeDirectives``: drop objects carrying ``$patch``; False if ``value`` is one."""
    kind = type(value)
    if kind is dict:
        if DIRECTIVE in value:
            return None, False
        for key in list(value):
            kept, keep = remove_directives(value[key])
            if keep:
                value[key] = kept
            else:
                del value[key]
        return value, True
    if kind is list:
        out = []
        for item in value:
            kept, keep = remove_directives(item)
            if keep:
                out.append(kept)
        return out, True
    return value, True
