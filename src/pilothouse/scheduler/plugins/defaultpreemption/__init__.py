"""DefaultPreemption: when a pod fits nowhere, evict lower-priority pods to make room.

For each node where removing pods could help (its filter status is
``Unschedulable``, not ``UnschedulableAndUnresolvable``), remove every pod of
lower priority and check that the pod would fit; then give back as many of
them as still leaves room — those whose eviction would break a
PodDisruptionBudget first, then the rest, most important first. The node with
the fewest budget violations, then the lowest highest victim priority, the
lowest priority sum, the fewest victims and the latest start among the most
important victims wins. Its victims get the ``DisruptionTarget`` condition and
are deleted, lower-priority pods nominated there lose the nomination, and the
preemptor is nominated to the node (``status.nominatedNodeName``) and waits
for the victims to go.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from pilothouse.api import errors, meta, resources, selectors
from pilothouse.client import events
from pilothouse.client.rest import STRATEGIC_PATCH
from pilothouse.scheduler import algorithm, types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

log = logging.getLogger(__name__)

NAME = "DefaultPreemption"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
PODS = resources.Resource("", "v1", "Pod", "pods", True)
INT32_OFFSET = 2**31


@dataclass
class Candidate:
    row: int
    victims: list[types.PodInfo]
    violations: int


def more_important(a: types.PodInfo) -> tuple[int, float]:
    """Sort key: higher priority first, then the earlier started."""
    return (-a.priority, a.start_time)


def terminating_by_preemption(pod: types.PodInfo) -> bool:
    if not pod.terminating:
        return False
    return any(
        c.get("type") == "DisruptionTarget" and c.get("reason") == "PreemptionByScheduler"
        for c in (pod.pod.get("status") or {}).get("conditions") or []
    )


def split_by_pdb(
    pods: list[types.PodInfo], pdbs: list[types.Obj]
) -> tuple[list[types.PodInfo], list[types.PodInfo]]:
    """(pods whose eviction would break a budget, the others), order kept."""
    allowed = [int((p.get("status") or {}).get("disruptionsAllowed") or 0) for p in pdbs]
    parsed = []
    for pdb in pdbs:
        try:
            sel = selectors.from_label_selector_dict((pdb.get("spec") or {}).get("selector"))
        except selectors.SelectorError:
            sel = selectors.from_label_selector_dict(None)
        parsed.append(sel)
    violating: list[types.PodInfo] = []
    ok: list[types.PodInfo] = []
    for pod in pods:
        violated = False
        if pod.labels:
            for i, pdb in enumerate(pdbs):
                if (pdb.get("metadata") or {}).get("namespace") != pod.namespace:
                    continue
                sel = parsed[i]
                if sel.empty or not sel.matches(pod.labels):
                    continue
                if pod.name in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else ok).append(pod)
    return violating, ok


def pick_candidate(candidates: list[Candidate]) -> Candidate:
    """Upstream's ``pickOneNodeForPreemption``."""
    for c in candidates:
        if not c.victims:
            return c

    def key(c: Candidate) -> tuple[int, int, int, int, float]:
        top = c.victims[0].priority
        earliest_top = min(v.start_time for v in c.victims if v.priority == top)
        return (
            c.violations,
            top,
            sum(v.priority + INT32_OFFSET for v in c.victims),
            len(c.victims),
            -earliest_top,
        )

    return min(candidates, key=key)


class DefaultPreemption(fw.PostFilterPlugin):
    name = NAME

    def __init__(self, args: dict[str, Any], handle: runtime.Handle) -> None:
        self.handle = handle
        self.min_percentage = int(args.get("minCandidateNodesPercentage", 10))
        self.min_absolute = int(args.get("minCandidateNodesAbsolute", 100))
        self.rng = random.Random()

    def eligible(self, pod: types.PodInfo, node_status: dict[int, fw.Status]) -> tuple[bool, str]:
        if pod.preemption_policy == "Never":
            return False, "not eligible due to preemptionPolicy=Never."
        table = self.handle.cache.table
        row = table.row_of.get(pod.nominated_node) if pod.nominated_node else None
        if row is not None:
            status = node_status.get(row)
            if status is not None and status.code == fw.Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return True, ""
            for other in self.handle.cache.pods_on(row).values():
                if other.priority < pod.priority and terminating_by_preemption(other):
                    return False, "not eligible due to a terminating pod on the nominated node."
        return True, ""

    def num_candidates(self, nodes: int) -> int:
        n = nodes * self.min_percentage // 100
        return min(max(n, self.min_absolute), nodes)

    async def post_filter(
        self, state: fw.CycleState, pod: types.PodInfo, node_status: dict[int, fw.Status]
    ) -> tuple[str | None, fw.Status]:
        nominated, status = await self.preempt(pod, node_status)
        if status.message:
            return nominated, fw.Status(status.code, (f"preemption: {status.message}",))
        return nominated, status

    async def preempt(
        self, pod: types.PodInfo, node_status: dict[int, fw.Status]
    ) -> tuple[str | None, fw.Status]:
        ok, message = self.eligible(pod, node_status)
        if not ok:
            return None, fw.unschedulable(message)
        table = self.handle.cache.table
        all_rows = table.valid_rows().tolist()
        statuses: dict[int, fw.Status] = {}
        potential = []
        for row in all_rows:
            status = node_status.get(row)
            if status is None or status.code == fw.Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                statuses[row] = fw.unresolvable(NOT_HELPFUL)
            else:
                potential.append(row)
        candidates: list[Candidate] = []
        if potential:
            pdbs = self.handle.list_pdbs()
            wanted = self.num_candidates(len(potential))
            offset = self.rng.randrange(len(potential))
            non_violating = 0
            for i in range(len(potential)):
                row = potential[(offset + i) % len(potential)]
                victims, violations, status = self.select_victims(pod, row, pdbs)
                if status.is_success():
                    candidates.append(Candidate(row, victims, violations))
                    non_violating += violations == 0
                    if non_violating and len(candidates) >= wanted:
                        break
                else:
                    statuses[row] = status
        if not candidates:
            diagnosis = runtime.Diagnosis(node_to_status=statuses)
            # An empty nomination clears a stale nominatedNodeName.
            return "", fw.unschedulable(algorithm.fit_error_message(len(all_rows), diagnosis))
        best = pick_candidate(candidates)
        node = table.names[best.row]
        await self.prepare(best, pod, node)
        return node, fw.SUCCESS

    def select_victims(
        self, pod: types.PodInfo, row: int, pdbs: list[types.Obj]
    ) -> tuple[list[types.PodInfo], int, fw.Status]:
        cache = self.handle.cache
        framework = self.handle.framework
        assert framework is not None
        lower = [p for p in cache.pods_on(row).values() if p.priority < pod.priority]
        if not lower:
            return [], 0, fw.unresolvable(NO_VICTIMS)
        for p in lower:
            cache.detach(p)
        removed = list(lower)
        try:
            status = framework.filter_row(pod, row)
            if not status.is_success():
                return [], 0, status
            lower.sort(key=more_important)
            violating, others = split_by_pdb(lower, pdbs)
            victims: list[types.PodInfo] = []
            violations = 0
            for group, breaks_budget in ((violating, True), (others, False)):
                for p in group:
                    cache.attach(p, row)
                    if framework.filter_row(pod, row).is_success():
                        removed.remove(p)  # reprieved
                    else:
                        cache.detach(p)
                        victims.append(p)
                        violations += breaks_budget
            victims.sort(key=more_important)
            return victims, violations, fw.SUCCESS
        finally:
            for p in removed:
                if p.key not in cache.pods:
                    cache.attach(p, row)

    async def prepare(self, candidate: Candidate, pod: types.PodInfo, node: str) -> None:
        client = self.handle.client
        if client is None:
            return
        recorder = self.handle.recorder
        message = f"{self.handle.scheduler_name}: preempting to accommodate a higher priority pod"

        async def evict(victim: types.PodInfo) -> None:
            condition = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": message,
                "lastTransitionTime": meta.now(),
            }
            try:
                await client.patch(
                    PODS,
                    victim.name,
                    {"status": {"conditions": [condition]}},
                    victim.namespace,
                    patch_type=STRATEGIC_PATCH,
                    subresource="status",
                )
                await client.delete(PODS, victim.name, victim.namespace)
            except errors.StatusError as exc:
                if not errors.is_not_found(exc):
                    log.warning("preempting %s: %s", victim.key, exc.message)
                    return
            if recorder is not None:
                recorder.event(
                    victim.pod,
                    events.NORMAL,
                    "Preempted",
                    f"Preempted by pod {pod.uid} on node {node}",
                )

        await asyncio.gather(*(evict(v) for v in candidate.victims))
        for other in self.handle.nominated_pods(node):
            if other.key != pod.key and other.priority < pod.priority:
                try:
                    await client.patch(
                        PODS,
                        other.name,
                        {"status": {"nominatedNodeName": None}},
                        other.namespace,
                        patch_type=STRATEGIC_PATCH,
                        subresource="status",
                    )
                except errors.StatusError as exc:
                    log.debug("clearing nomination of %s: %s", other.key, exc.message)


def new(args: dict[str, Any], handle: runtime.Handle) -> DefaultPreemption:
    return DefaultPreemption(args, handle)
