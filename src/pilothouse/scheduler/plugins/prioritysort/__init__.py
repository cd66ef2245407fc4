"""PrioritySort: the active queue holds higher priority first, then earlier arrival."""

from __future__ import annotations

from typing import Any

from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

NAME = "PrioritySort"


class PrioritySort(fw.QueueSortPlugin):
    name = NAME

    def sort_key(self, priority: int, timestamp: float) -> tuple[float, ...]:
        return (-priority, timestamp)


def new(_args: dict[str, Any], _handle: runtime.Handle) -> PrioritySort:
    return PrioritySort()
