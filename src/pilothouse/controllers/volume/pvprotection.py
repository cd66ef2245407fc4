"""The PV protection controller (upstream's pkg/controller/volume/pvprotection).

Admission puts ``kubernetes.io/pv-protection`` on every volume; this controller
takes it off a volume being deleted once the volume is no longer Bound to a claim
(the binder keeps the phase), so a volume in use is never removed. Handlers
enqueue volume names; volumes sync in parallel, each one at a time.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, meta, pvhelpers
from pilothouse.client import rest
from pilothouse.controllers import base
from pilothouse.controllers.volume import pvcprotection

Obj = dict[str, Any]
FINALIZER = pvhelpers.PV_PROTECTION_FINALIZER


class PVProtectionController(base.Controller):
    name = "pv-protection"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.pv_resource = ctx.resource("", "v1", "persistentvolumes")
        self.volumes = ctx.informers.informer(self.pv_resource)
        self.volumes.add_handlers(
            on_add=self._changed, on_update=lambda _old, new: self._changed(new)
        )

    async def wait_ready(self) -> None:
        await self.volumes.wait_synced()

    def _changed(self, volume: Obj) -> None:
        if pvcprotection.needs_finalizer(volume, FINALIZER) or pvcprotection.is_deletion_candidate(
            volume, FINALIZER
        ):
            self.enqueue(volume)

    async def sync(self, key: str) -> None:
        volume = self.volumes.indexer.get(key)
        if volume is None:
            return
        if pvcprotection.is_deletion_candidate(volume, FINALIZER):
            if (volume.get("status") or {}).get("phase") != "Bound":
                await self._set_finalizer(volume, present=False)
            return
        if pvcprotection.needs_finalizer(volume, FINALIZER):
            await self._set_finalizer(volume, present=True)

    async def _set_finalizer(self, volume: Obj, *, present: bool) -> None:
        clone = meta.deep_copy(volume)
        finalizers = [f for f in (clone["metadata"].get("finalizers") or []) if f != FINALIZER]
        if present:
            finalizers.append(FINALIZER)
        clone["metadata"]["finalizers"] = finalizers
        try:
            await self.client.update(self.pv_resource, clone)
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
