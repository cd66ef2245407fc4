"""The scheduler's picture of the cluster: nodes, the pods on them, and assumed pods.

When the scheduler picks a node it *assumes* the pod there at once — the
node's arrays count it — and writes the binding in the background. The pod
informer later confirms it (``add_pod`` of the bound pod) or, if the binding
failed, the scheduler *forgets* it. So the next pod is placed against a picture
that already includes every decision, without waiting for any write.

Besides the :class:`~pilothouse.scheduler.nodetable.NodeTable`, the cache keeps
indexes that plugins would otherwise rebuild by scanning every pod each cycle:

* **match indexes** — for a selector (namespaces + labels), how many pods on each
  node match. Built on first use (one scan), then kept current as pods come and go.
* **term groups** — existing pods' affinity and anti-affinity terms, grouped by
  term, with how many pods on each node carry it (for symmetric checks).
* **host ports** in use per node.

Everything runs on the scheduler's event loop; nothing here awaits.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pilothouse.api import selectors
from pilothouse.scheduler import nodetable, types

Obj = dict[str, Any]
Counts = npt.NDArray[np.int32]

REQUIRED_AFFINITY = "requiredAffinity"
REQUIRED_ANTI_AFFINITY = "requiredAntiAffinity"
PREFERRED_AFFINITY = "preferredAffinity"
PREFERRED_ANTI_AFFINITY = "preferredAntiAffinity"
MATCH_INDEX_LIMIT = 256


@dataclass(frozen=True, slots=True)
class Clause:
    """Pods in ``namespaces`` (None: any) or in namespaces ``namespace_selector`` picks,
    whose labels ``selector`` matches."""

    namespaces: frozenset[str] | None
    selector: selectors.LabelSelector
    namespace_selector: selectors.LabelSelector = selectors.labels.NOTHING


class MatchIndex:
    """Per node, how many pods match every clause."""

    __slots__ = ("clauses", "counts", "exclude_terminating", "uses_namespace_labels")

    def __init__(
        self, clauses: tuple[Clause, ...], exclude_terminating: bool, capacity: int
    ) -> None:
        self.clauses = clauses
        self.exclude_terminating = exclude_terminating
        self.counts: Counts = np.zeros(capacity, dtype=np.int32)
        self.uses_namespace_labels = any(not c.namespace_selector.nothing for c in clauses)


@dataclass(slots=True)
class TermGroup:
    """Existing pods carrying one affinity term, counted per node."""

    kind: str
    term: types.AffinityTerm
    weight: int
    counts: Counts
    total: int = 0


class Cache:
    """See the module docstring."""

    def __init__(
        self,
        *,
        namespace_labels: Callable[[str], dict[str, str] | None] = lambda _ns: None,
        capacity: int = 64,
    ) -> None:
        self.table = nodetable.NodeTable(capacity)
        self.table.on_grow.append(self._grow)
        self.namespace_labels = namespace_labels
        self.pods: dict[str, types.PodInfo] = {}
        self.pod_row: dict[str, int] = {}
        self.assumed: set[str] = set()
        self.binding: set[str] = set()  # assumed and the binding is still being written
        self.node_pods: list[dict[str, types.PodInfo]] = [{} for _ in range(capacity)]
        self.ports: dict[int, collections.Counter[tuple[str, str, int]]] = {}
        self._indexes: collections.OrderedDict[tuple[Any, ...], MatchIndex] = (
            collections.OrderedDict()
        )
        self.term_groups: dict[str, dict[tuple[types.AffinityTerm, int], TermGroup]] = {
            REQUIRED_AFFINITY: {},
            REQUIRED_ANTI_AFFINITY: {},
            PREFERRED_AFFINITY: {},
            PREFERRED_ANTI_AFFINITY: {},
        }
        self.pods_with_terms = 0

    def _grow(self, capacity: int) -> None:
        self.node_pods.extend({} for _ in range(capacity - len(self.node_pods)))
        for index in self._indexes.values():
            index.counts = _grown(index.counts, capacity)
        for groups in self.term_groups.values():
            for group in groups.values():
                group.counts = _grown(group.counts, capacity)

    # --- nodes ------------------------------------------------------------------------
    def add_node(self, node: Obj) -> tuple[int, bool]:
        return self.table.set_node(node)

    def update_node(self, node: Obj) -> tuple[int, bool]:
        return self.table.set_node(node)

    def remove_node(self, name: str) -> None:
        row = self.table.remove_node(name)
        if row is not None and not self.node_pods[row]:
            self.table.release(name)

    def node_count(self) -> int:
        return len(self.table)

    # --- pods -------------------------------------------------------------------------
    def vector(self, pod: types.PodInfo) -> npt.NDArray[np.int64]:
        cached = pod.vector_cache
        if cached is not None and cached[0] == self.table.layout_version:
            vec: npt.NDArray[np.int64] = cached[1]
            return vec
        vec = self.table.vector(pod.requests)
        pod.vector_cache = (self.table.layout_version, vec)
        return vec

    def assume_pod(self, pod: types.PodInfo, node: str) -> None:
        """Count ``pod`` on ``node`` now; the binding follows."""
        if pod.key in self.pods:
            raise ValueError(f"pod {pod.key} is already in the cache")
        self._attach(pod, self.table.row(node))
        self.assumed.add(pod.key)
        self.binding.add(pod.key)

    def finish_binding(self, key: str) -> None:
        self.binding.discard(key)

    def forget_pod(self, key: str) -> None:
        """Undo an assumption whose binding failed."""
        if key in self.assumed:
            self.assumed.discard(key)
            self.binding.discard(key)
            self._detach(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def add_pod(self, pod: types.PodInfo) -> None:
        """A bound pod seen by the informer (confirms an assumed one)."""
        self.assumed.discard(pod.key)
        self.binding.discard(pod.key)
        old = self.pods.get(pod.key)
        if old is not None:
            row = self.pod_row[pod.key]
            if (
                self.table.names[row] == pod.node_name
                and old.labels == pod.labels
                and old.requests == pod.requests
                and old.terminating == pod.terminating
                and old.host_ports == pod.host_ports
                and old.pod.get("spec", {}).get("affinity")
                == pod.pod.get("spec", {}).get("affinity")
            ):
                # Same shape on the same node (the usual confirmation of an assumed
                # pod): swap the object, nothing to recount.
                pod.vector_cache = old.vector_cache
                self.pods[pod.key] = pod
                self.node_pods[row][pod.key] = pod
                return
            self._detach(pod.key)
        self._attach(pod, self.table.row(pod.node_name))

    def update_pod(self, pod: types.PodInfo) -> None:
        self.add_pod(pod)

    def remove_pod(self, key: str) -> None:
        self.assumed.discard(key)
        self.binding.discard(key)
        self._detach(key)

    def pods_on(self, row: int) -> dict[str, types.PodInfo]:
        return self.node_pods[row]

    def _attach(self, pod: types.PodInfo, row: int) -> None:
        self.pods[pod.key] = pod
        self.pod_row[pod.key] = row
        self.node_pods[row][pod.key] = pod
        self.table.add_usage(row, self.vector(pod), pod.non_zero_cpu, pod.non_zero_memory, 1)
        if pod.host_ports:
            self.ports.setdefault(row, collections.Counter()).update(pod.host_ports)
        self._count(pod, row, 1)

    def _detach(self, key: str) -> types.PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is None:
            return None
        row = self.pod_row.pop(key)
        self.node_pods[row].pop(key, None)
        self.table.add_usage(row, self.vector(pod), pod.non_zero_cpu, pod.non_zero_memory, -1)
        if pod.host_ports:
            used = self.ports.get(row)
            if used is not None:
                used.subtract(pod.host_ports)
                for port in [p for p, n in used.items() if n <= 0]:
                    del used[port]
                if not used:
                    del self.ports[row]
        self._count(pod, row, -1)
        name = self.table.names[row]
        if not self.table.valid[row] and not self.node_pods[row] and self.table.nodes[row] is None:
            self.table.release(name)
        return pod

    @contextlib.contextmanager
    def without(self, pods: list[types.PodInfo]) -> Iterator[None]:
        """Pretend ``pods`` are gone (preemption's what-if), restoring them afterwards."""
        rows = [(p, self.pod_row[p.key]) for p in pods if p.key in self.pods]
        for p, _ in rows:
            self._detach(p.key)
        try:
            yield
        finally:
            for p, row in rows:
                if p.key not in self.pods:
                    self._attach(p, row)

    @contextlib.contextmanager
    def with_pods(self, placed: list[tuple[types.PodInfo, str]]) -> Iterator[None]:
        """Pretend pods are on nodes (nominated pods hold their room), then undo."""
        added = []
        for pod, node in placed:
            if pod.key not in self.pods and node in self.table.row_of:
                self._attach(pod, self.table.row_of[node])
                added.append(pod.key)
        try:
            yield
        finally:
            for key in added:
                self._detach(key)

    def detach(self, pod: types.PodInfo) -> int:
        row = self.pod_row[pod.key]
        self._detach(pod.key)
        return row

    def attach(self, pod: types.PodInfo, row: int) -> None:
        self._attach(pod, row)

    # --- indexes ----------------------------------------------------------------------
    def _count(self, pod: types.PodInfo, row: int, delta: int) -> None:
        if self._indexes:
            ns_labels: dict[str, str] | None = None
            fetched = False
            for index in self._indexes.values():
                if index.exclude_terminating and pod.terminating:
                    continue
                if index.uses_namespace_labels and not fetched:
                    ns_labels, fetched = self.namespace_labels(pod.namespace), True
                if _matches_all(index.clauses, pod, ns_labels):
                    index.counts[row] += delta
        if pod.has_affinity_terms:
            self.pods_with_terms += delta
            self._count_terms(REQUIRED_AFFINITY, pod.required_affinity, 0, row, delta)
            self._count_terms(REQUIRED_ANTI_AFFINITY, pod.required_anti_affinity, 0, row, delta)
            for wt in pod.preferred_affinity:
                self._count_terms(PREFERRED_AFFINITY, (wt.term,), wt.weight, row, delta)
            for wt in pod.preferred_anti_affinity:
                self._count_terms(PREFERRED_ANTI_AFFINITY, (wt.term,), wt.weight, row, delta)

    def _count_terms(
        self, kind: str, terms: tuple[types.AffinityTerm, ...], weight: int, row: int, delta: int
    ) -> None:
        groups = self.term_groups[kind]
        for term in terms:
            key = (term, weight)
            group = groups.get(key)
            if group is None:
                if delta < 0:
                    continue
                group = groups[key] = TermGroup(
                    kind, term, weight, np.zeros(self.table.capacity, dtype=np.int32)
                )
            group.counts[row] += delta
            group.total += delta
            if group.total <= 0:
                del groups[key]

    def match_counts(
        self, clauses: tuple[Clause, ...], *, exclude_terminating: bool = False
    ) -> Counts:
        """Per node row, how many cached pods match all ``clauses``."""
        key = (clauses, exclude_terminating)
        index = self._indexes.get(key)
        if index is not None:
            self._indexes.move_to_end(key)
            return index.counts
        index = MatchIndex(clauses, exclude_terminating, self.table.capacity)
        for pkey, pod in self.pods.items():
            if exclude_terminating and pod.terminating:
                continue
            if _matches_all(clauses, pod, self.namespace_labels(pod.namespace)):
                index.counts[self.pod_row[pkey]] += 1
        self._indexes[key] = index
        while len(self._indexes) > MATCH_INDEX_LIMIT:
            self._indexes.popitem(last=False)
        return index.counts

    def namespace_labels_changed(self) -> None:
        """Drop indexes that depend on namespace labels (they are rebuilt on demand)."""
        for key in [k for k, v in self._indexes.items() if v.uses_namespace_labels]:
            del self._indexes[key]


def _matches_all(
    clauses: tuple[Clause, ...], pod: types.PodInfo, ns_labels: dict[str, str] | None
) -> bool:
    for c in clauses:
        if (
            c.namespaces is not None
            and pod.namespace not in c.namespaces
            and (c.namespace_selector.nothing or not c.namespace_selector.matches(ns_labels or {}))
        ):
            return False
        if not c.selector.matches(pod.labels):
            return False
    return True


def _grown(counts: Counts, capacity: int) -> Counts:
    out = np.zeros(capacity, dtype=np.int32)
    out[: len(counts)] = counts
    return out


def clause_for_term(term: types.AffinityTerm) -> Clause:
    return Clause(term.namespaces, term.selector, term.namespace_selector)
