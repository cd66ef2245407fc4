"""NodePorts: a pod's host ports must be free on the node (same protocol and port, and
the same host IP or either side on 0.0.0.0)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

NAME = "NodePorts"
ERR_REASON = "node(s) didn't have free ports for the requested pod ports"
WILDCARD_IP = "0.0.0.0"


def conflicts(wanted: tuple[tuple[str, str, int], ...], used: Any) -> bool:
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and (ip == uip or WILDCARD_IP in (ip, uip)):
                return True
    return False


class NodePorts(fw.PreFilterPlugin, fw.FilterPlugin):
    name = NAME

    def __init__(self, handle: runtime.Handle) -> None:
        self.handle = handle

    def pre_filter(
        self, state: fw.CycleState, pod: types.PodInfo
    ) -> tuple[fw.PreFilterResult | None, fw.Status]:
        return None, fw.SUCCESS if pod.host_ports else fw.SKIP

    def filter(self, state: fw.CycleState, pod: types.PodInfo) -> fw.Mask | None:
        cache = self.handle.cache
        if not cache.ports:
            return None
        mask = np.ones(cache.table.capacity, dtype=np.bool_)
        for row, used in cache.ports.items():
            if conflicts(pod.host_ports, used):
                mask[row] = False
        return mask

    def explain(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> list[fw.Status]:
        return [fw.unschedulable(ERR_REASON)] * len(rows)

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [
            fw.ClusterEvent(fw.POD, fw.ActionType.DELETE),
            fw.ClusterEvent(fw.NODE, fw.ActionType.ADD | fw.ActionType.UPDATE),
        ]


def new(_args: dict[str, Any], handle: runtime.Handle) -> NodePorts:
    return NodePorts(handle)
