"""NodeAffinity: ``nodeSelector`` and required node affinity filter; preferred terms
score (the sum of the weights of the terms a node matches).

A node selector term is an AND of requirements on labels (``matchExpressions``)
and on ``metadata.name`` (``matchFields``); terms are ORed; an empty term
matches nothing. Masks are evaluated per label value, not per node, and kept
until the nodes change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from pilothouse.scheduler import nodetable, types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

NAME = "NodeAffinity"
ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_ENFORCED = "node(s) didn't match scheduler-enforced node affinity"
ERR_REASON_CONFLICT = "pod affinity terms conflict"
NAME_FIELD = "metadata.name"
STATE_KEY = "PreFilter" + NAME


def term_mask(table: nodetable.NodeTable, term: types.Obj) -> fw.Mask:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    mask = np.zeros(table.capacity, dtype=np.bool_)
    if not expressions and not fields:
        return mask
    mask[:] = True
    for req in expressions:
        mask &= table.requirement_mask(
            req.get("key", ""), req.get("operator", ""), req.get("values") or []
        )
    for req in fields:
        op = req.get("operator", "")
        if req.get("key") != NAME_FIELD or op not in ("In", "NotIn"):
            return np.zeros(table.capacity, dtype=np.bool_)
        hit = table.name_mask(req.get("values") or [])
        mask &= hit if op == "In" else ~hit
    return mask


def selector_mask(table: nodetable.NodeTable, selector: types.Obj | None) -> fw.Mask:
    """A ``NodeSelector`` (terms ORed)."""
    mask = np.zeros(table.capacity, dtype=np.bool_)
    for term in (selector or {}).get("nodeSelectorTerms") or []:
        mask |= term_mask(table, term)
    return mask


def required_mask(table: nodetable.NodeTable, pod: types.PodInfo) -> fw.Mask:
    """``nodeSelector`` AND required node affinity."""
    mask = np.ones(table.capacity, dtype=np.bool_)
    for key, value in pod.node_selector.items():
        mask &= table.requirement_mask(key, "In", (value,))
    required = pod.node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        mask &= selector_mask(table, required)
    return mask


def _preferred(terms: list[types.Obj]) -> list[tuple[types.Obj, int]]:
    return [
        (t.get("preference") or {}, int(t.get("weight") or 0))
        for t in terms
        if t.get("weight")
        and (
            (t.get("preference") or {}).get("matchExpressions")
            or (t.get("preference") or {}).get("matchFields")
        )
    ]


class NodeAffinity(fw.PreFilterPlugin, fw.FilterPlugin, fw.PreScorePlugin, fw.ScorePlugin):
    name = NAME

    def __init__(self, args: dict[str, Any], handle: runtime.Handle) -> None:
        self.handle = handle
        added = args.get("addedAffinity") or {}
        self.added_required = added.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.added_preferred = _preferred(
            added.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        )

    def pre_filter(
        self, state: fw.CycleState, pod: types.PodInfo
    ) -> tuple[fw.PreFilterResult | None, fw.Status]:
        required = pod.node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is None and not pod.node_selector and self.added_required is None:
            return None, fw.SKIP
        terms = (required or {}).get("nodeSelectorTerms") or []
        if not terms:
            return None, fw.SUCCESS
        names: set[str] | None = None
        for term in terms:
            term_names: set[str] | None = None
            for req in term.get("matchFields") or []:
                if req.get("key") == NAME_FIELD and req.get("operator") == "In":
                    values = set(req.get("values") or [])
                    term_names = values if term_names is None else term_names & values
            if term_names is None:
                return None, fw.SUCCESS  # this term allows any node (terms are ORed)
            names = term_names if names is None else names | term_names
        if names is not None and not names:
            return None, fw.unresolvable(ERR_REASON_CONFLICT)
        return fw.PreFilterResult(frozenset(names) if names is not None else None), fw.SUCCESS

    def _added_mask(self) -> fw.Mask | None:
        if self.added_required is None:
            return None
        table = self.handle.cache.table
        mask: fw.Mask = table.memo(
            (NAME, "added"), lambda: selector_mask(table, self.added_required)
        )
        return mask

    def filter(self, state: fw.CycleState, pod: types.PodInfo) -> fw.Mask | None:
        table = self.handle.cache.table
        mask: fw.Mask = table.memo((NAME, pod.node_affinity_sig), lambda: required_mask(table, pod))
        added = self._added_mask()
        return mask if added is None else mask & added

    def explain(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> list[fw.Status]:
        added = self._added_mask()
        return [
            fw.unresolvable(
                ERR_REASON_ENFORCED if added is not None and not added[row] else ERR_REASON_POD
            )
            for row in rows.tolist()
        ]

    def _weights(self, pod: types.PodInfo) -> list[tuple[types.Obj, int]]:
        return self.added_preferred + _preferred(
            pod.node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        )

    def pre_score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Status:
        return fw.SUCCESS if self._weights(pod) else fw.SKIP

    def score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Scores:
        table = self.handle.cache.table
        weighted = self._weights(pod)

        def compute() -> fw.Scores:
            total = np.zeros(table.capacity, dtype=np.int64)
            for term, weight in weighted:
                total += term_mask(table, term) * weight
            return total

        key = (
            NAME,
            "score",
            orjson.dumps([[t, w] for t, w in weighted], option=orjson.OPT_SORT_KEYS),
        )
        total: fw.Scores = table.memo(key, compute)
        return total[rows]

    def normalize(
        self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows, scores: fw.Scores
    ) -> fw.Scores:
        return fw.default_normalize(scores)

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [fw.ClusterEvent(fw.NODE, fw.ActionType.ADD | fw.ActionType.UPDATE_NODE_LABEL)]


def new(args: dict[str, Any], handle: runtime.Handle) -> NodeAffinity:
    return NodeAffinity(args, handle)
