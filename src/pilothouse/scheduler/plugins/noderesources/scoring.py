"""Resource scoring strategies, vectorised over candidate nodes (upstream
``least_allocated.go``, ``most_allocated.go``, ``requested_to_capacity_ratio.go``,
``balanced_allocation.go``), integer arithmetic as upstream's."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from pilothouse.scheduler.framework import interface as fw

LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
REQUESTED_TO_CAPACITY_RATIO = "RequestedToCapacityRatio"
MAX_CUSTOM_PRIORITY_SCORE = 10
MAX_UTILIZATION = 100

I64 = npt.NDArray[np.int64]


def least_allocated(requested: I64, allocatable: I64) -> I64:
    """((capacity - requested) * 100) / capacity; 0 when over capacity or none."""
    score: I64 = np.maximum(
        ((allocatable - requested) * fw.MAX_NODE_SCORE) // np.maximum(allocatable, 1), 0
    )
    return score


def most_allocated(requested: I64, allocatable: I64) -> I64:
    """requested * 100 / capacity, requested capped at capacity."""
    score: I64 = (np.minimum(requested, allocatable) * fw.MAX_NODE_SCORE) // np.maximum(
        allocatable, 1
    )
    return score


def _div_trunc(a: I64, b: int) -> I64:
    """Integer division rounding toward zero, as Go's."""
    q: I64 = (np.abs(a) // b) * np.sign(a)
    return q


def broken_linear(shape: list[tuple[int, int]]) -> Any:
    """Upstream's ``buildBrokenLinearFunction`` over utilization 0..100 (scores scaled)."""

    def fn(p: I64) -> I64:
        out = np.full(p.shape, shape[-1][1], dtype=np.int64)
        done = np.zeros(p.shape, dtype=np.bool_)
        for i, (util, score) in enumerate(shape):
            sel = (p <= util) & ~done
            if i == 0:
                out[sel] = score
            else:
                u0, s0 = shape[i - 1]
                value = s0 + _div_trunc((score - s0) * (p - u0), (util - u0) or 1)
                out[sel] = value[sel]
            done |= sel
        return out

    return fn


def requested_to_capacity_ratio(shape: list[tuple[int, int]]) -> Any:
    scaled = [(u, s * (fw.MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE)) for u, s in shape]
    raw = broken_linear(scaled)

    def fn(requested: I64, allocatable: I64) -> I64:
        safe = np.where(allocatable > 0, allocatable, 1)
        util = np.where(
            (allocatable == 0) | (requested > allocatable),
            MAX_UTILIZATION,
            (requested * MAX_UTILIZATION) // safe,
        )
        result: I64 = raw(util)
        return result

    return fn


Column = tuple[I64, I64, int]


def weighted(
    columns: list[Column],
    scorer: Any,
    n: int,
    *,
    only_positive: bool = False,
    rounded: bool = False,
) -> I64:
    """Weighted mean of a per-resource score, skipping resources a node lacks (and, for
    RequestedToCapacityRatio, resources scoring zero)."""
    total = np.zeros(n, dtype=np.int64)
    weights = np.zeros(n, dtype=np.int64)
    for requested, allocatable, weight in columns:
        score = scorer(requested, allocatable)
        use = allocatable > 0
        if only_positive:
            use &= score > 0
        total += np.where(use, score, 0) * weight
        weights += use * weight
    safe = np.maximum(weights, 1)
    out: I64 = np.floor(total / safe + 0.5).astype(np.int64) if rounded else total // safe
    return out


def balanced(columns: list[Column], n: int) -> I64:
    """(1 - standard deviation of requested/allocatable fractions) * 100."""
    fractions = []
    present = []
    for requested, allocatable, _weight in columns:
        use = allocatable > 0
        fractions.append(
            np.where(use, np.minimum(requested / np.maximum(allocatable, 1), 1.0), 0.0)
        )
        present.append(use)
    if not fractions:
        return np.full(n, fw.MAX_NODE_SCORE, dtype=np.int64)
    if len(fractions) == 2 and present[0].all() and present[1].all():
        std = np.abs(fractions[0] - fractions[1]) / 2
    else:
        count = np.maximum(np.sum(present, axis=0), 1)
        mean = np.sum(fractions, axis=0) / count
        var = np.sum(
            [np.where(u, (f - mean) ** 2, 0.0) for f, u in zip(fractions, present, strict=True)],
            axis=0,
        )
        std = np.sqrt(var / count)
    out: I64 = ((1.0 - std) * fw.MAX_NODE_SCORE).astype(np.int64)
    return out
