"""The ReplicaSet controller: keep ``spec.replicas`` pods running (upstream's replica_set.go).

``sync(namespace/name)`` reads the ReplicaSet from the informer, claims its
active pods (:mod:`~pilothouse.controllers.refmanager`: adopts matching
orphans, releases owned pods it no longer matches), then — if its expectations
are met, so the cache is known to reflect its own past actions — creates pods
(in slow-start batches, at most ``burst`` per sync) or deletes the pods
upstream would delete first (ranked against the pods of every ReplicaSet of
the same owner, so a Deployment's pods spread across nodes), and writes
``status``. One ReplicaSet is synced by one worker at a time; different ones in
parallel.

Upstream walks every pod of the namespace to claim and every pod of the set
to count, on each sync; here the set's pods and their counts are kept up to
date from the pod informer's events (:mod:`~pilothouse.controllers.ownedpods`)
and the claim looks only at the pods the set must release and at the
namespace's orphans (``lister.ORPHAN_INDEX``) — the same outcome, at a cost
per sync that does not grow with the number of pods. Only scaling down still
ranks every pod of the set, as upstream does.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from pilothouse.api import errors, meta, selectors
from pilothouse.client import events, lister, rest
from pilothouse.controllers import base, ownedpods, podcontrol, refmanager
from pilothouse.controllers.expectations import Expectations

log = logging.getLogger(__name__)

Obj = dict[str, Any]
BURST_REPLICAS = 500
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def _phase_rank(pod: Obj) -> int:
    phase = (pod.get("status") or {}).get("phase")
    return {"Pending": 0, "Unknown": 1, "Running": 2}.get(str(phase), 0)


def _log2(seconds: float) -> int:
    return math.floor(math.log2(seconds)) if seconds > 1 else 0


def deletion_order(pods: list[Obj], related: list[Obj], now: float) -> list[Obj]:
    """Pods in the order upstream deletes them (ActivePodsWithRanks, 1.32); ``related``
    are the pods of every ReplicaSet with the same owner (upstream's
    getIndirectlyRelatedPods), whose count per node ranks doubled-up nodes first."""
    per_node: dict[str, int] = {}
    for p in related:
        node = (p.get("spec") or {}).get("nodeName")
        if node and podcontrol.is_active(p):
            per_node[node] = per_node.get(node, 0) + 1

    def key(pod: Obj) -> tuple[Any, ...]:
        md = pod["metadata"]
        spec = pod.get("spec") or {}
        node = spec.get("nodeName") or ""
        ready = podcontrol.ready_condition(pod)
        try:
            cost = int((md.get("annotations") or {}).get(POD_DELETION_COST, 0))
        except ValueError:
            cost = 0
        ready_since = meta.parse_time(ready.get("lastTransitionTime")) if ready else None
        created = meta.parse_time(md.get("creationTimestamp")) or now
        restarts = max(
            (
                c.get("restartCount", 0)
                for c in (pod.get("status") or {}).get("containerStatuses") or []
            ),
            default=0,
        )
        return (
            1 if node else 0,  # unassigned first
            _phase_rank(pod),  # pending before unknown before running
            1 if ready else 0,  # not ready before ready
            cost,  # lower deletion cost first
            -per_node.get(node, 0) if node else 0,  # doubled-up nodes first
            _log2(now - ready_since) if ready_since else 0,  # ready for less time first
            -restarts,  # more restarts first
            -_log2(now - created),  # newer first (log scale)
            -created,
            md.get("uid", ""),
        )

    return sorted(pods, key=key)


class ReplicaSetController(base.Controller):
    """Keeps ReplicaSets' pods; subclasses keep other kinds with the same logic
    (``resource``, ``kind``, ``component`` and :meth:`selector_of` say which)."""

    name = "replicaset"
    workers = 4
    kind = "ReplicaSet"
    resource = ("apps", "v1", "replicasets")
    component = "replicaset-controller"

    def __init__(self, ctx: Any, *, burst: int = BURST_REPLICAS) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.burst = burst
        self.rs_resource = ctx.resource(*self.resource)
        self.pod_resource = ctx.resource("", "v1", "pods")
        self.sets = ctx.informers.informer(self.rs_resource)
        self.sets.add_indexer(lister.OWNER_UID_INDEX, lister.controller_uid_index)
        self.pods = ctx.informers.informer(self.pod_resource)
        self.pods.add_indexer(lister.OWNER_UID_INDEX, lister.controller_uid_index)
        self.pods.add_indexer(lister.ORPHAN_INDEX, lister.orphan_index)
        self.owned = ownedpods.OwnedPods(self.pods.indexer)
        self.recorder: events.EventRecorder = ctx.recorder(self.component)
        self.expectations = Expectations(ctx.clock)
        self.sets.add_handlers(
            on_add=self.enqueue, on_update=self._set_updated, on_delete=self._set_deleted
        )
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )

    async def wait_ready(self) -> None:
        await self.sets.wait_synced()
        await self.pods.wait_synced()

    def selector_of(self, rs: Obj) -> selectors.LabelSelector:
        """The pods ``rs`` selects (a ReplicaSet's ``spec.selector`` is a LabelSelector)."""
        return selectors.from_label_selector_dict((rs.get("spec") or {}).get("selector"))

    # --- handlers ---------------------------------------------------------------------
    def _set_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self.owned.forget(old["metadata"].get("uid", ""))  # replaced while we were away
        self.enqueue(new)

    def _set_deleted(self, rs: Obj) -> None:
        key = lister.key_of(rs)
        self.expectations.forget(key)
        self.owned.forget(rs["metadata"].get("uid", ""))
        self.queue.add(key)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = podcontrol.get_controller_of(pod)
        if ref is None or ref.get("kind") != self.kind:
            return None
        key = f"{pod['metadata'].get('namespace', '')}/{ref.get('name')}"
        rs = self.sets.indexer.get(key)
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return key

    def _orphan_owners(self, pod: Obj) -> list[str]:
        md = pod["metadata"]
        labels = md.get("labels") or {}
        out = []
        for rs in self.sets.indexer.list_namespace(md.get("namespace", "")):
            sel = self.selector_of(rs)
            if not sel.empty and sel.matches(labels):
                out.append(lister.key_of(rs))
        return out

    def _pod_added(self, pod: Obj) -> None:
        self.owned.observe(None, pod)
        if pod["metadata"].get("deletionTimestamp"):
            self._expect_deleted(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif podcontrol.get_controller_of(pod) is None:
            for k in self._orphan_owners(pod):
                self.queue.add(k)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self.owned.observe(old, new)
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get(
            "deletionTimestamp"
        ):
            # A pod being deleted is gone for our count: expect it as a deletion.
            self._expect_deleted(new)
            return
        old_key, new_key = self._owner_key(old), self._owner_key(new)
        if old_key and old_key != new_key:
            self.queue.add(old_key)
        if new_key:
            self.queue.add(new_key)
            rs = self.sets.indexer.get(new_key)
            min_ready = int(((rs or {}).get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready and not podcontrol.pod_ready(old) and podcontrol.pod_ready(new):
                self.queue.add_after(new_key, min_ready + 1)
        elif podcontrol.get_controller_of(new) is None:
            for k in self._orphan_owners(new):
                self.queue.add(k)

    def _pod_deleted(self, pod: Obj) -> None:
        self.owned.observe(pod, None)
        self._expect_deleted(pod)

    def _expect_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, lister.key_of(pod))
            self.queue.add(key)

    # --- sync -------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        rs = self.sets.indexer.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        needs_sync = self.expectations.satisfied(key) and not rs["metadata"].get(
            "deletionTimestamp"
        )
        group = self.owned.group(
            rs["metadata"].get("uid", ""), ownedpods.view_key(rs), lambda: self._view(rs)
        )
        adopted = await self._claim_pods(rs, group)
        # The counts as the claim left them, taken at one instant: manage and status
        # work from the same figures, as upstream's work from the same claimed list.
        extra = [(lister.key_of(p), p) for p in adopted]
        counts = group.snapshot(extra)
        error: BaseException | None = None
        if needs_sync:
            error = await self._manage_replicas(key, rs, counts, group, extra)
        await self._update_status(rs, counts, error)
        if error is not None:
            raise error

    def _view(self, rs: Obj) -> ownedpods.View:
        spec = rs.get("spec") or {}
        template_md = (spec.get("template") or {}).get("metadata") or {}
        return ownedpods.View(
            key=ownedpods.view_key(rs),
            selector=self.selector_of(rs),
            template_labels=dict(template_md.get("labels") or {}),
            min_ready=bool(int(spec.get("minReadySeconds") or 0)),
        )

    async def _claim_pods(self, rs: Obj, group: ownedpods.Group) -> list[Obj]:
        """Release the active pods the set controls but no longer selects, adopt the
        active orphans it selects; returns the adopted pods as the API returned them
        (ClaimError if an adoption or release failed: the sync is retried, never run on
        a partial claim). Pods controlled by someone else are never looked at: the claim
        would leave them alone anyway."""
        ns = rs["metadata"].get("namespace", "")
        selector = group.view.selector
        candidates = [
            pod for k in sorted(group.unselected) if (pod := self.pods.indexer.get(k)) is not None
        ]
        candidates.extend(
            p
            for p in self.pods.indexer.by_index(lister.ORPHAN_INDEX, ns)
            if podcontrol.is_active(p)
        )
        if not candidates:
            return []
        manager = refmanager.ControllerRefManager(
            self.client,
            controller=rs,
            selector=selector,
            resource=self.pod_resource,
            recheck=refmanager.recheck_deletion(self.client, self.rs_resource, rs),
        )
        # An unselected pod is never kept (released, or left alone while the set is being
        # deleted), so what the claim keeps is what it adopted.
        return await manager.claim(candidates, lambda _pod: not selector.empty)

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """Every pod selected by a ReplicaSet with the same controller as ``rs`` (none
        when ``rs`` has no controller), each once: upstream's getIndirectlyRelatedPods."""
        ref = podcontrol.get_controller_of(rs)
        if ref is None:
            return []
        seen: dict[str, Obj] = {}
        ns = rs["metadata"].get("namespace", "")
        pods = self.pods.indexer.list_namespace(ns)
        for sibling in self.sets.indexer.by_index(lister.OWNER_UID_INDEX, ref.get("uid", "")):
            if sibling["metadata"].get("namespace", "") != ns:
                continue
            try:
                selector = self.selector_of(sibling)
            except selectors.SelectorError:
                continue  # an invalid selector matches no pods
            for pod in pods:
                uid = pod["metadata"].get("uid", "")
                if uid not in seen and selector.matches(pod["metadata"].get("labels") or {}):
                    seen[uid] = pod
        return list(seen.values())

    def _active_pods(self, group: ownedpods.Group, extra: list[tuple[str, Obj]]) -> list[Obj]:
        """The active pods the set owns once claimed (a walk over the set)."""
        out = {
            k: pod for k in group.counted_keys() if (pod := self.pods.indexer.get(k)) is not None
        }
        for k, pod in extra:
            out.setdefault(k, pod)
        return list(out.values())

    async def _manage_replicas(
        self,
        key: str,
        rs: Obj,
        counts: ownedpods.Counts,
        group: ownedpods.Group,
        extra: list[tuple[str, Obj]],
    ) -> BaseException | None:
        spec = rs.get("spec") or {}
        wanted = int(spec.get("replicas", 1))
        diff = counts.replicas - wanted
        ns = rs["metadata"].get("namespace", "")
        if diff < 0:
            count = min(-diff, self.burst)
            self.expectations.expect_creations(key, count)
            template = spec.get("template") or {}

            async def create_one() -> None:
                pod = podcontrol.pod_from_template(rs, template)
                try:
                    created = await self.client.create(self.pod_resource, pod, ns)
                except errors.StatusError as exc:
                    if errors.has_cause(exc, errors.NAMESPACE_TERMINATING):
                        # The namespace is going away: nothing to create there.
                        self.expectations.creation_observed(key)
                        return
                    self.recorder.event(
                        rs, events.WARNING, "FailedCreate", f"Error creating: {exc.message}"
                    )
                    raise
                self.recorder.event(
                    rs,
                    events.NORMAL,
                    "SuccessfulCreate",
                    f"Created pod: {created['metadata']['name']}",
                )

            done, error = await podcontrol.slow_start_batch(count, 1, create_one)
            if done < count:
                self.expectations.creations_failed(key, count - done)
            return error
        if diff > 0:
            count = min(diff, self.burst)
            active = self._active_pods(group, extra)
            victims = deletion_order(active, self._related_pods(rs), self.clock.now())[:count]
            self.expectations.expect_deletions(key, [lister.key_of(p) for p in victims])

            async def delete(pod: Obj) -> None:
                pmd = pod["metadata"]
                try:
                    await self.client.delete(
                        self.pod_resource, pmd["name"], ns, uid=pmd.get("uid", "")
                    )
                except errors.StatusError as exc:
                    self.expectations.deletion_observed(key, lister.key_of(pod))
                    if errors.is_not_found(exc):
                        return
                    self.recorder.event(
                        rs, events.WARNING, "FailedDelete", f"Error deleting: {exc.message}"
                    )
                    raise
                self.recorder.event(
                    rs, events.NORMAL, "SuccessfulDelete", f"Deleted pod: {pmd['name']}"
                )

            results = await asyncio.gather(*(delete(p) for p in victims), return_exceptions=True)
            return next((r for r in results if isinstance(r, BaseException)), None)
        return None

    async def _update_status(
        self, rs: Obj, counts: ownedpods.Counts, error: BaseException | None
    ) -> None:
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        available = counts.available(min_ready, self.clock.now())
        old = rs.get("status") or {}
        conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        if error is not None:
            reason = (
                "FailedCreate" if counts.replicas < int(spec.get("replicas", 1)) else "FailedDelete"
            )
            message = error.message if isinstance(error, errors.StatusError) else repr(error)
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": meta.now(),
                }
            )
        status: Obj = {
            "replicas": counts.replicas,
            "fullyLabeledReplicas": counts.fully_labeled,
            "readyReplicas": counts.ready,
            "availableReplicas": available,
            "observedGeneration": int(rs["metadata"].get("generation") or 1),
        }
        if conditions:
            status["conditions"] = conditions
        # Zero counts are omitted upstream (omitempty), except replicas.
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        if status == old:
            pass
        else:
            updated = meta.deep_copy(rs)
            updated["status"] = status
            try:
                await self.client.update_status(self.rs_resource, updated)
            except errors.StatusError as exc:
                if not (errors.is_not_found(exc) or errors.is_conflict(exc)):
                    raise
                if errors.is_conflict(exc):
                    self.queue.add_rate_limited(lister.key_of(rs))
        if min_ready and counts.ready != available:
            self.queue.add_after(lister.key_of(rs), float(min_ready))
