"""NodeResourcesFit: the pod's requests must fit in what the node has left.

Requests are containers plus init containers (and sidecars) plus overhead, per
resource column of the node table; one vectorised comparison answers for every
node. Scoring follows the configured strategy (``LeastAllocated`` spreads,
``MostAllocated`` packs, ``RequestedToCapacityRatio`` follows a shape), using
non-zero requests for cpu and memory (100m / 200Mi for pods that ask nothing),
as upstream.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from pilothouse.scheduler import nodetable, types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime
from pilothouse.scheduler.plugins.noderesources import scoring

NAME = "NodeResourcesFit"
STATE_KEY = "PreFilter" + NAME
SHAPE_CACHE = 64  # pod shapes whose per-node answers are kept
DEFAULT_RESOURCES: list[dict[str, Any]] = [
    {"name": types.CPU, "weight": 1},
    {"name": types.MEMORY, "weight": 1},
]
NATIVE = (types.CPU, types.MEMORY, types.EPHEMERAL_STORAGE, types.PODS)


def _is_extended(name: str) -> bool:
    return "/" in name and not name.startswith("kubernetes.io/")


class Fit(fw.PreFilterPlugin, fw.FilterPlugin, fw.ScorePlugin):
    name = NAME

    def __init__(self, args: dict[str, Any], handle: runtime.Handle) -> None:
        self.handle = handle
        self.ignored = set(args.get("ignoredResources") or [])
        self.ignored_groups = set(args.get("ignoredResourceGroups") or [])
        strategy = args.get("scoringStrategy") or {}
        self.strategy = strategy.get("type") or scoring.LEAST_ALLOCATED
        self.resources = [
            (str(r["name"]), int(r.get("weight") or 1))
            for r in strategy.get("resources") or DEFAULT_RESOURCES
        ]
        if self.strategy == scoring.LEAST_ALLOCATED:
            self.scorer = scoring.least_allocated
        elif self.strategy == scoring.MOST_ALLOCATED:
            self.scorer = scoring.most_allocated
        elif self.strategy == scoring.REQUESTED_TO_CAPACITY_RATIO:
            shape = (strategy.get("requestedToCapacityRatio") or {}).get("shape") or []
            points = [(int(p["utilization"]), int(p["score"])) for p in shape]
            if not points:
                raise ValueError("requestedToCapacityRatio.shape must not be empty")
            self.scorer = scoring.requested_to_capacity_ratio(points)
        else:
            raise ValueError(
                f'scoringStrategy.type: Unsupported value: "{self.strategy}": supported values: '
                '"LeastAllocated", "MostAllocated", "RequestedToCapacityRatio"'
            )

        self._masks: collections.OrderedDict[Any, nodetable.RowCache] = collections.OrderedDict()
        self._scores: collections.OrderedDict[Any, nodetable.RowCache] = collections.OrderedDict()

    def _skipped(self, name: str) -> bool:
        if name in NATIVE or not _is_extended(name):
            return False
        return name in self.ignored or name.split("/", 1)[0] in self.ignored_groups

    # --- filter -----------------------------------------------------------------------
    def pre_filter(
        self, state: fw.CycleState, pod: types.PodInfo
    ) -> tuple[fw.PreFilterResult | None, fw.Status]:
        cache = self.handle.cache
        vec = cache.vector(pod)
        pods_col = cache.table.columns[types.PODS]
        cols = [
            i
            for name, i in cache.table.columns.items()
            if i != pods_col and i < len(vec) and vec[i] > 0 and not self._skipped(name)
        ]
        state.write(STATE_KEY, (vec, np.array(cols, dtype=np.intp)))
        return None, fw.SUCCESS

    def filter(self, state: fw.CycleState, pod: types.PodInfo) -> fw.Mask | None:
        vec, cols = state.read(STATE_KEY)
        table = self.handle.cache.table
        key = (
            table.layout_version,
            tuple(int(vec[c]) for c in cols.tolist()),
            tuple(cols.tolist()),
        )
        cached = lru(
            self._masks, key, lambda: nodetable.RowCache(table, self._fits(vec, cols), np.bool_)
        )
        mask: fw.Mask = cached.all()
        return mask

    def _fits(self, vec: Any, cols: Any) -> Any:
        table = self.handle.cache.table
        pods_col = table.columns[types.PODS]
        wanted = [(c, int(vec[c])) for c in cols.tolist()]

        def compute(rows: Any) -> Any:
            free = table.free
            mask = free[pods_col][rows] > 0
            for c, v in wanted:
                mask &= free[c][rows] >= v
            return mask

        return compute

    def explain(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> list[fw.Status]:
        vec, cols = state.read(STATE_KEY)
        table = self.handle.cache.table
        names = {i: name for name, i in table.columns.items()}
        pods_col = table.columns[types.PODS]
        out = []
        for row in rows.tolist():
            reasons = []
            unresolvable = False
            if table.requested[pods_col, row] + 1 > table.allocatable[pods_col, row]:
                reasons.append("Too many pods")
            for c in cols.tolist():
                if vec[c] > table.allocatable[c, row] - table.requested[c, row]:
                    reasons.append(f"Insufficient {names[c]}")
                    unresolvable |= bool(vec[c] > table.allocatable[c, row])
            code = fw.Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else fw.Code.UNSCHEDULABLE
            out.append(fw.Status(code, tuple(reasons)))
        return out

    # --- score ------------------------------------------------------------------------
    def score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Scores:
        table = self.handle.cache.table
        key = (
            table.layout_version,
            pod.non_zero_cpu,
            pod.non_zero_memory,
            tuple(self.handle.cache.vector(pod).tolist()),
        )

        def compute(some: Any) -> Any:
            columns = resource_columns(self.handle, pod, some, self.resources, use_requested=False)
            if self.strategy == scoring.REQUESTED_TO_CAPACITY_RATIO:
                return scoring.weighted(
                    columns, self.scorer, len(some), only_positive=True, rounded=True
                )
            return scoring.weighted(columns, self.scorer, len(some))

        cached = lru(self._scores, key, lambda: nodetable.RowCache(table, compute, np.int64))
        scores: fw.Scores = cached.take(rows)
        return scores

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [
            fw.ClusterEvent(fw.POD, fw.ActionType.DELETE),
            fw.ClusterEvent(fw.NODE, fw.ActionType.ADD | fw.ActionType.UPDATE_NODE_ALLOCATABLE),
            fw.ClusterEvent(fw.UNSCHEDULED_POD, fw.ActionType.UPDATE_POD_SCALE_DOWN),
        ]


def lru(cache: collections.OrderedDict[Any, Any], key: Any, make: Any) -> Any:
    """``cache[key]``, made by ``make()`` when missing; the ``SHAPE_CACHE`` most recently
    used keys are kept (per-shape answers of this plugin and BalancedAllocation)."""
    value = cache.get(key)
    if value is None:
        value = cache[key] = make()
        while len(cache) > SHAPE_CACHE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return value


def resource_columns(
    handle: runtime.Handle,
    pod: types.PodInfo,
    rows: fw.Rows,
    resources: list[tuple[str, int]],
    *,
    use_requested: bool,
) -> list[tuple[Any, Any, int]]:
    """Per scored resource: (requested with the pod, allocatable, weight), over ``rows``.

    Without ``use_requested`` cpu and memory count non-zero requests (upstream's
    ``NonZeroRequested``). A resource the node table has never seen, and an
    extended resource the pod does not ask for, are left out, as upstream."""
    cache = handle.cache
    table = cache.table
    vec = cache.vector(pod)
    out = []
    for name, weight in resources:
        col = table.columns.get(name)
        if col is None:
            continue
        pod_req = int(vec[col]) if col < len(vec) else 0
        if not use_requested and name == types.CPU:
            requested = table.non_zero[0][rows] + pod.non_zero_cpu
        elif not use_requested and name == types.MEMORY:
            requested = table.non_zero[1][rows] + pod.non_zero_memory
        else:
            if pod_req == 0 and name not in NATIVE:
                continue
            requested = table.requested[col][rows] + pod_req
        out.append((requested, table.allocatable[col][rows], weight))
    return out


def new(args: dict[str, Any], handle: runtime.Handle) -> Fit:
    return Fit(args, handle)
