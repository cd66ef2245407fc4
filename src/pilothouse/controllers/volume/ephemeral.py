"""The ephemeral volume controller (upstream's pkg/controller/volume/ephemeral).

A pod volume of type ``ephemeral`` gets a claim of its own, ``<pod>-<volume>``,
made from the volume's ``volumeClaimTemplate`` and owned by the pod (controller
reference, ``blockOwnerDeletion``), so the garbage collector removes it with the
pod. A claim of that name that the pod does not own is never used: the pod gets
a ``FailedBinding`` Warning instead. Handlers enqueue ``namespace/name`` of pods
with ephemeral volumes (and of the pods of a deleted claim, to make it again
while they live); pods sync in parallel, each one at a time.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, pvhelpers
from pilothouse.client import events, rest
from pilothouse.controllers import base

Obj = dict[str, Any]
PVC_INDEX = "pvc"


def _has_ephemeral(pod: Obj) -> bool:
    return any(v.get("ephemeral") is not None for v in (pod.get("spec") or {}).get("volumes") or [])


class EphemeralVolumeController(base.Controller):
    name = "ephemeral-volume"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.pvc_resource = ctx.resource("", "v1", "persistentvolumeclaims")
        self.pods = ctx.informers.informer(ctx.resource("", "v1", "pods"))
        self.claims = ctx.informers.informer(self.pvc_resource)
        self.pods.add_indexer(PVC_INDEX, pvhelpers.pod_claim_keys)
        self.recorder: events.EventRecorder = ctx.recorder("ephemeral_volume")
        self.pods.add_handlers(
            on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n)
        )
        self.claims.add_handlers(on_delete=self._claim_deleted)

    async def wait_ready(self) -> None:
        await self.pods.wait_synced()
        await self.claims.wait_synced()

    def _pod_changed(self, pod: Obj) -> None:
        if not pod["metadata"].get("deletionTimestamp") and _has_ephemeral(pod):
            self.enqueue(pod)

    def _claim_deleted(self, claim: Obj) -> None:
        md = claim["metadata"]
        for pod in self.pods.indexer.by_index(PVC_INDEX, f"{md.get('namespace', '')}/{md['name']}"):
            self._pod_changed(pod)

    async def sync(self, key: str) -> None:
        pod = self.pods.indexer.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if volume.get("ephemeral") is None:
                continue
            try:
                await self._ensure_claim(pod, volume)
            except _Refused as exc:
                self.recorder.event(pod, events.WARNING, "FailedBinding", str(exc))
                raise

    async def _ensure_claim(self, pod: Obj, volume: Obj) -> None:
        namespace = pod["metadata"].get("namespace", "")
        name = pvhelpers.ephemeral_claim_name(pod, volume)
        existing = self.claims.indexer.get_by(namespace, name)
        if existing is not None:
            why = pvhelpers.volume_is_for_pod(pod, existing)
            if why:
                raise _Refused(why)
            return
        template = (volume.get("ephemeral") or {}).get("volumeClaimTemplate") or {}
        template_md = template.get("metadata") or {}
        metadata: Obj = {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        for field in ("labels", "annotations"):
            if template_md.get(field):
                metadata[field] = template_md[field]
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": metadata,
            "spec": template.get("spec") or {},
        }
        try:
            await self.client.create(self.pvc_resource, claim, namespace)
        except errors.StatusError as exc:
            if errors.is_already_exists(exc):
                return  # our cache is behind; the claim's add event syncs the pod again
            raise _Refused(f"create PVC {name}: {exc.message}") from exc


class _Refused(Exception):
    """Why a pod's ephemeral claim cannot be used or made (shown in its event)."""
