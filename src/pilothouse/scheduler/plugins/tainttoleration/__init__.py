"""TaintToleration: NoSchedule and NoExecute taints must be tolerated; untolerated
PreferNoSchedule taints lower a node's score.

Answers are computed once per distinct taint set (few in any cluster) and
spread over the nodes by their taint-set id.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

NAME = "TaintToleration"
HARD_EFFECTS = ("NoSchedule", "NoExecute")


def untolerated(
    tolerations: tuple[types.Obj, ...], taints: tuple[types.Obj, ...]
) -> types.Obj | None:
    for taint in taints:
        if taint.get("effect") in HARD_EFFECTS and not types.tolerates_any(tolerations, taint):
            return taint
    return None


class TaintToleration(fw.FilterPlugin, fw.PreScorePlugin, fw.ScorePlugin):
    name = NAME

    def __init__(self, handle: runtime.Handle) -> None:
        self.handle = handle

    def filter(self, state: fw.CycleState, pod: types.PodInfo) -> fw.Mask | None:
        table = self.handle.cache.table
        if len(table.taint_sets) == 1:
            return None  # no node has ever had a taint

        def compute() -> fw.Mask:
            ok = np.array(
                [untolerated(pod.tolerations, s) is None for s in table.taint_sets], dtype=np.bool_
            )
            return ok[table.taint_set]

        mask: fw.Mask = table.memo((NAME, pod.tolerations_sig), compute)
        return mask

    def explain(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> list[fw.Status]:
        table = self.handle.cache.table
        out = []
        for row in rows.tolist():
            taint = untolerated(pod.tolerations, table.taints[row]) or {}
            out.append(
                fw.unresolvable(
                    f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
                )
            )
        return out

    def _soft_counts(self, pod: types.PodInfo) -> Any:
        table = self.handle.cache.table
        prefer = tuple(
            t
            for t in pod.tolerations
            if (t.get("effect") or "PreferNoSchedule") == "PreferNoSchedule"
        )

        def compute() -> Any:
            return np.array(
                [
                    sum(
                        1
                        for taint in s
                        if taint.get("effect") == "PreferNoSchedule"
                        and not types.tolerates_any(prefer, taint)
                    )
                    for s in table.taint_sets
                ],
                dtype=np.int64,
            )

        return table.memo((NAME, "score", pod.tolerations_sig), compute)

    def pre_score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Status:
        counts = self._soft_counts(pod)
        if not counts.any():
            return fw.SKIP  # every node scores the same
        return fw.SUCCESS

    def score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Scores:
        counts = self._soft_counts(pod)
        result: fw.Scores = counts[self.handle.cache.table.taint_set[rows]]
        return result

    def normalize(
        self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows, scores: fw.Scores
    ) -> fw.Scores:
        return fw.default_normalize(scores, reverse=True)

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [
            fw.ClusterEvent(fw.NODE, fw.ActionType.ADD | fw.ActionType.UPDATE_NODE_TAINT),
            fw.ClusterEvent(fw.UNSCHEDULED_POD, fw.ActionType.UPDATE_POD_TOLERATION),
        ]


def new(_args: dict[str, Any], handle: runtime.Handle) -> TaintToleration:
    return TaintToleration(handle)
