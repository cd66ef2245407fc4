"""The order of merged lists in a strategic merge patch.

After merging a list, upstream puts the items the patch named in the patch's
order (or the ``$setElementOrder`` list's), the items only the server had in
their old order, and interleaves the two by the server's order where it can
(``normalizeElementOrder``, ``mergeSortedSlice`` in apimachinery's
``strategicpatch/patch.go``). Items are identified by their merge key, or by
value in lists of primitives.

Upstream sorts with ``sort.SliceStable`` and a comparison that is not an order
when an item is missing from the reference list; :func:`go_slice_stable`
reproduces Go's algorithm so such lists come out the same.

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pilothouse.api.patch import errors, gofmt, values
from pilothouse.api.patch.errors import PatchError

DIRECTIVE = "$patch"
DELETE = "delete"
MAP = "map"  # the element kind of lists of objects


# --- upstream's error texts ---------------------------------------------------------


def bad_arg_type(expected: str, actual: Any) -> PatchError:
    """``mergepatch.ErrBadArgType``: ``expected a <T>, but received a <U>``."""
    return errors.plain(f"expected a {expected}, but received a {gofmt.type_name_s(actual)}")


def no_merge_key(item: dict[str, Any], merge_key: str) -> PatchError:
    """``mergepatch.ErrNoMergeKey``."""
    return errors.plain(f"map: {gofmt.v(item)} does not contain declared merge key: {merge_key}")


MAP_TYPE = "map[string]interface {}"
SLICE_TYPE = "[]interface {}"


# --- identity of items ------------------------------------------------------------


def index(items: list[Any], item: Any, merge_key: str, kind: str) -> int:
    """Where ``item`` is in ``items`` (by merge key for lists of objects), or -1."""
    if kind == MAP:
        wanted = item.get(merge_key) if type(item) is dict else None
        for position, other in enumerate(items):
            if values.go_equal(wanted, other.get(merge_key) if type(other) is dict else None):
                return position
        return -1
    for position, other in enumerate(items):
        if values.go_equal(item, other):
            return position
    return -1


def find_by_key(items: list[Any], merge_key: str, value: Any) -> int:
    """``findMapInSliceBasedOnKeyValue``: the first object whose merge key is ``value``."""
    for position, other in enumerate(items):
        if type(other) is not dict:
            raise errors.plain(f"value for key {position} is not a map")
        if merge_key in other and values.go_equal(other[merge_key], value):
            return position
    return -1


def validate_merge_keys(merge_key: str, *lists: list[Any]) -> None:
    """Every item is an object carrying the merge key."""
    for items in lists:
        for item in items:
            if type(item) is not dict:
                raise bad_arg_type(MAP_TYPE, item)
            if merge_key not in item:
                raise no_merge_key(item, merge_key)


def split_deletions(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """``extractToDeleteItems``: the items to keep, then the ``$patch: delete`` ones."""
    keep: list[Any] = []
    delete: list[Any] = []
    for item in items:
        if type(item) is not dict:
            raise bad_arg_type(MAP_TYPE, item)
        (delete if item.get(DIRECTIVE, None) == DELETE else keep).append(item)
    return keep, delete


def partition_primitives(merged: list[Any], present: list[Any]) -> tuple[list[Any], list[Any]]:
    """Items of ``merged`` that are in ``present``, and the rest, both in order."""
    wanted = {values.go_key(item) for item in present}
    inside: list[Any] = []
    outside: list[Any] = []
    for item in merged:
        (inside if values.go_key(item) in wanted else outside).append(item)
    return inside, outside


def partition_maps(
    merged: list[Any], present: list[Any], merge_key: str
) -> tuple[list[Any], list[Any]]:
    """Objects of ``merged`` whose merge key is in ``present``, and the rest."""
    inside: list[Any] = []
    outside: list[Any] = []
    for item in merged:
        if type(item) is not dict:
            raise bad_arg_type(MAP_TYPE, item)
        if merge_key not in item:
            raise no_merge_key(item, merge_key)
        found = find_by_key(present, merge_key, item[merge_key])
        (inside if found >= 0 else outside).append(item)
    return inside, outside


# --- ordering ---------------------------------------------------------------------


def normalize_element_order(
    patch: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
    kind: str,
) -> list[Any]:
    """Sort both parts by their own order, then interleave them by the server's."""
    patch = normalize_slice_order(patch, patch_order, merge_key, kind)
    server_only = normalize_slice_order(server_only, server_order, merge_key, kind)
    return merge_sorted(server_only, patch, server_order, merge_key, kind)


def normalize_slice_order(
    items: list[Any], order: list[Any], merge_key: str, kind: str
) -> list[Any]:
    """``items`` sorted by their place in ``order``, deletions last."""
    deletions: list[Any] = []
    if kind == MAP:
        validate_merge_keys(merge_key, items, order)
        items, deletions = split_deletions(items)
    places = [index(order, item, merge_key, kind) for item in items]
    if all(place >= 0 for place in places):
        ranked = sorted(range(len(items)), key=places.__getitem__)
        return [items[i] for i in ranked] + deletions
    keyed = list(zip(places, items, strict=True))
    # Upstream's comparison says "less" whenever either item is not in ``order``.
    go_slice_stable(keyed, lambda a, b: not (a[0] >= 0 and b[0] >= 0) or a[0] < b[0])
    return [item for _, item in keyed] + deletions


def merge_sorted(
    left: list[Any], right: list[Any], server_order: list[Any], merge_key: str, kind: str
) -> list[Any]:
    """``mergeSortedSlice``: insert ``left`` into ``right`` where the server order says."""
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = index(server_order, left[i], merge_key, kind)
            ri = index(server_order, right[j], merge_key, kind) if li >= 0 else -1
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def go_slice_stable(data: list[Any], less: Callable[[Any, Any], bool]) -> None:
    """Go's ``sort.SliceStable`` (insertion sort of blocks of 20, then SymMerge), in place."""
    n = len(data)

    def lt(i: int, j: int) -> bool:
        return less(data[i], data[j])

    def swap(i: int, j: int) -> None:
        data[i], data[j] = data[j], data[i]

    def insertion_sort(a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and lt(j, j - 1):
                swap(j, j - 1)
                j -= 1

    def swap_range(a: int, b: int, count: int) -> None:
        for i in range(count):
            swap(a + i, b + i)

    def rotate(a: int, m: int, b: int) -> None:
        i, j = m - a, b - m
        while i != j:
            if i > j:
                swap_range(m - i, m, j)
                i -= j
            else:
                swap_range(m - i, m + j - i, i)
                j -= i
        swap_range(m - i, m, i)

    def sym_merge(a: int, m: int, b: int) -> None:
        if m - a == 1:
            i, j = m, b
            while i < j:
                h = (i + j) >> 1
                if lt(h, a):
                    i = h + 1
                else:
                    j = h
            for k in range(a, i - 1):
                swap(k, k + 1)
            return
        if b - m == 1:
            i, j = a, m
            while i < j:
                h = (i + j) >> 1
                if not lt(m, h):
                    i = h + 1
                else:
                    j = h
            for k in range(m, i, -1):
                swap(k, k - 1)
            return
        mid = (a + b) >> 1
        total = mid + m
        if m > mid:
            start, r = total - b, mid
        else:
            start, r = a, m
        p = total - 1
        while start < r:
            c = (start + r) >> 1
            if not lt(p - c, c):
                start = c + 1
            else:
                r = c
        end = total - start
        if start < m < end:
            rotate(start, m, end)
        if a < start < mid:
            sym_merge(a, start, mid)
        if mid < end < b:
            sym_merge(mid, end, b)

    block = 20
    a, b = 0, block
    while b <= n:
        insertion_sort(a, b)
        a, b = b, b + block
    insertion_sort(a, n)
    while block < n:
        a, b = 0, 2 * block
        while b <= n:
            sym_merge(a, a + block, b)
            a, b = b, b + 2 * block
        if a + block < n:
            sym_merge(a, a + block, n)
        block *= 2
