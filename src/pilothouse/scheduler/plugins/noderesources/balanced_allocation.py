"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in
equal proportion (one minus the standard deviation of the used fractions)."""

from __future__ import annotations

from typing import Any

from pilothouse.scheduler import types
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

    def score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Scores:
        columns = fit.resource_columns(self.handle, pod, rows, self.resources, use_requested=True)
        return scoring.balanced(columns, len(rows))

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [
            fw.ClusterEvent(fw.POD, fw.ActionType.DELETE),
            fw.ClusterEvent(fw.NODE, fw.ActionType.ADD | fw.ActionType.UPDATE_NODE_ALLOCATABLE),
        ]


def new(args: dict[str, Any], handle: runtime.Handle) -> BalancedAllocation:
    return BalancedAllocation(args, handle)
