"""NodeName: a pod that names a node (``spec.nodeName``) fits only there."""

from __future__ import annotations

from typing import Any

from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

NAME = "NodeName"
ERR_REASON = "node(s) didn't match the requested node name"


class NodeName(fw.FilterPlugin):
    name = NAME

    def __init__(self, handle: runtime.Handle) -> None:
        self.handle = handle

    def filter(self, state: fw.CycleState, pod: types.PodInfo) -> fw.Mask | None:
        if not pod.node_name:
            return None
        return self.handle.cache.table.name_mask((pod.node_name,))

    def explain(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> list[fw.Status]:
        return [fw.unresolvable(ERR_REASON)] * len(rows)

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [fw.ClusterEvent(fw.NODE, fw.ActionType.ADD)]


def new(_args: dict[str, Any], handle: runtime.Handle) -> NodeName:
    return NodeName(handle)
