"""The PersistentVolume binder: handlers, keys and ``sync`` (upstream's
``pv_controller_base.go``).

Keys are ``claim/<namespace>/<name>`` and ``volume/<name>``, in one queue served
by **one worker**: two concurrent syncs could bind two claims to one volume (the
API would refuse the second write, but every refusal costs a retry), so claims and
volumes are synced one at a time, as upstream's single-threaded queues do.

Handlers keep the binder's own store of claims and volumes (newest
resourceVersion wins, see :mod:`.cache`) and enqueue keys: a claim's changes sync
the claim; a volume's the volume; a deleted claim syncs the volume bound to it
(which becomes Released) and a deleted volume syncs its claim (Lost). A new
Available volume also wakes the pending claims of its class, and everything is
synced again every ``resync`` seconds (upstream: 15 s), which is how claims that
wait for a volume created later get it at the latest.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import pvhelpers
from pilothouse.controllers import base
from pilothouse.controllers.volume.persistentvolume import cache, claims, volumes
from pilothouse.controllers.volume.persistentvolume.binder import PVC_INDEX, Binder

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CLAIM, VOLUME = "claim/", "volume/"
RESYNC_KEY = "resync"


def pvc_index(pod: Obj) -> list[str]:
    return pvhelpers.pod_claim_keys(pod)


class PersistentVolumeController(base.Controller):
    name = "persistentvolume-binder"
    workers = 1

    def __init__(self, ctx: Any, *, resync: float = 15.0) -> None:
        super().__init__(clock=ctx.clock)
        self.resync = resync
        pv_resource = ctx.resource("", "v1", "persistentvolumes")
        pvc_resource = ctx.resource("", "v1", "persistentvolumeclaims")
        self.claim_informer = ctx.informers.informer(pvc_resource)
        self.volume_informer = ctx.informers.informer(pv_resource)
        self.class_informer = ctx.informers.informer(
            ctx.resource("storage.k8s.io", "v1", "storageclasses")
        )
        self.pod_informer = ctx.informers.informer(ctx.resource("", "v1", "pods"))
        self.pod_informer.add_indexer(PVC_INDEX, pvc_index)
        self.binder = Binder(
            client=ctx.client,
            recorder=ctx.recorder("persistentvolume-controller"),
            claims=cache.VersionedStore(),
            volumes=cache.VersionedStore(),
            classes=self.class_informer.indexer,
            pods=self.pod_informer.indexer,
            pv_resource=pv_resource,
            pvc_resource=pvc_resource,
            enqueue_claim=lambda key: self.enqueue_key(CLAIM + key),
        )
        self.claim_informer.add_handlers(
            on_add=self._claim_changed,
            on_update=lambda _old, new: self._claim_changed(new),
            on_delete=self._claim_deleted,
        )
        self.volume_informer.add_handlers(
            on_add=self._volume_added,
            on_update=lambda _old, new: self._volume_changed(new),
            on_delete=self._volume_deleted,
        )

    async def wait_ready(self) -> None:
        for inf in (
            self.claim_informer,
            self.volume_informer,
            self.class_informer,
            self.pod_informer,
        ):
            await inf.wait_synced()
        self.queue.add_after(RESYNC_KEY, self.resync)

    # --- handlers ---------------------------------------------------------------------
    def _claim_changed(self, claim: Obj) -> None:
        if self.binder.claims.store(claim):
            self.enqueue_key(CLAIM + pvhelpers.key_of_claim(claim))

    def _claim_deleted(self, claim: Obj) -> None:
        self.binder.claims.delete(claim)
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            self.enqueue_key(VOLUME + volume_name)

    def _volume_changed(self, volume: Obj) -> None:
        if self.binder.volumes.store(volume):
            self.enqueue_key(VOLUME + volume["metadata"]["name"])

    def _volume_added(self, volume: Obj) -> None:
        self._volume_changed(volume)
        if (volume.get("spec") or {}).get("claimRef"):
            return
        # A new free volume: pending claims of its class may fit it now.
        volume_class = pvhelpers.volume_class(volume)
        for claim in self.binder.claims.list():
            if not (claim.get("spec") or {}).get("volumeName") and (
                pvhelpers.claim_class(claim) == volume_class
            ):
                self.enqueue_key(CLAIM + pvhelpers.key_of_claim(claim))

    def _volume_deleted(self, volume: Obj) -> None:
        self.binder.volumes.delete(volume)
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref:
            self.enqueue_key(CLAIM + f"{ref.get('namespace', '')}/{ref.get('name', '')}")

    # --- sync -------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        if key == RESYNC_KEY:
            for claim in self.binder.claims.list():
                self.enqueue_key(CLAIM + pvhelpers.key_of_claim(claim))
            for volume in self.binder.volumes.list():
                self.enqueue_key(VOLUME + volume["metadata"]["name"])
            self.queue.add_after(RESYNC_KEY, self.resync)
            return
        if key.startswith(CLAIM):
            found = self.binder.claims.get(key[len(CLAIM) :])
            if found is not None:
                await claims.sync_claim(self.binder, found)
        elif key.startswith(VOLUME):
            found = self.binder.volumes.get(key[len(VOLUME) :])
            if found is not None:
                await volumes.sync_volume(self.binder, found)
