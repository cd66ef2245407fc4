"""One pod's scheduling algorithm (upstream ``schedule_one.go``: ``schedulePod``).

Filter every node in one vectorised pass, keep the first
``numFeasibleNodesToFind`` feasible nodes in round-robin order from where the
previous pod stopped (so, as upstream, a big cluster is sampled rather than
scored whole), score them, and pick the best — ties broken at random.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from pilothouse.scheduler import cache as cache_module
from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
NO_NODE_AVAILABLE_MSG = "0/{} nodes are available"


def num_feasible_nodes_to_find(percentage: int, all_nodes: int) -> int:
    """Upstream's ``numFeasibleNodesToFind`` (adaptive percentage when 0)."""
    if all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return all_nodes
    if percentage <= 0:
        percentage = max(50 - all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    count = all_nodes * min(percentage, 100) // 100
    return max(count, MIN_FEASIBLE_NODES_TO_FIND)


class FitError(Exception):
    """The pod fits on no node; ``str()`` is upstream's message."""

    def __init__(
        self, pod: types.PodInfo, num_all_nodes: int, diagnosis: runtime.Diagnosis
    ) -> None:
        super().__init__()
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        return fit_error_message(self.num_all_nodes, self.diagnosis)


def fit_error_message(num_all_nodes: int, diagnosis: runtime.Diagnosis) -> str:
    message = NO_NODE_AVAILABLE_MSG.format(num_all_nodes) + ":"
    if diagnosis.pre_filter_msg:
        message += f" {diagnosis.pre_filter_msg}."
    else:
        histogram: dict[str, int] = {}
        for status in diagnosis.node_to_status.values():
            for reason in status.reasons:
                histogram[reason] = histogram.get(reason, 0) + 1
        parts = sorted(f"{count} {reason}" for reason, count in histogram.items())
        if parts:
            message += f" {', '.join(parts)}."
    if diagnosis.post_filter_msg:
        message += f" {diagnosis.post_filter_msg}."
    return message


class NoNodesError(Exception):
    def __str__(self) -> str:
        return "no nodes available to schedule pods"


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    node: str
    row: int
    evaluated_nodes: int
    feasible_nodes: int


class Algorithm:
    """Holds what carries over between pods: where the next node scan starts."""

    def __init__(self, cache: cache_module.Cache, *, rng: random.Random | None = None) -> None:
        self.cache = cache
        self.next_start_node_index = 0
        self.rng = rng or random.Random()

    def schedule(
        self, framework: runtime.Framework, state: fw.CycleState, pod: types.PodInfo
    ) -> ScheduleResult:
        table = self.cache.table
        all_rows = table.valid_rows()
        n = len(all_rows)
        if n == 0:
            raise NoNodesError()
        names, status = framework.run_pre_filter(state, pod)
        if not status.is_success():
            if status.code == fw.Code.ERROR:
                raise runtime.SchedulingError(
                    f"running PreFilter plugin {status.plugin}: {status.message}"
                )
            diagnosis = runtime.Diagnosis(
                node_to_status={int(r): status for r in all_rows},
                unschedulable_plugins={status.plugin} if status.plugin else set(),
                pre_filter_msg=status.message,
            )
            raise FitError(pod, n, diagnosis)
        base = table.valid.copy()
        if names is not None:
            base &= table.name_mask(names)
        # A pod nominated by an earlier preemption tries that node first.
        if pod.nominated_node and pod.nominated_node in table.row_of and names is None:
            row = table.row_of[pod.nominated_node]
            if base[row]:
                only = np.zeros_like(base)
                only[row] = True
                mask, _ = framework.run_filter(state, pod, only)
                if mask[row]:
                    return ScheduleResult(pod.nominated_node, row, 1, 1)
        mask, first_fail = framework.run_filter(state, pod, base)
        candidates = all_rows if names is None else np.flatnonzero(base)
        ok_positions = np.flatnonzero(mask[candidates])
        if len(ok_positions) == 0:
            diagnosis = framework.explain(state, pod, first_fail)
            raise FitError(pod, n, diagnosis)
        wanted = num_feasible_nodes_to_find(framework.percentage_of_nodes_to_score, len(candidates))
        start = self.next_start_node_index % len(candidates)
        if len(ok_positions) > wanted:
            split = int(np.searchsorted(ok_positions, start))
            order = np.concatenate((ok_positions[split:], ok_positions[:split]))[:wanted]
            processed = (int(order[-1]) - start) % len(candidates) + 1
        else:
            order = ok_positions
            processed = len(candidates)
        self.next_start_node_index = (start + processed) % len(candidates)
        rows = candidates[order]
        if len(rows) == 1:
            row = int(rows[0])
            return ScheduleResult(table.names[row], row, processed, 1)
        scores = framework.run_score(state, pod, rows)
        best = np.flatnonzero(scores == scores.max())
        row = int(rows[best[self.rng.randrange(len(best))]])
        return ScheduleResult(table.names[row], row, processed, len(rows))
