"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take only pods that
tolerate the ``node.kubernetes.io/unschedulable:NoSchedule`` taint."""

from __future__ import annotations

from typing import Any

from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

NAME = "NodeUnschedulable"
ERR_REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable(fw.FilterPlugin):
    name = NAME

    def __init__(self, handle: runtime.Handle) -> None:
        self.handle = handle

    def filter(self, state: fw.CycleState, pod: types.PodInfo) -> fw.Mask | None:
        table = self.handle.cache.table
        if table.unschedulable_count == 0:
            return None
        if types.tolerates_any(pod.tolerations, UNSCHEDULABLE_TAINT):
            return None
        return ~table.unschedulable

    def explain(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> list[fw.Status]:
        return [fw.unresolvable(ERR_REASON)] * len(rows)

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [
            fw.ClusterEvent(fw.NODE, fw.ActionType.ADD | fw.ActionType.UPDATE_NODE_TAINT),
            fw.ClusterEvent(fw.UNSCHEDULED_POD, fw.ActionType.UPDATE_POD_TOLERATION),
        ]


def new(_args: dict[str, Any], handle: runtime.Handle) -> NodeUnschedulable:
    return NodeUnschedulable(handle)
