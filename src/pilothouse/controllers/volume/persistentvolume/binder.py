"""What the claim and volume syncs share: the client, the caches, the recorder, and the
writes that keep the caches current (upstream's ``updateClaimStatus``,
``updateVolumePhase`` and friends). A leaf module, so :mod:`.claims` and
:mod:`.volumes` depend on it and not on each other or on the controller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pilothouse.api import meta, pvhelpers, resources
from pilothouse.client import events, lister, rest
from pilothouse.controllers.volume.persistentvolume import cache

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PVC_INDEX = "pvc"
# Set by resizers on a volume whose filesystem still has its old size.
ANN_PRE_RESIZE_CAPACITY = "volume.alpha.kubernetes.io/pre-resize-capacity"


class BindError(Exception):
    """A state the binder cannot fix by itself; the key is retried later."""


@dataclass
class Binder:
    client: rest.Client
    recorder: events.EventRecorder
    claims: cache.VersionedStore
    volumes: cache.VersionedStore
    classes: lister.Indexer
    pods: lister.Indexer  # with the PVC_INDEX index
    pv_resource: resources.Resource
    pvc_resource: resources.Resource
    enqueue_claim: Callable[[str], None]

    # --- reads ------------------------------------------------------------------------
    def storage_classes(self) -> dict[str, Obj]:
        return {c["metadata"]["name"]: c for c in self.classes.list()}

    def pods_using(self, claim_key: str) -> list[Obj]:
        return self.pods.by_index(PVC_INDEX, claim_key)

    # --- events -----------------------------------------------------------------------
    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.event(obj, type_, reason, message)

    # --- claims -----------------------------------------------------------------------
    async def update_claim(self, claim: Obj) -> Obj:
        new = await self.client.update(self.pvc_resource, claim)
        self.claims.store(new)
        return new

    async def update_claim_status(self, claim: Obj, phase: str, volume: Obj | None) -> Obj:
        """Write the claim's phase, access modes and capacity (from ``volume``) if they
        differ; capacity is copied only when the claim becomes ``phase``."""
        status = claim.get("status") or {}
        clone = meta.deep_copy(claim)
        new_status = clone.setdefault("status", {})
        dirty = False
        if status.get("phase") != phase:
            new_status["phase"] = phase
            dirty = True
        if volume is None:
            for field in ("accessModes", "capacity"):
                if new_status.get(field) is not None:
                    del new_status[field]
                    dirty = True
        else:
            volume_spec = volume.get("spec") or {}
            modes = volume_spec.get("accessModes")
            if status.get("accessModes") != modes:
                new_status["accessModes"] = modes
                dirty = True
            if status.get("phase") != phase:
                capacity = volume_spec.get("capacity") or {}
                if "storage" not in capacity:
                    raise BindError(
                        f'PersistentVolume "{volume["metadata"]["name"]}" is without a storage capacity'
                    )
                pre_resize = pvhelpers.annotations_of(volume).get(ANN_PRE_RESIZE_CAPACITY)
                have = (status.get("capacity") or {}).get("storage")
                if pre_resize:
                    new_status["capacity"] = {
                        **(status.get("capacity") or {}),
                        "storage": pre_resize,
                    }
                    dirty = True
                elif have is None or pvhelpers.volume_capacity(volume) != pvhelpers.storage_of(
                    status.get("capacity")
                ):
                    new_status["capacity"] = capacity
                    dirty = True
        if not dirty:
            return claim
        new = await self.client.update_status(self.pvc_resource, clone)
        self.claims.store(new)
        log.debug("claim %s entered phase %s", pvhelpers.key_of_claim(claim), phase)
        return new

    async def update_claim_status_with_event(
        self, claim: Obj, phase: str, volume: Obj | None, type_: str, reason: str, message: str
    ) -> Obj:
        """As :meth:`update_claim_status`; the event only when the phase changes."""
        if (claim.get("status") or {}).get("phase") == phase:
            return claim
        new = await self.update_claim_status(claim, phase, volume)
        self.event(new, type_, reason, message)
        return new

    # --- volumes ----------------------------------------------------------------------
    async def update_volume(self, volume: Obj) -> Obj:
        new = await self.client.update(self.pv_resource, volume)
        self.volumes.store(new)
        return new

    async def update_volume_phase(self, volume: Obj, phase: str, message: str = "") -> Obj:
        if (volume.get("status") or {}).get("phase") == phase:
            return volume
        clone = meta.deep_copy(volume)
        status = clone.setdefault("status", {})
        status["phase"] = phase
        if message:
            status["message"] = message
        else:
            status.pop("message", None)
        new = await self.client.update_status(self.pv_resource, clone)
        self.volumes.store(new)
        log.debug("volume %s entered phase %s", volume["metadata"]["name"], phase)
        return new

    async def update_volume_phase_with_event(
        self, volume: Obj, phase: str, type_: str, reason: str, message: str
    ) -> Obj:
        if (volume.get("status") or {}).get("phase") == phase:
            return volume
        new = await self.update_volume_phase(volume, phase, message)
        self.event(new, type_, reason, message)
        return new
