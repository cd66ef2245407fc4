"""Which pods a Job owns (upstream's PodControllerRefManager with the Job's finalizer).

Owned pods that no longer match the selector are released; orphans that match are
adopted — with the tracking finalizer, so they are counted like the Job's own — unless
a fresh read shows the Job being deleted or replaced. Called from one sync at a time
per Job.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, meta, resources, selectors
from pilothouse.client import informer, rest
from pilothouse.controllers import podcontrol
from pilothouse.controllers.job import state as st
from pilothouse.controllers.job import tracking

Obj = dict[str, Any]
STRATEGIC = "application/strategic-merge-patch+json"


class PodClaimer:
    def __init__(
        self,
        *,
        client: rest.Client,
        jobs: resources.Resource,
        pods: resources.Resource,
        pod_informer: informer.Informer,
    ) -> None:
        self.client = client
        self.job_resource = jobs
        self.pod_resource = pods
        self.pods = pod_informer

    async def claim(self, job: Obj) -> list[Obj]:
        """The pods this Job owns, after adopting matching orphans (adding the tracking
        finalizer) and releasing owned pods that no longer match."""
        md = job["metadata"]
        job_uid = md["uid"]
        selector = selectors.from_label_selector_dict((job.get("spec") or {}).get("selector"))
        owned: list[Obj] = []
        can_adopt: bool | None = None
        for pod in self.pods.indexer.list_namespace(md.get("namespace", "")):
            ref = podcontrol.get_controller_of(pod)
            matches = not selector.empty and selector.matches(pod["metadata"].get("labels") or {})
            if ref is not None:
                if ref.get("uid") != job_uid:
                    continue
                if matches:
                    owned.append(pod)
                elif not pod["metadata"].get("deletionTimestamp"):
                    await self._release(job, pod)
                continue
            if not matches or pod["metadata"].get("deletionTimestamp"):
                continue
            if can_adopt is None:
                can_adopt = await self._can_adopt(job)
            if can_adopt and await self._adopt(job, pod):
                adopted = meta.deep_copy(pod)
                finalizers = adopted["metadata"].setdefault("finalizers", [])
                if tracking.FINALIZER not in finalizers:
                    finalizers.append(tracking.FINALIZER)
                owned.append(adopted)
        return owned

    async def _can_adopt(self, job: Obj) -> bool:
        """A fresh read: never adopt for a Job that is being deleted or replaced."""
        md = job["metadata"]
        try:
            fresh = await self.client.get(self.job_resource, md["name"], md.get("namespace", ""))
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return False
            raise
        return st.uid(fresh) == md["uid"] and not fresh["metadata"].get("deletionTimestamp")

    async def _adopt(self, job: Obj, pod: Obj) -> bool:
        pmd = pod["metadata"]
        patch = {
            "metadata": {
                "ownerReferences": [podcontrol.controller_ref(job)],
                "uid": pmd["uid"],
                "finalizers": [tracking.FINALIZER],
            }
        }
        try:
            await self.client.patch(
                self.pod_resource,
                pmd["name"],
                patch,
                pmd.get("namespace", ""),
                patch_type=STRATEGIC,
            )
            return True
        except errors.StatusError as exc:
            if errors.is_not_found(exc) or errors.is_conflict(exc) or errors.is_invalid(exc):
                return False
            raise

    async def _release(self, job: Obj, pod: Obj) -> None:
        pmd = pod["metadata"]
        patch = {
            "metadata": {
                "ownerReferences": [{"$patch": "delete", "uid": st.uid(job)}],
                "uid": pmd["uid"],
            }
        }
        try:
            await self.client.patch(
                self.pod_resource,
                pmd["name"],
                patch,
                pmd.get("namespace", ""),
                patch_type=STRATEGIC,
            )
        except errors.StatusError as exc:
            if not (errors.is_not_found(exc) or errors.is_conflict(exc) or errors.is_invalid(exc)):
                raise
