"""The Deployment controller: handlers and ``sync(key)`` (upstream's deployment_controller.go).

Handlers only enqueue the ``namespace/name`` of a Deployment: its own changes,
changes of the ReplicaSets it controls (or orphans its selector matches), and
— for Recreate — deletions of its pods. ``sync`` reads the cache, claims
ReplicaSets (adopting orphans that match, releasing owned ones that no longer
do), then takes one step: status only while deleting, scaling while paused or
when ``spec.replicas`` changed, otherwise a rollout step of the strategy. One
Deployment is synced by one worker at a time; different ones in parallel.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, meta, selectors
from pilothouse.client import events, informer, lister, rest
from pilothouse.controllers import base, podcontrol, refmanager
from pilothouse.controllers.deployment import recreate, rollback, rolling, util
from pilothouse.controllers.deployment import sync as dsync

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KIND = "Deployment"


class DeploymentController(base.Controller):
    name = "deployment"
    workers = 5

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.d_resource = ctx.resource("apps", "v1", "deployments")
        self.rs_resource = ctx.resource("apps", "v1", "replicasets")
        self.pod_resource = ctx.resource("", "v1", "pods")
        self.deployments: informer.Informer = ctx.informers.informer(self.d_resource)
        self.sets: informer.Informer = ctx.informers.informer(self.rs_resource)
        self.pods: informer.Informer = ctx.informers.informer(self.pod_resource)
        self.pods.add_indexer(lister.OWNER_UID_INDEX, lister.controller_uid_index)
        self.recorder: events.EventRecorder = ctx.recorder("deployment-controller")
        self.deployments.add_handlers(
            on_add=self.enqueue,
            on_update=lambda _old, new: self.enqueue(new),
            on_delete=self.enqueue,
        )
        self.sets.add_handlers(
            on_add=self._rs_added, on_update=self._rs_updated, on_delete=self._rs_deleted
        )
        self.pods.add_handlers(on_delete=self._pod_deleted)

    async def wait_ready(self) -> None:
        await self.deployments.wait_synced()
        await self.sets.wait_synced()
        await self.pods.wait_synced()

    # --- handlers ---------------------------------------------------------------------
    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        """The Deployment a controller reference points to, if it still exists."""
        if ref is None or ref.get("kind") != KIND:
            return None
        d = self.deployments.indexer.get_by(namespace, str(ref.get("name")))
        if d is None or util.uid(d) != ref.get("uid"):
            return None
        return d

    def _deployments_selecting(self, rs: Obj) -> list[Obj]:
        labels = rs["metadata"].get("labels") or {}
        out = []
        for d in self.deployments.indexer.list_namespace(rs["metadata"].get("namespace", "")):
            sel = selectors.from_label_selector_dict(util.spec(d).get("selector"))
            if not sel.empty and sel.matches(labels):
                out.append(d)
        return out

    def _rs_added(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        ref = podcontrol.get_controller_of(rs)
        if ref is not None:
            d = self._resolve(rs["metadata"].get("namespace", ""), ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._deployments_selecting(rs):
            self.enqueue(d)

    def _rs_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        ns = cur["metadata"].get("namespace", "")
        cur_ref, old_ref = podcontrol.get_controller_of(cur), podcontrol.get_controller_of(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            d = self._resolve(ns, old_ref)
            if d is not None:
                self.enqueue(d)
        if cur_ref is not None:
            d = self._resolve(ns, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if ref_changed or old["metadata"].get("labels") != cur["metadata"].get("labels"):
            for d in self._deployments_selecting(cur):
                self.enqueue(d)

    def _rs_deleted(self, rs: Obj) -> None:
        d = self._resolve(rs["metadata"].get("namespace", ""), podcontrol.get_controller_of(rs))
        if d is not None:
            self.enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace", "")
        ref = podcontrol.get_controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.sets.indexer.get(f"{ns}/{ref.get('name')}")
        if rs is None or util.uid(rs) != ref.get("uid"):
            return
        d = self._resolve(ns, podcontrol.get_controller_of(rs))
        if d is None or util.strategy_type(d) != "Recreate":
            return
        # Upstream asks the API for the ReplicaSets here; the cache is as good
        # for deciding whether to look again, and sync re-checks anyway.
        rs_list = self._owned_sets(d)
        if not any(
            self.pods.indexer.by_index(lister.OWNER_UID_INDEX, util.uid(r)) for r in rs_list
        ):
            self.enqueue(d)

    def _owned_sets(self, d: Obj) -> list[Obj]:
        return [
            rs
            for rs in self.sets.indexer.list_namespace(d["metadata"].get("namespace", ""))
            if (podcontrol.get_controller_of(rs) or {}).get("uid") == util.uid(d)
        ]

    # --- sync -------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        cached = self.deployments.indexer.get(key)
        if cached is None:
            return
        d = meta.deep_copy(cached)
        selector = util.spec(d).get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            self.recorder.event(
                d,
                events.WARNING,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            if int(util.status(d).get("observedGeneration") or 0) < int(
                d["metadata"].get("generation") or 0
            ):
                d.setdefault("status", {})["observedGeneration"] = int(
                    d["metadata"].get("generation") or 0
                )
                await self.client.update_status(self.d_resource, d)
            return
        try:
            await self._sync(d)
        except errors.StatusError as exc:
            if errors.has_cause(exc, errors.NAMESPACE_TERMINATING):
                return  # nothing can be created in a terminating namespace: done
            raise

    async def _sync(self, d: Obj) -> None:
        rs_list = await self.claim_replica_sets(d)
        if d["metadata"].get("deletionTimestamp"):
            await dsync.sync_status_only(self, d, rs_list)
            return
        await dsync.check_paused_conditions(self, d)
        if util.spec(d).get("paused"):
            await dsync.sync(self, d, rs_list)
            return
        revision = rollback.rollback_to(d)
        if revision is not None:
            await rollback.rollback(self, d, rs_list, revision)
            return
        if await dsync.is_scaling_event(self, d, rs_list):
            await dsync.sync(self, d, rs_list)
            return
        kind = util.strategy_type(d)
        if kind == "Recreate":
            # Only Recreate reads the pods (upstream lists them on every sync; here that
            # walk over every pod of the Deployment is paid only where it is used).
            await recreate.rollout_recreate(self, d, rs_list, self.pod_map(d, rs_list))
        elif kind == "RollingUpdate":
            await rolling.rollout_rolling(self, d, rs_list)
        else:
            raise ValueError(f"unexpected deployment strategy type: {kind}")

    async def claim_replica_sets(self, d: Obj) -> list[Obj]:
        """The ReplicaSets ``d`` controls once its claim is done (adopting matching
        orphans, releasing owned sets it no longer matches); ClaimError if one failed."""
        selector = selectors.from_label_selector_dict(util.spec(d).get("selector"))
        manager = refmanager.ControllerRefManager(
            self.client,
            controller=d,
            selector=selector,
            resource=self.rs_resource,
            recheck=refmanager.recheck_deletion(self.client, self.d_resource, d),
        )
        namespace = d["metadata"].get("namespace", "")
        return await manager.claim(self.sets.indexer.list_namespace(namespace))

    def pod_map(self, d: Obj, rs_list: list[Obj]) -> dict[str, list[Obj]]:
        """Pods by the uid of the ReplicaSet controlling them (terminating ones included:
        Recreate must not start new pods while old ones still run)."""
        selector = selectors.from_label_selector_dict(util.spec(d).get("selector"))
        out: dict[str, list[Obj]] = {}
        for rs in rs_list:
            rs_uid = util.uid(rs)
            out[rs_uid] = [
                p
                for p in self.pods.indexer.by_index(lister.OWNER_UID_INDEX, rs_uid)
                if selector.matches(p["metadata"].get("labels") or {})
            ]
        return out
