"""Syncing one volume (upstream's ``syncVolume``, ``reclaimVolume``, ``unbindVolume`` and
the delete operation).

A volume without ``claimRef`` (or reserved by a ref without uid) is Available. A
bound volume whose claim is gone is Released and its reclaim policy applies:
Retain keeps it; Delete removes it — for dynamically provisioned volumes the
provisioner that made them does that (they are all external here), for others
the in-tree rules answer (hostPath under ``/tmp`` only, as upstream); Recycle
finds no recycler. Failures mark the volume Failed with a Warning event, and
every later sync tries again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from typing import Any

from pilothouse.api import errors, meta, pvhelpers
from pilothouse.client import events
from pilothouse.controllers.volume.persistentvolume.binder import Binder

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_TMP_PATH = re.compile(r"/tmp/.+")


def _spec(obj: Obj) -> dict[str, Any]:
    spec: dict[str, Any] = obj.get("spec") or {}
    return spec


def _phase(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


async def sync_volume(b: Binder, volume: Obj) -> None:
    ref = _spec(volume).get("claimRef")
    if not ref or not ref.get("uid"):
        # Unused, or reserved for a claim that has not bound yet (its sync binds it).
        await b.update_volume_phase(volume, "Available")
        return
    claim_key = f"{ref.get('namespace', '')}/{ref.get('name', '')}"
    claim = b.claims.get(claim_key)
    if claim is None and _phase(volume) not in ("Released", "Failed"):
        # A volume provisioned (or bound by the scheduler) moments ago may name a claim
        # our cache has not seen yet: ask the API before reclaiming anything.
        claim = await _live_claim(b, ref)
    if claim is not None and claim["metadata"].get("uid") != ref.get("uid"):
        claim = await _live_claim(b, ref)
        if claim is not None and claim["metadata"].get("uid") != ref.get("uid"):
            claim = None  # deleted, and another claim took its name
    if claim is None:
        if _phase(volume) not in ("Released", "Failed"):
            volume = await b.update_volume_phase(volume, "Released")
        await reclaim(b, volume)
        return
    if not _spec(claim).get("volumeName"):
        if pvhelpers.volume_mode_mismatch(_spec(claim), _spec(volume)):
            b.event(
                volume,
                events.WARNING,
                "VolumeMismatch",
                "Cannot bind PersistentVolume to requested PersistentVolumeClaim "
                f'"{claim["metadata"]["name"]}" due to incompatible volumeMode.',
            )
            b.event(
                claim,
                events.WARNING,
                "VolumeMismatch",
                f'Cannot bind PersistentVolume "{volume["metadata"]["name"]}" to requested '
                "PersistentVolumeClaim due to incompatible volumeMode.",
            )
            return
        # Bound on this side only (a provisioned or pre-bound volume): the claim's sync
        # finishes it, soon.
        b.enqueue_claim(claim_key)
        return
    if _spec(claim)["volumeName"] == volume["metadata"]["name"]:
        await b.update_volume_phase(volume, "Bound")
        return
    # The claim is bound to another volume.
    ann = pvhelpers.annotations_of(volume)
    if (
        pvhelpers.ANN_DYNAMICALLY_PROVISIONED in ann
        and _spec(volume).get("persistentVolumeReclaimPolicy") == "Delete"
    ):
        if _phase(volume) not in ("Released", "Failed"):
            volume = await b.update_volume_phase(volume, "Released")
        await reclaim(b, volume)
        return
    await unbind(b, volume)


async def _live_claim(b: Binder, ref: Obj) -> Obj | None:
    try:
        return await b.client.get(b.pvc_resource, ref.get("name", ""), ref.get("namespace", ""))
    except errors.StatusError as exc:
        if errors.is_not_found(exc):
            return None
        raise


async def unbind(b: Binder, volume: Obj) -> None:
    """Undo a binding: ours entirely, a user's pre-binding down to the name."""
    clone = meta.deep_copy(volume)
    ann = clone["metadata"].get("annotations") or {}
    if pvhelpers.ANN_BOUND_BY_CONTROLLER in ann:
        clone["spec"].pop("claimRef", None)
        del ann[pvhelpers.ANN_BOUND_BY_CONTROLLER]
        if not ann:
            clone["metadata"].pop("annotations", None)
    else:
        clone["spec"]["claimRef"].pop("uid", None)
    new = await b.update_volume(clone)
    await b.update_volume_phase(new, "Available")


# --- reclaiming ----------------------------------------------------------------------------
async def reclaim(b: Binder, volume: Obj) -> None:
    policy = _spec(volume).get("persistentVolumeReclaimPolicy")
    if policy == "Retain":
        return
    if policy == "Recycle":
        await _recycle(b, volume)
    elif policy == "Delete":
        await _delete(b, volume)
    else:
        await b.update_volume_phase_with_event(
            volume,
            "Failed",
            events.WARNING,
            "VolumeUnknownReclaimPolicy",
            "Volume has unrecognized PersistentVolumeReclaimPolicy",
        )


def is_volume_released(b: Binder, volume: Obj) -> bool:
    """Bound to a claim that is gone, or that has since bound another volume."""
    ref = _spec(volume).get("claimRef")
    if not ref or not ref.get("uid"):
        return False
    claim = b.claims.get(f"{ref.get('namespace', '')}/{ref.get('name', '')}")
    if claim is not None and claim["metadata"].get("uid") == ref.get("uid"):
        bound_to = _spec(claim).get("volumeName")
        return bool(bound_to) and bound_to != volume["metadata"]["name"]
    return True


async def _recycle(b: Binder, volume: Obj) -> None:
    current = await _fresh(b, volume)
    if current is None or not is_volume_released(b, current):
        return
    ref = _spec(current)["claimRef"]
    claim_key = f"{ref.get('namespace', '')}/{ref.get('name', '')}"
    users = sorted(
        f"{p['metadata'].get('namespace', '')}/{p['metadata']['name']}"
        for p in b.pods_using(claim_key)
        if not pvhelpers.is_pod_terminated(p)
    )
    if users and b.claims.get(claim_key) is None:
        b.event(
            current,
            events.NORMAL,
            "VolumeFailedRecycle",
            f"Volume is used by pods: {','.join(users)}",
        )
        return
    # Recycling (rm -rf by a helper pod) is deprecated upstream; no plugin does it here.
    await b.update_volume_phase_with_event(
        current,
        "Failed",
        events.WARNING,
        "VolumeFailedRecycle",
        "No recycler plugin found for the volume!",
    )


async def _fresh(b: Binder, volume: Obj) -> Obj | None:
    try:
        current = await b.client.get(b.pv_resource, volume["metadata"]["name"])
    except errors.StatusError as exc:
        if errors.is_not_found(exc):
            return None
        raise
    b.volumes.store(current)
    return current


async def _delete(b: Binder, volume: Obj) -> None:
    """``deleteVolumeOperation``: delete the storage (if a plugin here can), then the
    volume object."""
    current = await _fresh(b, volume)
    if current is None or not is_volume_released(b, current):
        return
    try:
        deleted = await _delete_storage(current)
    except DeleteError as exc:
        await b.update_volume_phase_with_event(
            current, "Failed", events.WARNING, "VolumeFailedDelete", str(exc)
        )
        return
    if not deleted:
        return  # its provisioner deletes it
    try:
        await b.client.delete(b.pv_resource, current["metadata"]["name"])
    except errors.StatusError as exc:
        if not errors.is_not_found(exc):
            log.info("deleting volume %s failed: %s", current["metadata"]["name"], exc.message)


class DeleteError(Exception):
    """The storage of a volume could not be deleted (the message is upstream's)."""


async def _delete_storage(volume: Obj) -> bool:
    """True when the storage is gone; False when an external deleter owns it."""
    name = volume["metadata"]["name"]
    provisioned_by = pvhelpers.annotations_of(volume).get(pvhelpers.ANN_DYNAMICALLY_PROVISIONED)
    if provisioned_by:
        if not provisioned_by.startswith("kubernetes.io/"):
            return False
        raise DeleteError(f"no deletable volume plugin matched name: {provisioned_by}")
    spec = _spec(volume)
    if spec.get("csi") is not None:
        return False
    host_path = spec.get("hostPath")
    if host_path is not None:
        path = str(host_path.get("path") or "")
        if not _TMP_PATH.search(path):  # unanchored, as upstream matches it
            raise DeleteError(
                f"host_path deleter only supports /tmp/.+ but received provided {path}"
            )
        await asyncio.to_thread(shutil.rmtree, path, True)
        return True
    raise DeleteError(
        f'error getting deleter volume plugin for volume "{name}": no deletable volume plugin matched'
    )
