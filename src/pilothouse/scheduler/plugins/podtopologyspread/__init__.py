"""PodTopologySpread: keep matching pods evenly spread over topology domains.

``DoNotSchedule`` constraints filter: on a node in domain *d*, the matching
pods in *d* plus the pod itself, minus the smallest count over all eligible
domains (0 while fewer than ``minDomains`` domains exist), must not exceed
``maxSkew``. ``ScheduleAnyway`` constraints score: fewer matching pods in a
node's domain score higher, each constraint weighted by log(domains + 2).

Counts come from the cache's match indexes (pods per node for the constraint's
selector, kept current as pods come and go), summed per domain with one
``bincount``. Pods without constraints get the plugin's default constraints
(the system defaults spread a Service's, ReplicaSet's or StatefulSet's pods
over hosts and zones, for scoring only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pilothouse.api import selectors
from pilothouse.scheduler import cache as cache_module
from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime
from pilothouse.scheduler.plugins import nodeaffinity, tainttoleration

NAME = "PodTopologySpread"
ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
SYSTEM_DEFAULT_CONSTRAINTS = [
    {"maxSkew": 3, "topologyKey": types.HOSTNAME_LABEL, "whenUnsatisfiable": SCHEDULE_ANYWAY},
    {"maxSkew": 5, "topologyKey": types.ZONE_LABEL, "whenUnsatisfiable": SCHEDULE_ANYWAY},
]
FILTER_KEY = "PreFilter" + NAME
SCORE_KEY = "PreScore" + NAME
NO_MIN = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Constraint:
    max_skew: int
    topology_key: str
    when_unsatisfiable: str
    selector: selectors.LabelSelector
    min_domains: int
    honor_affinity: bool
    honor_taints: bool


def _constraint(
    raw: types.Obj, pod: types.PodInfo, selector: selectors.LabelSelector | None = None
) -> Constraint:
    if selector is None:
        try:
            selector = selectors.from_label_selector_dict(raw.get("labelSelector"))
        except selectors.SelectorError:
            selector = selectors.from_label_selector_dict(None)
        extra = [
            selectors.Requirement(k, "in", (pod.labels[k],))
            for k in raw.get("matchLabelKeys") or []
            if k in pod.labels
        ]
        if extra:
            selector = selector.add(*extra)
    return Constraint(
        max_skew=int(raw.get("maxSkew") or 1),
        topology_key=str(raw.get("topologyKey") or ""),
        when_unsatisfiable=str(raw.get("whenUnsatisfiable") or DO_NOT_SCHEDULE),
        selector=selector,
        min_domains=int(raw.get("minDomains") or 1),
        honor_affinity=(raw.get("nodeAffinityPolicy") or "Honor") == "Honor",
        honor_taints=(raw.get("nodeTaintsPolicy") or "Ignore") == "Honor",
    )


class PodTopologySpread(fw.PreFilterPlugin, fw.FilterPlugin, fw.PreScorePlugin, fw.ScorePlugin):
    name = NAME

    def __init__(self, args: dict[str, Any], handle: runtime.Handle) -> None:
        self.handle = handle
        self.defaulting = args.get("defaultingType") or "System"
        self.default_constraints: list[types.Obj] = list(args.get("defaultConstraints") or [])
        if self.defaulting == "System" and self.default_constraints:
            raise ValueError(
                "defaultConstraints: Invalid value: must be empty when defaultingType is System"
            )
        if self.defaulting == "System":
            self.default_constraints = SYSTEM_DEFAULT_CONSTRAINTS

    # --- constraints ------------------------------------------------------------------
    def _constraints(self, pod: types.PodInfo, when: str) -> tuple[list[Constraint], bool]:
        """The pod's constraints of one kind, and whether they are the pod's own."""
        if pod.spread_constraints:
            return [
                _constraint(c, pod)
                for c in pod.spread_constraints
                if (c.get("whenUnsatisfiable") or DO_NOT_SCHEDULE) == when
            ], True
        defaults = [
            c
            for c in self.default_constraints
            if (c.get("whenUnsatisfiable") or DO_NOT_SCHEDULE) == when
        ]
        if not defaults:
            # The system defaults only score: PreFilter of every pod of a ReplicaSet or a
            # Service skips without looking its owners and Services up for a selector.
            return [], False
        default_selector = self.handle.extra.get("default_selector")
        selector = default_selector(pod) if default_selector is not None else None
        if selector is None or selector.empty or selector.nothing:
            return [], False
        return [_constraint(c, pod, selector) for c in defaults], False

    def _eligible(
        self, pod: types.PodInfo, constraints: list[Constraint], require_all: bool
    ) -> fw.Mask:
        table = self.handle.cache.table
        mask = table.valid.copy()
        if require_all:
            for c in constraints:
                mask &= table.label_column(c.topology_key).codes >= 0
        if any(c.honor_affinity for c in constraints):
            mask &= table.memo(
                (nodeaffinity.NAME, pod.node_affinity_sig),
                lambda: nodeaffinity.required_mask(table, pod),
            )
        if any(c.honor_taints for c in constraints) and len(table.taint_sets) > 1:
            ok = np.array(
                [tainttoleration.untolerated(pod.tolerations, s) is None for s in table.taint_sets],
                dtype=np.bool_,
            )
            mask &= ok[table.taint_set]
        return mask

    def _counts(self, pod: types.PodInfo, c: Constraint) -> cache_module.Counts:
        clause = cache_module.Clause(frozenset((pod.namespace,)), c.selector)
        return self.handle.cache.match_counts((clause,), exclude_terminating=True)

    # --- filter -----------------------------------------------------------------------
    def pre_filter(
        self, state: fw.CycleState, pod: types.PodInfo
    ) -> tuple[fw.PreFilterResult | None, fw.Status]:
        constraints, _own = self._constraints(pod, DO_NOT_SCHEDULE)
        if not constraints:
            return None, fw.SKIP
        table = self.handle.cache.table
        eligible = self._eligible(pod, constraints, True)
        rows = np.flatnonzero(eligible)
        has_keys = np.ones(table.capacity, dtype=np.bool_)
        per_constraint = []
        for c in constraints:
            codes, ndom = table.domain_codes(c.topology_key)
            has_keys &= codes >= 0
            counts = self._counts(pod, c)
            doms = codes[rows]
            domain_counts = np.bincount(doms, weights=counts[rows], minlength=ndom).astype(np.int64)
            present = np.zeros(ndom, dtype=np.bool_)
            present[doms] = True
            num_domains = int(present.sum())
            if num_domains < c.min_domains:
                global_min = 0
            else:
                global_min = int(domain_counts[present].min()) if num_domains else NO_MIN
            self_match = 1 if c.selector.matches(pod.labels) else 0
            per_constraint.append((c, codes, domain_counts, global_min, self_match))
        state.write(FILTER_KEY, (per_constraint, has_keys))
        return None, fw.SUCCESS

    def filter(self, state: fw.CycleState, pod: types.PodInfo) -> fw.Mask | None:
        per_constraint, has_keys = state.read(FILTER_KEY)
        mask: fw.Mask = has_keys.copy()
        for c, codes, domain_counts, global_min, self_match in per_constraint:
            padded = np.append(domain_counts, 0)  # index -1: no label
            matched = padded[codes]
            mask &= matched + self_match - global_min <= c.max_skew
        return mask

    def explain(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> list[fw.Status]:
        _, has_keys = state.read(FILTER_KEY)
        return [
            fw.unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
            if has_keys[row]
            else fw.unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)
            for row in rows.tolist()
        ]

    # --- score ------------------------------------------------------------------------
    def pre_score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Status:
        constraints, own = self._constraints(pod, SCHEDULE_ANYWAY)
        if not constraints:
            return fw.SKIP
        table = self.handle.cache.table
        ignored = np.zeros(len(rows), dtype=np.bool_)
        if own:
            for c in constraints:
                ignored |= table.label_column(c.topology_key).codes[rows] < 0
        kept = rows[~ignored]
        all_rows: fw.Rows | None = None
        score = np.zeros(len(rows), dtype=np.float64)
        for c in constraints:
            codes, ndom = table.domain_codes(c.topology_key)
            if ndom == 0:
                # No node has the key (the system default's zones on unzoned nodes): no
                # row is in a domain, so the constraint adds nothing to any score.
                continue
            counts = self._counts(pod, c)
            has = codes[rows] >= 0
            if c.topology_key == types.HOSTNAME_LABEL:
                size = len(kept)
                cnt = counts[rows].astype(np.float64)
            else:
                if all_rows is None:
                    all_rows = np.flatnonzero(self._eligible(pod, constraints, own))
                candidate_domains = np.zeros(ndom, dtype=np.bool_)
                kept_codes = codes[kept]
                candidate_domains[kept_codes[kept_codes >= 0]] = True
                size = int(candidate_domains.sum())
                all_codes = codes[all_rows]
                valid = all_codes >= 0
                domain_counts = np.bincount(
                    all_codes[valid], weights=counts[all_rows][valid], minlength=ndom
                )
                domain_counts = np.where(candidate_domains, domain_counts, 0.0)
                cnt = np.append(domain_counts, 0.0)[codes[rows]]
            weight = math.log(size + 2)
            score += np.where(has, cnt * weight + (c.max_skew - 1), 0.0)
        state.write(SCORE_KEY, (np.floor(score + 0.5).astype(np.int64), ignored))
        return fw.SUCCESS

    def score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Scores:
        scores, ignored = state.read(SCORE_KEY)
        result: fw.Scores = np.where(ignored, 0, scores)
        return result

    def normalize(
        self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows, scores: fw.Scores
    ) -> fw.Scores:
        _, ignored = state.read(SCORE_KEY)
        live = scores[~ignored]
        if len(live) == 0:
            return np.zeros(len(scores), dtype=np.int64)
        lo, hi = int(live.min()), int(max(int(live.max()), 0))
        if hi == 0:
            out = np.full(len(scores), fw.MAX_NODE_SCORE, dtype=np.int64)
        else:
            out = (fw.MAX_NODE_SCORE * (hi + lo - scores)) // hi
        return np.where(ignored, 0, out)

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [
            fw.ClusterEvent(
                fw.POD, fw.ActionType.ADD | fw.ActionType.UPDATE_POD_LABEL | fw.ActionType.DELETE
            ),
            fw.ClusterEvent(
                fw.NODE,
                fw.ActionType.ADD
                | fw.ActionType.DELETE
                | fw.ActionType.UPDATE_NODE_LABEL
                | fw.ActionType.UPDATE_NODE_TAINT,
            ),
        ]


def new(args: dict[str, Any], handle: runtime.Handle) -> PodTopologySpread:
    return PodTopologySpread(args, handle)
