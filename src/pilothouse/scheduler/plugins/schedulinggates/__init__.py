"""SchedulingGates: a pod with ``spec.schedulingGates`` waits outside the active queue."""

from __future__ import annotations

from typing import Any

from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

NAME = "SchedulingGates"


class SchedulingGates(fw.PreEnqueuePlugin):
    name = NAME

    def pre_enqueue(self, pod: types.PodInfo) -> fw.Status:
        if not pod.scheduling_gates:
            return fw.SUCCESS
        gates = " ".join(pod.scheduling_gates)
        return fw.unresolvable(f"waiting for scheduling gates: [{gates}]")

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [fw.ClusterEvent(fw.UNSCHEDULED_POD, fw.ActionType.UPDATE_POD_SCHEDULING_GATES)]


def new(_args: dict[str, Any], _handle: runtime.Handle) -> SchedulingGates:
    return SchedulingGates()
