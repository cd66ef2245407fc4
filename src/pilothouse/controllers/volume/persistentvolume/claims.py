"""Syncing one claim (upstream's ``syncClaim``, ``syncUnboundClaim``, ``syncBoundClaim``,
``bind`` and the provisioning hand-off).

A claim without ``pv.kubernetes.io/bind-completed`` is unbound: it gets the best
matching Available volume (or the one it names in ``volumeName``); failing that,
its class decides — a WaitForFirstConsumer class waits for the scheduler to pick
a node, any other class is handed to its provisioner. Binding writes the volume
first (``claimRef``, then phase Bound), then the claim (``volumeName`` and the
annotations, then phase Bound), so a crash half-way leaves a state the next
sync recognises and finishes.

Every provisioner here is external (pilothouse's own local-path provisioner runs
in the node agents): the binder marks the claim with
``volume.kubernetes.io/storage-provisioner`` and says so in an event, as upstream
does for CSI drivers; ``kubernetes.io/…`` names it does not know fail with
upstream's error.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import meta, pvhelpers
from pilothouse.client import events
from pilothouse.controllers.volume.persistentvolume import index
from pilothouse.controllers.volume.persistentvolume.binder import Binder, BindError

Obj = dict[str, Any]

CLAIM_LOST = "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
VOLUME_LOST = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
MISBOUND = "Two claims are bound to the same volume, this one is bound incorrectly"
NO_CLASS = "no persistent volumes available for this claim and no storage class is set"


def _ann(obj: Obj) -> dict[str, str]:
    return pvhelpers.annotations_of(obj)


async def sync_claim(b: Binder, claim: Obj) -> None:
    if pvhelpers.ANN_BIND_COMPLETED not in _ann(claim):
        await _sync_unbound(b, claim)
    else:
        await _sync_bound(b, claim)


def check_volume_satisfies_claim(volume: Obj, claim: Obj) -> str:
    """``checkVolumeSatisfyClaim``: "" or why a claim cannot use the volume it names."""
    if volume["metadata"].get("deletionTimestamp"):
        return f'the volume is marked for deletion "{volume["metadata"]["name"]}"'
    if pvhelpers.volume_capacity(volume) < pvhelpers.requested_storage(claim):
        return "requested PV is too small"
    if pvhelpers.volume_class(volume) != pvhelpers.claim_class(claim):
        return "storageClassName does not match"
    if pvhelpers.volume_mode_mismatch(claim.get("spec") or {}, volume.get("spec") or {}):
        return "incompatible volumeMode"
    if not pvhelpers.check_access_modes(claim, volume):
        return "incompatible accessMode"
    return ""


async def _sync_unbound(b: Binder, claim: Obj) -> None:
    spec = claim.get("spec") or {}
    volume_name = spec.get("volumeName") or ""
    if not volume_name:
        classes = b.storage_classes()
        delay = pvhelpers.is_delay_binding(claim, classes)
        volume = index.find_best_match(claim, b.volumes.list(), delay_binding=delay)
        if volume is not None:
            await bind(b, volume, claim)
            return
        if await _assign_default_class(b, claim, classes):
            return  # the update comes back as an event and syncs the claim again
        if delay and not pvhelpers.is_delay_binding_provisioning(claim):
            _event_for_delayed_binding(b, claim)
        elif pvhelpers.claim_class(claim):
            await _provision(b, claim, classes)
            return
        else:
            b.event(claim, events.NORMAL, "FailedBinding", NO_CLASS)
        await b.update_claim_status(claim, "Pending", None)
        return
    volume = b.volumes.get(volume_name)
    if volume is None:
        await b.update_claim_status(claim, "Pending", None)  # it may appear later
        return
    if not (volume.get("spec") or {}).get("claimRef"):
        why = check_volume_satisfies_claim(volume, claim)
        if why:
            b.event(
                claim,
                events.WARNING,
                "VolumeMismatch",
                f'Cannot bind to requested volume "{volume_name}": {why}',
            )
            await b.update_claim_status(claim, "Pending", None)
        else:
            await bind(b, volume, claim)
        return
    if pvhelpers.is_volume_bound_to_claim(volume, claim):
        await bind(b, volume, claim)  # finish what was started (the claim's uid, phases)
        return
    message = f'volume "{volume_name}" already bound to a different claim.'
    b.event(claim, events.WARNING, "FailedBinding", message)
    if pvhelpers.ANN_BOUND_BY_CONTROLLER not in _ann(claim):
        await b.update_claim_status(claim, "Pending", None)  # the user asked for it: wait
        return
    ref = volume["spec"]["claimRef"]
    raise BindError(
        f'invalid binding of claim "{pvhelpers.key_of_claim(claim)}" to volume "{volume_name}": '
        f'volume already claimed by "{ref.get("namespace", "")}/{ref.get("name", "")}"'
    )


async def _sync_bound(b: Binder, claim: Obj) -> None:
    volume_name = (claim.get("spec") or {}).get("volumeName") or ""
    if not volume_name:
        await b.update_claim_status_with_event(
            claim, "Lost", None, events.WARNING, "ClaimLost", CLAIM_LOST
        )
        return
    volume = b.volumes.get(volume_name)
    if volume is None:
        await b.update_claim_status_with_event(
            claim, "Lost", None, events.WARNING, "ClaimLost", VOLUME_LOST
        )
        return
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref or ref.get("uid") == claim["metadata"].get("uid"):
        # Unbound volume (or our binding not seen yet), or all is well: (re)bind, which
        # writes nothing when everything is already in place.
        await bind(b, volume, claim)
        return
    await b.update_claim_status_with_event(
        claim, "Lost", None, events.WARNING, "ClaimMisbound", MISBOUND
    )


# --- binding -------------------------------------------------------------------------------
async def bind(b: Binder, volume: Obj, claim: Obj) -> None:
    """Bind both ways: volume, volume phase, claim, claim phase (upstream's order)."""
    clone, dirty = pvhelpers.bind_volume_to_claim(volume, claim)
    if dirty:
        volume = await b.update_volume(clone)
    volume = await b.update_volume_phase(volume, "Bound")
    claim = await _bind_claim_to_volume(b, claim, volume)
    await b.update_claim_status(claim, "Bound", volume)


async def _bind_claim_to_volume(b: Binder, claim: Obj, volume: Obj) -> Obj:
    name = volume["metadata"]["name"]
    clone = meta.deep_copy(claim)
    ann = clone["metadata"].setdefault("annotations", {})
    dirty = False
    if (clone.get("spec") or {}).get("volumeName") != name:
        clone.setdefault("spec", {})["volumeName"] = name
        ann.setdefault(pvhelpers.ANN_BOUND_BY_CONTROLLER, "yes")
        dirty = True
    if pvhelpers.ANN_BIND_COMPLETED not in ann:
        ann[pvhelpers.ANN_BIND_COMPLETED] = "yes"
        dirty = True
    if not dirty:
        return claim
    return await b.update_claim(clone)


# --- no volume yet -------------------------------------------------------------------------
async def _assign_default_class(b: Binder, claim: Obj, classes: dict[str, Obj]) -> bool:
    """Give a claim that names no class today's default (upstream's retroactive default
    StorageClass assignment). True when the claim was updated."""
    if pvhelpers.claim_has_class(claim):
        return False
    default = pvhelpers.default_class(classes.values())
    if default is None:
        return False
    clone = meta.deep_copy(claim)
    clone.setdefault("spec", {})["storageClassName"] = default["metadata"]["name"]
    await b.update_claim(clone)
    return True


def _event_for_delayed_binding(b: Binder, claim: Obj) -> None:
    waiting = [
        p["metadata"]["name"]
        for p in b.pods_using(pvhelpers.key_of_claim(claim))
        if not pvhelpers.is_pod_terminated(p) and not (p.get("spec") or {}).get("nodeName")
    ]
    if not waiting:
        b.event(
            claim,
            events.NORMAL,
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        )
        return
    waiting.sort()
    what = f"pods {','.join(waiting)}" if len(waiting) > 1 else f"pod {waiting[0]}"
    b.event(claim, events.NORMAL, "WaitForPodScheduled", f"waiting for {what} to be scheduled")


async def _provision(b: Binder, claim: Obj, classes: dict[str, Obj]) -> None:
    """``provisionClaim``: every provisioner is external, so mark the claim for it."""
    class_name = pvhelpers.claim_class(claim)
    storage_class = classes.get(class_name)
    if storage_class is None:
        b.event(
            claim,
            events.WARNING,
            "ProvisioningFailed",
            f'storageclass.storage.k8s.io "{class_name}" not found',
        )
        return
    provisioner = str(storage_class.get("provisioner") or "")
    if provisioner.startswith("kubernetes.io/"):
        # An in-tree plugin name; pilothouse has none of them.
        b.event(
            claim,
            events.WARNING,
            "ProvisioningFailed",
            f"no volume plugin matched name: {provisioner}",
        )
        return
    ann = _ann(claim)
    if ann.get(pvhelpers.ANN_STORAGE_PROVISIONER) != provisioner:
        clone = meta.deep_copy(claim)
        new_ann = clone["metadata"].setdefault("annotations", {})
        new_ann[pvhelpers.ANN_BETA_STORAGE_PROVISIONER] = provisioner
        new_ann[pvhelpers.ANN_STORAGE_PROVISIONER] = provisioner
        claim = await b.update_claim(clone)
    b.event(
        claim,
        events.NORMAL,
        "ExternalProvisioning",
        f"Waiting for a volume to be created either by the external provisioner '{provisioner}' "
        "or manually by the system administrator. If volume creation is delayed, please verify "
        "that the provisioner is running and correctly registered.",
    )
