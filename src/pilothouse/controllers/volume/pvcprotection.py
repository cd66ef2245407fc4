"""The PVC protection controller (upstream's pkg/controller/volume/pvcprotection).

Admission puts ``kubernetes.io/pvc-protection`` on every claim; this controller
takes it off a claim being deleted once no pod uses the claim, so a claim is
never removed from under a running pod. A pod uses a claim from the moment it is
scheduled until it is gone (a finished pod still counts, as upstream); a pod
deleted with grace 0 no longer holds its own ephemeral claim. The informer's pods
are asked first and, when none uses the claim, a live list confirms it — a pod
just created may not have reached the cache.

Handlers enqueue ``namespace/name`` of claims: their own changes, and the claims
of pods that are deleted or finished. Claims sync in parallel, each one at a time.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, meta, pvhelpers
from pilothouse.client import lister, rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PVC_INDEX = "pvc"
FINALIZER = pvhelpers.PVC_PROTECTION_FINALIZER


def _finalizers(obj: Obj) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def is_deletion_candidate(obj: Obj, finalizer: str) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp")) and finalizer in _finalizers(obj)


def needs_finalizer(obj: Obj, finalizer: str) -> bool:
    return not obj["metadata"].get("deletionTimestamp") and finalizer not in _finalizers(obj)


def pod_is_shut_down(pod: Obj) -> bool:
    """Deleted with grace 0 (done on its node, or forced): only garbage collection is left."""
    md = pod.get("metadata") or {}
    return bool(md.get("deletionTimestamp")) and md.get("deletionGracePeriodSeconds") == 0


def pod_uses_claim(pod: Obj, claim: Obj) -> bool:
    if not (pod.get("spec") or {}).get("nodeName"):
        return False  # the node agent refuses to start a pod on a claim being deleted
    name = claim["metadata"]["name"]
    for _volume, claim_name, ephemeral in pvhelpers.pod_claims(pod):
        if claim_name != name:
            continue
        if not ephemeral:
            return True
        if not pod_is_shut_down(pod) and not pvhelpers.volume_is_for_pod(pod, claim):
            return True
    return False


class PVCProtectionController(base.Controller):
    name = "pvc-protection"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.pvc_resource = ctx.resource("", "v1", "persistentvolumeclaims")
        self.pod_resource = ctx.resource("", "v1", "pods")
        self.claims = ctx.informers.informer(self.pvc_resource)
        self.pods = ctx.informers.informer(self.pod_resource)
        self.pods.add_indexer(PVC_INDEX, pvhelpers.pod_claim_keys)
        self.claims.add_handlers(
            on_add=self._claim_changed, on_update=lambda _old, new: self._claim_changed(new)
        )
        self.pods.add_handlers(
            on_add=lambda pod: self._pod_changed(pod, deleted=False),
            on_update=self._pod_updated,
            on_delete=lambda pod: self._pod_changed(pod, deleted=True),
        )

    async def wait_ready(self) -> None:
        await self.claims.wait_synced()
        await self.pods.wait_synced()

    def _claim_changed(self, claim: Obj) -> None:
        if needs_finalizer(claim, FINALIZER) or is_deletion_candidate(claim, FINALIZER):
            self.enqueue(claim)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(new, deleted=False)
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._pod_changed(old, deleted=True)  # a new pod took the old one's name

    def _pod_changed(self, pod: Obj, *, deleted: bool) -> None:
        # Only a pod that goes (or never started using its claims) can free a claim.
        if (
            not deleted
            and not pvhelpers.is_pod_terminated(pod)
            and (pod.get("spec") or {}).get("nodeName")
        ):
            return
        for key in pvhelpers.pod_claim_keys(pod):
            self.enqueue_key(key)

    async def sync(self, key: str) -> None:
        claim = self.claims.indexer.get(key)
        if claim is None:
            return
        if is_deletion_candidate(claim, FINALIZER):
            if not await self._in_use(claim):
                await self._set_finalizer(claim, present=False)
                log.info("removed protection finalizer from claim %s", key)
            else:
                log.debug("keeping claim %s: a pod uses it", key)
            return
        if needs_finalizer(claim, FINALIZER):
            # Claims made before admission added the finalizer get it here.
            await self._set_finalizer(claim, present=True)

    async def _in_use(self, claim: Obj) -> bool:
        key = lister.key_of(claim)
        if any(pod_uses_claim(p, claim) for p in self.pods.indexer.by_index(PVC_INDEX, key)):
            return True
        live = await self.client.list_all(self.pod_resource, claim["metadata"]["namespace"])
        return any(pod_uses_claim(p, claim) for p in live.get("items") or [])

    async def _set_finalizer(self, claim: Obj, *, present: bool) -> None:
        clone = meta.deep_copy(claim)
        finalizers = [f for f in _finalizers(clone) if f != FINALIZER]
        if present:
            finalizers.append(FINALIZER)
        clone["metadata"]["finalizers"] = finalizers
        try:
            await self.client.update(self.pvc_resource, clone)
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
