"""Admission for volumes and claims: DefaultStorageClass, StorageObjectInUseProtection
and PersistentVolumeClaimResize (the upstream plugins of those names).

* DefaultStorageClass gives a new claim that names no class (``storageClassName``
  unset, not ``""``) the default StorageClass: of the classes annotated
  ``storageclass.kubernetes.io/is-default-class: "true"``, the newest.
* StorageObjectInUseProtection puts ``kubernetes.io/pvc-protection`` on every new
  claim and ``kubernetes.io/pv-protection`` on every new volume; the protection
  controllers take them off once nothing uses the object.
* PersistentVolumeClaimResize lets a claim grow only when its StorageClass says
  ``allowVolumeExpansion: true`` (403 otherwise, worded as upstream).

Classes are read from the watch cache, which every write has reached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilothouse.api import errors, pvhelpers
from pilothouse.api.meta import Obj

if TYPE_CHECKING:
    from pilothouse.apiserver.registry.store import ResourceStore

STORAGE_CLASSES = "/registry/storage.k8s.io/storageclasses/"


def _classes(store: ResourceStore) -> dict[str, Obj]:
    cache = store.watch_cache.caches.get(STORAGE_CLASSES)
    if cache is None:
        return {}
    return {e.obj["metadata"]["name"]: e.obj for e in cache.objects.values()}


def _add_finalizer(obj: Obj, finalizer: str) -> None:
    md = obj.setdefault("metadata", {})
    finalizers = list(md.get("finalizers") or [])
    if finalizer not in finalizers:
        finalizers.append(finalizer)
    md["finalizers"] = finalizers


async def default_storage_class(store: ResourceStore, op: str, obj: Obj) -> None:
    """DefaultStorageClass: a new claim that names no class gets the default one."""
    if op != "create" or store.resource.plural != "persistentvolumeclaims":
        return
    await store.watch_cache.consistent()
    if not pvhelpers.claim_has_class(obj):
        default = pvhelpers.default_class(_classes(store).values())
        if default is not None:
            obj.setdefault("spec", {})["storageClassName"] = default["metadata"]["name"]


async def object_in_use_protection(store: ResourceStore, op: str, obj: Obj) -> None:
    """StorageObjectInUseProtection: every new volume and claim gets its finalizer."""
    if op != "create":
        return
    if store.resource.plural == "persistentvolumes":
        _add_finalizer(obj, pvhelpers.PV_PROTECTION_FINALIZER)
    elif store.resource.plural == "persistentvolumeclaims":
        _add_finalizer(obj, pvhelpers.PVC_PROTECTION_FINALIZER)


async def claim_resize(store: ResourceStore, op: str, obj: Obj) -> None:
    """PersistentVolumeClaimResize: a claim grows only where its class allows it."""
    if op != "update" or store.resource.plural != "persistentvolumeclaims":
        return
    md = obj.get("metadata") or {}
    entry = store.cache.objects.get(store.key(md.get("namespace", ""), md.get("name", "")))
    if entry is not None:
        _check_resize(store, obj, entry.obj)


def _check_resize(store: ResourceStore, new: Obj, old: Obj) -> None:
    if pvhelpers.requested_storage(new) <= pvhelpers.requested_storage(old):
        return
    name = (new.get("metadata") or {}).get("name", "")
    if (old.get("status") or {}).get("phase") != "Bound":
        raise errors.forbidden(
            "persistentvolumeclaims",
            "",
            name,
            "Only bound persistent volume claims can be expanded",
        )
    new_class, old_class = pvhelpers.claim_class(new), pvhelpers.claim_class(old)
    storage_class = _classes(store).get(new_class) if new_class == old_class else None
    if (
        not new_class
        or storage_class is None
        or storage_class.get("allowVolumeExpansion") is not True
    ):
        raise errors.forbidden(
            "persistentvolumeclaims",
            "",
            name,
            "only dynamically provisioned pvc can be resized and the storageclass that "
            "provisions the pvc must support resize",
        )
