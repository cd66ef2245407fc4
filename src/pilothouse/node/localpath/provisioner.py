"""The local-path provisioner's node part: makes, grows and removes the volumes of claims
placed on this node (an external provisioner in upstream's sense, like rancher's
local-path-provisioner or a CSI driver's provisioner sidecar).

* **Provisioning.** A claim of a ``pilothouse.io/local-path`` class is this node's to
  provision once the binder has marked it for the provisioner
  (``volume.kubernetes.io/storage-provisioner``) and the scheduler has chosen this node
  (``volume.kubernetes.io/selected-node``). The volume is
  ``<storage>/pvc-<uid>_<namespace>_<claim>`` (see :mod:`.backing`), the PV is
  ``pvc-<uid>``: a ``local`` volume with node affinity to this node, bound to the claim
  (the binder finishes the binding), annotated ``pv.kubernetes.io/provisioned-by``.
  Events as upstream's provisioner library writes them: ``Provisioning``,
  ``ProvisioningSucceeded``, ``ProvisioningFailed``. A volume whose capacity is not
  enforced gets a ``CapacityNotEnforced`` Warning saying why.
* **Deleting.** A volume of ours on this node with reclaim policy Delete is removed once
  Released (its claim is gone) — storage first, then the PV object. Volumes with that
  policy carry ``external-provisioner.volume.kubernetes.io/finalizer``, so a PV deleted
  by hand still waits for its storage to go.
* **Growing.** A bound claim asking for more than its volume has is grown (when the
  backing allows it), then the PV's and the claim's capacities are updated
  (``Resizing``, ``VolumeResizeSuccessful``, ``VolumeResizeFailed`` as upstream's
  external resizer).

Handlers enqueue ``claim/<ns>/<name>`` and ``volume/<name>``; ``workers`` tasks serve
the queue and never hold the same key at once. Disk work runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from pilothouse import supervisor as supervision
from pilothouse.api import errors, meta, pvhelpers, resources
from pilothouse.client import events, informer, rest
from pilothouse.client.workqueue import ShutDown, WorkQueue
from pilothouse.node.localpath import backing as backing_module

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PVC = resources.Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True)
PV = resources.Resource("", "v1", "PersistentVolume", "persistentvolumes", False)
STORAGE_CLASSES = resources.Resource(
    "storage.k8s.io", "v1", "StorageClass", "storageclasses", False
)
PROVISIONER = pvhelpers.LOCAL_PATH_PROVISIONER
CLAIM, VOLUME = "claim/", "volume/"
SUPPORTED_MODES = ("ReadWriteOnce", "ReadWriteOncePod")
# StorageClass parameter: "image" (default: capacity enforced where the node can) or
# "directory" (plain directories).
BACKING_PARAMETER = "backing"


class ProvisioningError(Exception):
    """Provisioning failed for good (bad claim): say so, do not try another node."""


class LocalPathProvisioner:
    """See the module docstring."""

    def __init__(
        self,
        client: rest.Client,
        *,
        node_name: str,
        storage_dir: Path,
        workers: int = 4,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.storage_dir = storage_dir
        self.workers = workers
        self.recorder = events.EventRecorder(
            client, component=f"{PROVISIONER}_{node_name}", host=node_name
        )
        self.claims = informer.Informer(client, PVC)
        self.volumes = informer.Informer(client, PV)
        self.classes = informer.Informer(client, STORAGE_CLASSES)
        self.queue: WorkQueue[str] = WorkQueue("local-path-provisioner")
        # Existing image volumes are always handled as images; new volumes are images
        # only when the probe at start says the node can loop-mount them.
        self.images = backing_module.ImageBacking(storage_dir)
        self.no_image_because = "not probed yet"
        self.ready = asyncio.Event()
        self.claims.add_handlers(
            on_add=self._claim_changed, on_update=lambda _old, new: self._claim_changed(new)
        )
        self.volumes.add_handlers(
            on_add=self._volume_changed, on_update=lambda _old, new: self._volume_changed(new)
        )

    # --- life cycle -------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until cancelled (a supervised child of the agent)."""
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.no_image_because = await asyncio.to_thread(backing_module.probe, self.images)
        if self.no_image_because:
            log.warning(
                "local volumes on this node will be plain directories (capacity not enforced): %s",
                self.no_image_because,
            )
        # The informers and the recorder live as long as this run: a supervisor of its own
        # restarts them if they fail, and goes with the run.
        children = supervision.Supervisor("local-path-provisioner")
        self.recorder.start(children)
        self.queue = WorkQueue("local-path-provisioner")
        informers = (self.classes, self.claims, self.volumes)
        for inf in informers:
            inf.start(children)
        tasks: list[asyncio.Task[None]] = []
        try:
            for inf in informers:
                await inf.wait_synced()
            self.ready.set()
            tasks = [
                asyncio.get_running_loop().create_task(
                    self._worker(), name=f"local-path-worker-{i}"
                )
                for i in range(self.workers)
            ]
            await asyncio.gather(*tasks)
        finally:
            self.ready.clear()
            self.queue.shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for inf in informers:
                await inf.stop()
            await self.recorder.stop()
            await children.stop()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self._sync(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                level = logging.DEBUG if errors.is_conflict(exc) else logging.WARNING
                log.log(level, "local-path: %s failed (will retry): %s", key, exc)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    # --- handlers ---------------------------------------------------------------------
    def _claim_changed(self, claim: Obj) -> None:
        ann = pvhelpers.annotations_of(claim)
        if ann.get(pvhelpers.ANN_SELECTED_NODE) == self.node_name or (claim.get("spec") or {}).get(
            "volumeName"
        ):
            self.queue.add(CLAIM + pvhelpers.key_of_claim(claim))

    def _volume_changed(self, volume: Obj) -> None:
        if self._ours(volume):
            self.queue.add(VOLUME + volume["metadata"]["name"])

    def _ours(self, volume: Obj) -> bool:
        """Provisioned by us, on this node."""
        ann = pvhelpers.annotations_of(volume)
        if ann.get(pvhelpers.ANN_DYNAMICALLY_PROVISIONED) != PROVISIONER:
            return False
        return pvhelpers.volume_node_names(volume) == {self.node_name}

    # --- sync -------------------------------------------------------------------------
    async def _sync(self, key: str) -> None:
        if key.startswith(CLAIM):
            claim = self.claims.indexer.get(key[len(CLAIM) :])
            if claim is None:
                return
            if (claim.get("spec") or {}).get("volumeName"):
                await self._maybe_expand(claim)
            else:
                await self._maybe_provision(claim)
        elif key.startswith(VOLUME):
            volume = self.volumes.indexer.get(key[len(VOLUME) :])
            if volume is not None:
                await self._maybe_delete(volume)

    def volume_path(self, volume_name: str, claim: Obj) -> Path:
        md = claim["metadata"]
        name = f"{volume_name}_{md.get('namespace', '')}_{md['name']}"
        return self.storage_dir / name.encode()[:255].decode(errors="ignore")

    def backing_for(self, storage_class: Obj) -> backing_module.Backing:
        wanted = (storage_class.get("parameters") or {}).get(BACKING_PARAMETER, "image")
        if wanted == "directory":
            return backing_module.DirectoryBacking(
                f'StorageClass "{storage_class["metadata"]["name"]}" asks for plain '
                "directories (parameters.backing: directory)"
            )
        if not self.no_image_because:
            return self.images
        return backing_module.DirectoryBacking(self.no_image_because)

    def backing_of(self, path: Path) -> backing_module.Backing:
        """How an existing volume is stored: an image of ours exists for it, or not."""
        if self.images.image_of(path).exists():
            return self.images
        return backing_module.DirectoryBacking("")

    def ensure_ready(self, path: Path) -> None:
        """Blocking: make one of our volumes usable by a container (an image mounted
        again after a reboot). Raises BackingError when it cannot be."""
        self.backing_of(path).ensure_ready(path)

    def owns_path(self, path: Path) -> bool:
        return path.parent == self.storage_dir

    # --- provisioning -----------------------------------------------------------------
    async def _maybe_provision(self, claim: Obj) -> None:
        ann = pvhelpers.annotations_of(claim)
        if PROVISIONER not in (
            ann.get(pvhelpers.ANN_STORAGE_PROVISIONER),
            ann.get(pvhelpers.ANN_BETA_STORAGE_PROVISIONER),
        ):
            return
        if ann.get(pvhelpers.ANN_SELECTED_NODE) != self.node_name:
            return
        if claim["metadata"].get("deletionTimestamp"):
            return
        class_name = pvhelpers.claim_class(claim)
        storage_class = self.classes.indexer.get(class_name)
        if storage_class is None or storage_class.get("provisioner") != PROVISIONER:
            return
        volume_name = f"pvc-{claim['metadata']['uid']}"
        if self.volumes.indexer.get(volume_name) is not None:
            return  # made already; the binder binds it
        self.recorder.event(
            claim,
            events.NORMAL,
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{pvhelpers.key_of_claim(claim)}"',
        )
        try:
            await self._provision(claim, storage_class, volume_name)
        except ProvisioningError as exc:
            self._failed(claim, class_name, str(exc))
        except backing_module.BackingError as exc:
            # The node could not make it: let the scheduler choose again.
            self._failed(claim, class_name, str(exc))
            await self._reschedule(claim)
            raise

    def _failed(self, claim: Obj, class_name: str, why: str) -> None:
        self.recorder.event(
            claim,
            events.WARNING,
            "ProvisioningFailed",
            f'failed to provision volume with StorageClass "{class_name}": {why}',
        )

    async def _provision(self, claim: Obj, storage_class: Obj, volume_name: str) -> None:
        spec = claim.get("spec") or {}
        if spec.get("selector") is not None:
            raise ProvisioningError("claim Selector is not supported")
        if spec.get("dataSource") or spec.get("dataSourceRef"):
            raise ProvisioningError("claims with a dataSource are not supported")
        if (spec.get("volumeMode") or "Filesystem") != "Filesystem":
            raise ProvisioningError("only the Filesystem volumeMode is supported")
        modes = spec.get("accessModes") or []
        if any(m not in SUPPORTED_MODES for m in modes):
            raise ProvisioningError(
                "local-path only supports ReadWriteOnce and ReadWriteOncePod access modes"
            )
        size = int(pvhelpers.requested_storage(claim))
        free = await asyncio.to_thread(backing_module.free_space, self.storage_dir)
        if size > free:
            raise backing_module.BackingError(
                f"not enough free space on node {self.node_name}: "
                f"{spec['resources']['requests']['storage']} requested, "
                f"{backing_module.human(free)} available in {self.storage_dir}"
            )
        path = self.volume_path(volume_name, claim)
        backing = self.backing_for(storage_class)
        await asyncio.to_thread(backing.create, path, size)
        policy = storage_class.get("reclaimPolicy") or "Delete"
        volume = self._volume_object(claim, storage_class, volume_name, path, policy)
        try:
            created = await self.client.create(PV, volume)
        except errors.StatusError as exc:
            if errors.is_already_exists(exc):
                return
            await asyncio.to_thread(backing.delete, path)
            raise
        self.recorder.event(
            claim,
            events.NORMAL,
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {volume_name}",
        )
        if not backing.enforced:
            self.recorder.event(
                created,
                events.WARNING,
                "CapacityNotEnforced",
                f"capacity {spec['resources']['requests']['storage']} is not enforced: "
                f"{backing.not_enforced_because}; the volume can grow until {self.node_name}'s "
                "disk is full",
            )
        log.info("provisioned %s at %s (%s)", volume_name, path, backing.name)

    def _volume_object(
        self, claim: Obj, storage_class: Obj, name: str, path: Path, policy: str
    ) -> Obj:
        spec = claim.get("spec") or {}
        md: Obj = {
            "name": name,
            "annotations": {pvhelpers.ANN_DYNAMICALLY_PROVISIONED: PROVISIONER},
        }
        if policy == "Delete":
            md["finalizers"] = [pvhelpers.PROVISIONER_DELETION_FINALIZER]
        volume_spec: Obj = {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": list(spec.get("accessModes") or []),
            "persistentVolumeReclaimPolicy": policy,
            "storageClassName": pvhelpers.claim_class(claim),
            "volumeMode": "Filesystem",
            "claimRef": pvhelpers.claim_reference(claim),
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": pvhelpers.HOSTNAME_LABEL,
                                    "operator": "In",
                                    "values": [self.node_name],
                                }
                            ]
                        }
                    ]
                }
            },
        }
        if storage_class.get("mountOptions"):
            volume_spec["mountOptions"] = list(storage_class["mountOptions"])
        return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": md, "spec": volume_spec}

    async def _reschedule(self, claim: Obj) -> None:
        """Drop the selected node so the scheduler picks again (upstream's
        ``rescheduleProvisioning``)."""
        clone = meta.deep_copy(claim)
        clone["metadata"].get("annotations", {}).pop(pvhelpers.ANN_SELECTED_NODE, None)
        try:
            await self.client.update(PVC, clone)
        except errors.StatusError as exc:
            log.info(
                "could not ask for another node for %s: %s", pvhelpers.key_of_claim(claim), exc
            )

    # --- deleting ---------------------------------------------------------------------
    def _path_of(self, volume: Obj) -> Path | None:
        """The volume's directory, if it is one of ours: a child of the storage directory
        named after the volume. Anything else is refused (a hand-made PV that claims to
        be ours must not make us remove an arbitrary directory)."""
        raw = ((volume.get("spec") or {}).get("local") or {}).get("path") or ""
        path = Path(raw)
        name = volume["metadata"]["name"]
        if path.parent != self.storage_dir or not path.name.startswith(f"{name}_"):
            return None
        return path

    async def _maybe_delete(self, volume: Obj) -> None:
        spec = volume.get("spec") or {}
        if spec.get("persistentVolumeReclaimPolicy") != "Delete":
            return
        phase = (volume.get("status") or {}).get("phase")
        deleting = bool(volume["metadata"].get("deletionTimestamp"))
        if phase not in ("Released", "Failed") and not (deleting and phase != "Bound"):
            return
        path = self._path_of(volume)
        name = volume["metadata"]["name"]
        if path is None:
            self.recorder.event(
                volume,
                events.WARNING,
                "VolumeFailedDelete",
                f"refusing to delete {spec.get('local', {}).get('path')!r}: it is not a "
                f"local-path volume directory under {self.storage_dir}",
            )
            return
        try:
            await asyncio.to_thread(self.backing_of(path).delete, path)
        except (backing_module.BackingError, OSError) as exc:
            self.recorder.event(volume, events.WARNING, "VolumeFailedDelete", str(exc))
            raise
        finalizers = volume["metadata"].get("finalizers") or []
        if pvhelpers.PROVISIONER_DELETION_FINALIZER in finalizers:
            clone = meta.deep_copy(volume)
            clone["metadata"]["finalizers"] = [
                f for f in finalizers if f != pvhelpers.PROVISIONER_DELETION_FINALIZER
            ]
            try:
                volume = await self.client.update(PV, clone)
            except errors.StatusError as exc:
                if errors.is_not_found(exc):
                    return
                raise
        if not volume["metadata"].get("deletionTimestamp"):
            try:
                await self.client.delete(PV, name)
            except errors.StatusError as exc:
                if not errors.is_not_found(exc):
                    raise
        log.info("deleted volume %s (%s)", name, path)

    # --- growing ----------------------------------------------------------------------
    async def _maybe_expand(self, claim: Obj) -> None:
        volume = self.volumes.indexer.get(claim["spec"]["volumeName"])
        if volume is None or not self._ours(volume):
            return
        if (claim.get("status") or {}).get("phase") != "Bound":
            return
        wanted = pvhelpers.requested_storage(claim)
        if wanted <= pvhelpers.volume_capacity(volume):
            if wanted > pvhelpers.storage_of((claim.get("status") or {}).get("capacity")):
                await self._claim_resized(claim, volume)  # the volume grew; say so
            return
        path = self._path_of(volume)
        if path is None:
            return
        name = volume["metadata"]["name"]
        self.recorder.event(
            claim, events.NORMAL, "Resizing", f"External resizer is resizing volume {name}"
        )
        backing = self.backing_of(path)
        try:
            await asyncio.to_thread(backing.expand, path, int(wanted))
        except (backing_module.BackingError, OSError) as exc:
            self.recorder.event(
                claim,
                events.WARNING,
                "VolumeResizeFailed",
                f'resize volume "{name}" by resizer "{PROVISIONER}" failed: {exc}',
            )
            raise
        grown = meta.deep_copy(volume)
        grown["spec"]["capacity"] = {
            **(grown["spec"].get("capacity") or {}),
            "storage": claim["spec"]["resources"]["requests"]["storage"],
        }
        volume = await self.client.update(PV, grown)
        await self._claim_resized(claim, volume)

    async def _claim_resized(self, claim: Obj, volume: Obj) -> None:
        clone = meta.deep_copy(claim)
        status = clone.setdefault("status", {})
        storage = volume["spec"]["capacity"]["storage"]
        status["capacity"] = {**(status.get("capacity") or {}), "storage": storage}
        status["allocatedResources"] = {
            **(status.get("allocatedResources") or {}),
            "storage": storage,
        }
        await self.client.update_status(PVC, clone)
        self.recorder.event(
            clone, events.NORMAL, "VolumeResizeSuccessful", "Resize volume succeeded"
        )
