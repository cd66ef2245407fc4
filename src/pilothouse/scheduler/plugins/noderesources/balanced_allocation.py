"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in
equal proportion (one minus the standard deviation of the used fractions).

A node's score depends only on its resources and the pod's requests: as Fit's scores,
it is kept per pod shape and computed again only for the nodes whose resources
changed since (one a pod, in a Deployment's rollout)."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from pilothouse.scheduler import nodetable, types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime
from pilothouse.scheduler.plugins.noderesources import fit, scoring

NAME = "NodeResourcesBalancedAllocation"


class BalancedAllocation(fw.ScorePlugin):
    name = NAME

    def __init__(self, args: dict[str, Any], handle: runtime.Handle) -> None:
        self.handle = handle
        self.resources = [
            (str(r["name"]), int(r.get("weight") or 1))
            for r in args.get("resources") or fit.DEFAULT_RESOURCES
        ]
        self._scores: collections.OrderedDict[Any, nodetable.RowCache] = collections.OrderedDict()

    def score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Scores:
        table = self.handle.cache.table
        key = (table.layout_version, tuple(self.handle.cache.vector(pod).tolist()))

        def compute(some: Any) -> Any:
            columns = fit.resource_columns(
                self.handle, pod, some, self.resources, use_requested=True
            )
            return scoring.balanced(columns, len(some))

        cached = fit.lru(self._scores, key, lambda: nodetable.RowCache(table, compute, np.int64))
        scores: fw.Scores = cached.take(rows)
        return scores

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [
            fw.ClusterEvent(fw.POD, fw.ActionType.DELETE),
            fw.ClusterEvent(fw.NODE, fw.ActionType.ADD | fw.ActionType.UPDATE_NODE_ALLOCATABLE),
        ]


def new(args: dict[str, Any], handle: runtime.Handle) -> BalancedAllocation:
    return BalancedAllocation(args, handle)
