"""Every node as one row of numpy arrays, so filters and scores run over all nodes at once.

A node keeps its row for life (rows of deleted nodes are reused). Per row the
table holds allocatable and requested resources (one column per resource name:
cpu in millicores, memory and the rest in units; ``pods`` counts pods), the
non-zero requests used for scoring, the ``unschedulable`` flag, an id for the
node's set of taints, and — for each label key some plugin asked about — an id
for the node's value. Questions about labels and taints are answered once per
distinct value or taint set and spread over the rows with one fancy index.

``static_generation`` changes whenever anything but resource usage changes
(nodes come or go, labels, taints, schedulability, allocatable), so callers
can keep per-node masks in :meth:`memo` until it does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from pilothouse.scheduler import types

Obj = dict[str, Any]
Mask = npt.NDArray[np.bool_]

BASE_COLUMNS = (types.CPU, types.MEMORY, types.EPHEMERAL_STORAGE, types.PODS)
MEMO_LIMIT = 512


class LabelColumn:
    """One label key over all rows: a value id per row (-1: the node lacks the label)."""

    __slots__ = ("codes", "ids", "ints", "strings")

    def __init__(self, capacity: int) -> None:
        self.codes = np.full(capacity, -1, dtype=np.int32)
        self.ids: dict[str, int] = {}
        self.strings: list[str] = []
        self.ints: list[float] = []

    def code(self, value: str) -> int:
        code = self.ids.get(value)
        if code is None:
            code = self.ids[value] = len(self.strings)
            self.strings.append(value)
            try:
                self.ints.append(float(int(value)))
            except ValueError:
                self.ints.append(math.nan)
        return code

    def grow(self, capacity: int) -> None:
        codes = np.full(capacity, -1, dtype=np.int32)
        codes[: len(self.codes)] = self.codes
        self.codes = codes


class NodeTable:
    """Nodes and their resource usage as arrays; see the module docstring."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self.names: list[str] = [""] * capacity
        self.nodes: list[Obj | None] = [None] * capacity
        self.labels: list[dict[str, str]] = [{} for _ in range(capacity)]
        self.taints: list[tuple[Obj, ...]] = [() for _ in range(capacity)]
        self.row_of: dict[str, int] = {}
        self._free: list[int] = []
        self._next = 0
        self.columns: dict[str, int] = {name: i for i, name in enumerate(BASE_COLUMNS)}
        self.layout_version = 0
        self.valid = np.zeros(capacity, dtype=np.bool_)
        # Resource arrays are (column, row): each resource is contiguous over the nodes.
        self.allocatable = np.zeros((len(BASE_COLUMNS), capacity), dtype=np.int64)
        self.requested = np.zeros((len(BASE_COLUMNS), capacity), dtype=np.int64)
        # allocatable - requested, kept in step so a fit check is one comparison per resource
        self.free = np.zeros((len(BASE_COLUMNS), capacity), dtype=np.int64)
        self.non_zero = np.zeros((2, capacity), dtype=np.int64)  # cpu, memory
        # Bumped whenever a row's resources change: per-row answers cached elsewhere
        # (RowCache) recompute only the rows whose version moved.
        self.row_version = np.zeros(capacity, dtype=np.int64)
        self._version = 0
        self.unschedulable = np.zeros(capacity, dtype=np.bool_)
        self.taint_set = np.zeros(capacity, dtype=np.int32)
        self.taint_sets: list[tuple[Obj, ...]] = [()]
        self._taint_set_ids: dict[bytes, int] = {b"[]": 0}
        self.label_columns: dict[str, LabelColumn] = {}
        self.static_generation = 0
        self._memo: dict[Any, Any] = {}
        self._memo_generation = 0
        self._valid_rows: npt.NDArray[np.intp] | None = None
        self.unschedulable_count = 0
        self.on_grow: list[Callable[[int], None]] = []

    # --- rows -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(np.count_nonzero(self.valid))

    def valid_rows(self) -> npt.NDArray[np.intp]:
        if self._valid_rows is None:
            self._valid_rows = np.flatnonzero(self.valid)
        return self._valid_rows

    def _grow(self) -> None:
        old = self.capacity
        new = old * 2
        self.capacity = new
        self.names.extend([""] * (new - old))
        self.nodes.extend([None] * (new - old))
        self.labels.extend({} for _ in range(new - old))
        self.taints.extend(() for _ in range(new - old))

        def grow(a: Any, fill: Any = 0) -> Any:
            shape = (new, *a.shape[1:])
            b = np.full(shape, fill, dtype=a.dtype)
            b[:old] = a
            return b

        def grow_columns(a: Any) -> Any:
            b = np.zeros((a.shape[0], new), dtype=a.dtype)
            b[:, :old] = a
            return b

        self.valid = grow(self.valid, False)
        self.row_version = grow(self.row_version)
        self.allocatable = grow_columns(self.allocatable)
        self.requested = grow_columns(self.requested)
        self.free = grow_columns(self.free)
        self.non_zero = grow_columns(self.non_zero)
        self.unschedulable = grow(self.unschedulable, False)
        self.taint_set = grow(self.taint_set)
        for col in self.label_columns.values():
            col.grow(new)
        for callback in self.on_grow:
            callback(new)

    def row(self, name: str) -> int:
        """The row of ``name``, creating an empty (not valid) one if the node is unknown:
        a pod may be seen before its node."""
        row = self.row_of.get(name)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop()
        else:
            if self._next >= self.capacity:
                self._grow()
            row = self._next
            self._next += 1
        self.row_of[name] = row
        self.names[row] = name
        return row

    def release(self, name: str) -> None:
        """Forget a row nobody uses any more (no node, no pods)."""
        row = self.row_of.pop(name, None)
        if row is None:
            return
        self._clear_static(row)
        self.names[row] = ""
        self.requested[:, row] = 0
        self.free[:, row] = 0
        self.non_zero[:, row] = 0
        self._touch(row)
        self._free.append(row)

    def _touch(self, row: int) -> None:
        self._version += 1
        self.row_version[row] = self._version

    def _changed(self) -> None:
        self.static_generation += 1
        self._valid_rows = None

    # --- resource columns -------------------------------------------------------------
    def column(self, name: str) -> int:
        col = self.columns.get(name)
        if col is None:
            col = self.columns[name] = len(self.columns)
            pad = np.zeros((1, self.capacity), dtype=np.int64)
            self.allocatable = np.vstack([self.allocatable, pad])
            self.requested = np.vstack([self.requested, pad])
            self.free = np.vstack([self.free, pad])
            self.layout_version += 1
            self.row_version[:] = self._version = self._version + 1
        return col

    def vector(self, requests: dict[str, int]) -> npt.NDArray[np.int64]:
        """A request dict as a row in this table's column layout (new columns as needed)."""
        for name in requests:
            self.column(name)
        vec = np.zeros(len(self.columns), dtype=np.int64)
        for name, value in requests.items():
            vec[self.columns[name]] = value
        return vec

    def add_usage(
        self, row: int, vec: npt.NDArray[np.int64], cpu: int, memory: int, sign: int
    ) -> None:
        n = len(vec)
        if sign > 0:
            self.requested[:n, row] += vec
            self.free[:n, row] -= vec
        else:
            self.requested[:n, row] -= vec
            self.free[:n, row] += vec
        pods = self.columns[types.PODS]
        self.requested[pods, row] += sign
        self.free[pods, row] -= sign
        self.non_zero[0, row] += sign * cpu
        self.non_zero[1, row] += sign * memory
        self._touch(row)

    # --- nodes ------------------------------------------------------------------------
    def set_node(self, node: Obj) -> tuple[int, bool]:
        """Add or update a node; returns its row and whether anything but usage changed."""
        md = node.get("metadata") or {}
        name = md.get("name") or ""
        row = self.row(name)
        old = self.nodes[row]
        self.nodes[row] = node
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        labels = md.get("labels") or {}
        taints = tuple(spec.get("taints") or ())
        unschedulable = bool(spec.get("unschedulable"))
        alloc = status.get("allocatable") or status.get("capacity") or {}
        static_changed = (
            old is None
            or not self.valid[row]
            or labels != self.labels[row]
            or taints != self.taints[row]
            or unschedulable != bool(self.unschedulable[row])
        )
        alloc_values = types.resource_list(alloc)
        for rname in alloc_values:
            self.column(rname)
        new_alloc = np.zeros(len(self.columns), dtype=np.int64)
        for rname, value in alloc_values.items():
            new_alloc[self.columns[rname]] = value
        if not np.array_equal(self.allocatable[:, row], new_alloc):
            self.allocatable[:, row] = new_alloc
            self.free[:, row] = new_alloc - self.requested[:, row]
            self._touch(row)
            static_changed = True
        if not static_changed:
            return row, False
        if self.unschedulable[row] != unschedulable:
            self.unschedulable_count += 1 if unschedulable else -1
        self.valid[row] = True
        self.unschedulable[row] = unschedulable
        self.taints[row] = taints
        self.taint_set[row] = self._taint_set_id(taints)
        self._set_labels(row, labels)
        self._changed()
        return row, True

    def remove_node(self, name: str) -> int | None:
        row = self.row_of.get(name)
        if row is None:
            return None
        self._clear_static(row)
        self._changed()
        return row

    def _clear_static(self, row: int) -> None:
        if self.unschedulable[row]:
            self.unschedulable_count -= 1
        self.valid[row] = False
        self.nodes[row] = None
        self.unschedulable[row] = False
        self.allocatable[:, row] = 0
        self.free[:, row] = -self.requested[:, row]
        self._touch(row)
        self.taints[row] = ()
        self.taint_set[row] = 0
        self._set_labels(row, {})

    def _set_labels(self, row: int, labels: dict[str, str]) -> None:
        self.labels[row] = labels
        for key, col in self.label_columns.items():
            value = labels.get(key)
            col.codes[row] = -1 if value is None else col.code(value)

    def _taint_set_id(self, taints: tuple[Obj, ...]) -> int:
        import orjson

        sig = orjson.dumps(list(taints), option=orjson.OPT_SORT_KEYS)
        tid = self._taint_set_ids.get(sig)
        if tid is None:
            tid = self._taint_set_ids[sig] = len(self.taint_sets)
            self.taint_sets.append(taints)
        return tid

    # --- labels -----------------------------------------------------------------------
    def label_column(self, key: str) -> LabelColumn:
        col = self.label_columns.get(key)
        if col is None:
            col = LabelColumn(self.capacity)
            for row, labels in enumerate(self.labels):
                value = labels.get(key)
                if value is not None:
                    col.codes[row] = col.code(value)
            self.label_columns[key] = col
        return col

    def requirement_mask(self, key: str, operator: str, values: Iterable[str]) -> Mask:
        """Rows whose label ``key`` satisfies a node selector requirement."""
        col = self.label_column(key)
        codes = col.codes
        if operator in ("In", "NotIn"):
            ids = [col.ids[v] for v in values if v in col.ids]
            hit = np.isin(codes, ids) if ids else np.zeros(self.capacity, dtype=np.bool_)
            return hit if operator == "In" else ~hit
        if operator == "Exists":
            return codes >= 0
        if operator == "DoesNotExist":
            return codes < 0
        if operator in ("Gt", "Lt"):
            vals = list(values)
            try:
                bound = float(int(vals[0])) if len(vals) == 1 else math.nan
            except ValueError:
                bound = math.nan
            ints = np.asarray([*col.ints, math.nan], dtype=np.float64)
            have = ints[codes]  # -1 picks the trailing nan
            with np.errstate(invalid="ignore"):
                return have > bound if operator == "Gt" else have < bound
        return np.zeros(self.capacity, dtype=np.bool_)

    def name_mask(self, names: Iterable[str]) -> Mask:
        mask = np.zeros(self.capacity, dtype=np.bool_)
        rows = [self.row_of[n] for n in names if n in self.row_of]
        if rows:
            mask[rows] = True
        return mask

    def domain_codes(self, key: str) -> tuple[npt.NDArray[np.int32], int]:
        """Per row, an id of the node's value of ``key`` (-1 if none), and how many ids exist."""
        col = self.label_column(key)
        return col.codes, len(col.strings)

    # --- memo -------------------------------------------------------------------------
    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """A per-node answer kept until the nodes change (``static_generation``)."""
        if self._memo_generation != self.static_generation or len(self._memo) > MEMO_LIMIT:
            self._memo.clear()
            self._memo_generation = self.static_generation
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = compute()
        return value


class RowCache:
    """A per-row answer (a mask or scores for one pod shape) kept across pods: only the
    rows whose resources changed since (``row_version``) are computed again."""

    __slots__ = ("_compute", "_dtype", "_table", "_values", "_versions")

    def __init__(self, table: NodeTable, compute: Callable[[Any], Any], dtype: Any) -> None:
        self._table = table
        self._compute = compute
        self._dtype = dtype
        self._values = np.zeros(0, dtype=dtype)
        self._versions = np.zeros(0, dtype=np.int64)

    def _refresh(self, rows: Any) -> None:
        table = self._table
        if len(self._values) != table.capacity:
            self._values = np.zeros(table.capacity, dtype=self._dtype)
            self._versions = np.full(table.capacity, -1, dtype=np.int64)
        if rows is None:
            stale = np.flatnonzero(self._versions != table.row_version)
        else:
            stale = rows[self._versions[rows] != table.row_version[rows]]
        if len(stale):
            self._values[stale] = self._compute(stale)
            self._versions[stale] = table.row_version[stale]

    def all(self) -> Any:
        """Values for every row (do not modify)."""
        self._refresh(None)
        return self._values

    def take(self, rows: Any) -> Any:
        self._refresh(rows)
        return self._values[rows]
