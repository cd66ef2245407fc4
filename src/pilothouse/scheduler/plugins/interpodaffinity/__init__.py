"""InterPodAffinity: required and preferred pod affinity and anti-affinity.

Filter, in upstream's order: a node is out if an existing pod's required
anti-affinity term matches the incoming pod in the node's domain; if the
incoming pod's required affinity terms find no matching pod in the node's
domain (unless no pod anywhere matches and the pod matches its own terms —
the first of a group); or if its required anti-affinity terms find one.

Score: the incoming pod's preferred terms, and existing pods' terms that match
the incoming pod (required affinity at ``hardPodAffinityWeight``), add or
subtract weights per matching pod in each domain; scores are then scaled
min-max to 0..100.

Counting uses the cache's match indexes (pods per node matching a term) and
term groups (existing pods' terms, counted per node), so no cycle scans every
pod.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pilothouse.api.selectors import labels as label_selectors
from pilothouse.scheduler import cache as cache_module
from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

NAME = "InterPodAffinity"
ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
FILTER_KEY = "PreFilter" + NAME
SCORE_KEY = "PreScore" + NAME


class InterPodAffinity(fw.PreFilterPlugin, fw.FilterPlugin, fw.PreScorePlugin, fw.ScorePlugin):
    name = NAME

    def __init__(self, args: dict[str, Any], handle: runtime.Handle) -> None:
        self.handle = handle
        weight = args.get("hardPodAffinityWeight")
        self.hard_weight = 1 if weight is None else int(weight)
        self.ignore_existing_preferred = bool(args.get("ignorePreferredTermsOfExistingPods"))

    def _merged(self, term: types.AffinityTerm) -> types.AffinityTerm:
        """Resolve a term's namespaceSelector into namespace names (upstream merges them)."""
        if term.namespace_selector.nothing:
            return term
        names = term.namespaces | frozenset(
            self.handle.namespaces_matching(term.namespace_selector)
        )
        return types.AffinityTerm(names, term.selector, term.topology_key, label_selectors.NOTHING)

    def _domain_counts(self, key: str, counts: cache_module.Counts) -> tuple[Any, Any]:
        """(per-domain sum of ``counts`` over valid nodes, per-row domain codes)."""
        table = self.handle.cache.table
        codes, ndom = table.domain_codes(key)
        use = (codes >= 0) & table.valid
        domain = np.bincount(codes[use], weights=counts[use], minlength=ndom)
        return np.append(domain, 0.0), codes  # index -1 (no label) reads 0

    # --- filter -----------------------------------------------------------------------
    def pre_filter(
        self, state: fw.CycleState, pod: types.PodInfo
    ) -> tuple[fw.PreFilterResult | None, fw.Status]:
        cache = self.handle.cache
        existing = cache.term_groups[cache_module.REQUIRED_ANTI_AFFINITY]
        if not pod.required_affinity and not pod.required_anti_affinity and not existing:
            return None, fw.SKIP
        table = cache.table
        cap = table.capacity
        ns_labels = cache.namespace_labels(pod.namespace)
        existing_bad = np.zeros(cap, dtype=np.bool_)
        for group in existing.values():
            if group.term.matches(pod, ns_labels):
                domain, codes = self._domain_counts(group.term.topology_key, group.counts)
                existing_bad |= domain[codes] > 0
        affinity_ok = None
        if pod.required_affinity:
            terms = [self._merged(t) for t in pod.required_affinity]
            both = cache.match_counts(tuple(cache_module.clause_for_term(t) for t in terms))
            affinity_ok = np.ones(cap, dtype=np.bool_)
            any_match = False
            for t in terms:
                domain, codes = self._domain_counts(t.topology_key, both)
                any_match |= bool(domain.any())
                affinity_ok &= (codes >= 0) & (domain[codes] > 0)
            if not any_match and all(t.matches(pod, None) for t in terms):
                affinity_ok = np.ones(cap, dtype=np.bool_)
                for t in terms:
                    affinity_ok &= table.label_column(t.topology_key).codes >= 0
        anti_bad = np.zeros(cap, dtype=np.bool_)
        for t in pod.required_anti_affinity:
            merged = self._merged(t)
            counts = cache.match_counts((cache_module.clause_for_term(merged),))
            domain, codes = self._domain_counts(merged.topology_key, counts)
            anti_bad |= domain[codes] > 0
        state.write(FILTER_KEY, (existing_bad, affinity_ok, anti_bad))
        return None, fw.SUCCESS

    def filter(self, state: fw.CycleState, pod: types.PodInfo) -> fw.Mask | None:
        existing_bad, affinity_ok, anti_bad = state.read(FILTER_KEY)
        mask: fw.Mask = ~(existing_bad | anti_bad)
        if affinity_ok is not None:
            mask &= affinity_ok
        return mask

    def explain(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> list[fw.Status]:
        existing_bad, affinity_ok, _anti_bad = state.read(FILTER_KEY)
        out = []
        for row in rows.tolist():
            if existing_bad[row]:
                out.append(fw.unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY))
            elif affinity_ok is not None and not affinity_ok[row]:
                out.append(fw.unresolvable(ERR_REASON_AFFINITY))
            else:
                out.append(fw.unschedulable(ERR_REASON_ANTI_AFFINITY))
        return out

    # --- score ------------------------------------------------------------------------
    def pre_score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Status:
        cache = self.handle.cache
        groups = cache.term_groups
        has_existing = bool(groups[cache_module.REQUIRED_AFFINITY]) or (
            not self.ignore_existing_preferred
            and bool(
                groups[cache_module.PREFERRED_AFFINITY]
                or groups[cache_module.PREFERRED_ANTI_AFFINITY]
            )
        )
        if not pod.preferred_affinity and not pod.preferred_anti_affinity and not has_existing:
            return fw.SKIP
        ns_labels = cache.namespace_labels(pod.namespace)
        total = np.zeros(len(rows), dtype=np.float64)
        touched = False

        def add(key: str, counts: cache_module.Counts, weight: int) -> None:
            nonlocal total, touched
            domain, codes = self._domain_counts(key, counts)
            if domain.any():
                touched = True
                total += weight * domain[codes[rows]]

        for sign, weighted in ((1, pod.preferred_affinity), (-1, pod.preferred_anti_affinity)):
            for wt in weighted:
                merged = self._merged(wt.term)
                counts = cache.match_counts((cache_module.clause_for_term(merged),))
                add(merged.topology_key, counts, sign * wt.weight)
        if self.hard_weight > 0:
            for group in groups[cache_module.REQUIRED_AFFINITY].values():
                if group.term.matches(pod, ns_labels):
                    add(group.term.topology_key, group.counts, self.hard_weight)
        if not self.ignore_existing_preferred:
            for kind, sign in (
                (cache_module.PREFERRED_AFFINITY, 1),
                (cache_module.PREFERRED_ANTI_AFFINITY, -1),
            ):
                for group in groups[kind].values():
                    if group.term.matches(pod, ns_labels):
                        add(group.term.topology_key, group.counts, sign * group.weight)
        if not touched:
            return fw.SKIP
        state.write(SCORE_KEY, total.astype(np.int64))
        return fw.SUCCESS

    def score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Scores:
        scores: fw.Scores = state.read(SCORE_KEY)
        return scores

    def normalize(
        self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows, scores: fw.Scores
    ) -> fw.Scores:
        if len(scores) == 0:
            return scores
        lo, hi = int(scores.min()), int(scores.max())
        if hi == lo:
            return np.zeros(len(scores), dtype=np.int64)
        return ((fw.MAX_NODE_SCORE * (scores - lo).astype(np.float64)) / (hi - lo)).astype(np.int64)

    def events_to_register(self) -> list[fw.ClusterEvent]:
        return [
            fw.ClusterEvent(fw.POD, fw.ActionType.ALL),
            fw.ClusterEvent(fw.NODE, fw.ActionType.ADD | fw.ActionType.UPDATE_NODE_LABEL),
        ]


def new(args: dict[str, Any], handle: runtime.Handle) -> InterPodAffinity:
    return InterPodAffinity(args, handle)
