"""The StatefulSet controller: handlers and ``sync(key)`` (upstream's ``stateful_set.go``).

Handlers only enqueue the ``namespace/name`` of a StatefulSet: its own changes, and
changes of the pods it controls (or orphans its selector matches). ``sync`` reads
the caches, adopts orphaned revisions, claims the set's pods — adopting orphans
whose name and labels make them members, releasing owned pods that no longer match —
and hands them to :class:`~.control.StatefulSetControl` for one step. With
``minReadySeconds`` the set is looked at again once pods can have become available.
One set is synced by one worker at a time; different sets in parallel.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, selectors
from pilothouse.api.meta import Obj
from pilothouse.client import events, informer, rest
from pilothouse.controllers import base, podcontrol, refmanager
from pilothouse.controllers.history import client as history_client
from pilothouse.controllers.statefulset import control, utils
from pilothouse.controllers.statefulset import podcontrol as stateful_podcontrol

log = logging.getLogger(__name__)


class StatefulSetController(base.Controller):
    name = "statefulset"
    workers = 5

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.set_resource = ctx.resource("apps", "v1", "statefulsets")
        self.pod_resource = ctx.resource("", "v1", "pods")
        self.claim_resource = ctx.resource("", "v1", "persistentvolumeclaims")
        self.revision_resource = ctx.resource("apps", "v1", "controllerrevisions")
        self.sets: informer.Informer = ctx.informers.informer(self.set_resource)
        self.pods: informer.Informer = ctx.informers.informer(self.pod_resource)
        self.claims: informer.Informer = ctx.informers.informer(self.claim_resource)
        self.revisions: informer.Informer = ctx.informers.informer(self.revision_resource)
        self.recorder: events.EventRecorder = ctx.recorder("statefulset-controller")
        self.history = history_client.History(self.client, self.revision_resource, self.revisions)
        self.pod_control = stateful_podcontrol.StatefulPodControl(
            self.client,
            pods=self.pod_resource,
            claims=self.claim_resource,
            pod_lister=self.pods.indexer,
            claim_lister=self.claims.indexer,
            recorder=self.recorder,
        )
        self.control = control.StatefulSetControl(
            client=self.client,
            sets=self.set_resource,
            pod_control=self.pod_control,
            history=self.history,
            clock=ctx.clock,
        )
        self.sets.add_handlers(
            on_add=self.enqueue,
            on_update=lambda _old, new: self.enqueue(new),
            on_delete=self.enqueue,
        )
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )

    async def wait_ready(self) -> None:
        for inf in (self.sets, self.pods, self.claims, self.revisions):
            await inf.wait_synced()

    # --- handlers ---------------------------------------------------------------------
    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        """The StatefulSet a controller reference points to, if it still exists."""
        if ref is None or ref.get("kind") != utils.KIND:
            return None
        sts = self.sets.indexer.get_by(namespace, str(ref.get("name")))
        if sts is None or utils.uid(sts) != ref.get("uid"):
            return None
        return sts

    def _selecting(self, pod: Obj) -> list[Obj]:
        """Sets whose selector matches an orphan (upstream: GetPodStatefulSets)."""
        labels = pod["metadata"].get("labels") or {}
        out = []
        for sts in self.sets.indexer.list_namespace(pod["metadata"].get("namespace", "")):
            try:
                sel = selectors.from_label_selector_dict(utils.spec(sts).get("selector"))
            except selectors.SelectorError:
                continue
            if not sel.empty and sel.matches(labels):
                out.append(sts)
        return out

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ref = podcontrol.get_controller_of(pod)
        if ref is not None:
            sts = self._resolve(pod["metadata"].get("namespace", ""), ref)
            if sts is not None:
                self.enqueue(sts)
            return
        for sts in self._selecting(pod):
            self.enqueue(sts)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        ns = cur["metadata"].get("namespace", "")
        labels_changed = old["metadata"].get("labels") != cur["metadata"].get("labels")
        cur_ref, old_ref = podcontrol.get_controller_of(cur), podcontrol.get_controller_of(old)
        if cur_ref != old_ref and old_ref is not None:
            prev = self._resolve(ns, old_ref)
            if prev is not None:
                self.enqueue(prev)
        if cur_ref is not None:
            sts = self._resolve(ns, cur_ref)
            if sts is None:
                return
            self.enqueue(sts)
            # A pod turning ready becomes available minReadySeconds later: look again then.
            min_ready = utils.min_ready_seconds(sts)
            if min_ready > 0 and not podcontrol.pod_ready(old) and podcontrol.pod_ready(cur):
                self.enqueue_after(sts, float(min_ready))
            return
        if labels_changed or cur_ref != old_ref:
            for sts in self._selecting(cur):
                self.enqueue(sts)

    def _pod_deleted(self, pod: Obj) -> None:
        sts = self._resolve(pod["metadata"].get("namespace", ""), podcontrol.get_controller_of(pod))
        if sts is not None:
            self.enqueue(sts)

    # --- sync -------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.sets.indexer.get(key)
        if cached is None:
            return
        try:
            selector = selectors.from_label_selector_dict(utils.spec(cached).get("selector"))
        except selectors.SelectorError as exc:
            # Not transient (validation should have stopped it): don't retry.
            log.error("StatefulSet %s has an invalid selector: %s", key, exc)
            return
        try:
            await self._adopt_orphan_revisions(cached)
            pods = await self._claim_pods(cached, selector)
            status = await self.control.update_stateful_set(cached, pods)
        except errors.StatusError as exc:
            if errors.has_cause(exc, errors.NAMESPACE_TERMINATING):
                return  # nothing can be created in a terminating namespace
            raise
        min_ready = utils.min_ready_seconds(cached)
        if (
            min_ready > 0
            and status is not None
            and int(status.get("availableReplicas") or 0) != utils.replicas(cached)
        ):
            self.enqueue_after(cached, float(min_ready))

    async def _adopt_orphan_revisions(self, sts: Obj) -> None:
        orphans = [
            r for r in self.control.list_revisions(sts) if podcontrol.get_controller_of(r) is None
        ]
        if not orphans:
            return
        try:
            await refmanager.recheck_deletion(self.client, self.set_resource, sts)()
        except refmanager.CannotAdopt as exc:
            raise refmanager.CannotAdopt(f"can't adopt ControllerRevisions: {exc}") from None
        await self.control.adopt_orphan_revisions(sts, orphans)

    async def _claim_pods(self, sts: Obj, selector: selectors.LabelSelector) -> list[Obj]:
        """The set's pods, after adopting member orphans and releasing owned pods that
        no longer match (``getPodsForStatefulSet``)."""
        manager = refmanager.ControllerRefManager(
            self.client,
            controller=sts,
            selector=selector,
            resource=self.pod_resource,
            recheck=refmanager.recheck_deletion(self.client, self.set_resource, sts),
        )
        candidates = self.pods.indexer.list_namespace(utils.namespace(sts))
        return await manager.claim(candidates, lambda pod: utils.is_member_of(sts, pod))
