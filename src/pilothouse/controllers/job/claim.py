"""Which pods a Job owns (upstream's PodControllerRefManager with the Job's finalizer).

Owned pods that no longer match the selector are released; orphans that match are
adopted — with the tracking finalizer, so they are counted like the Job's own — unless
a fresh read shows the Job being deleted or replaced: the shared
:class:`~pilothouse.controllers.refmanager.ControllerRefManager`. A claim that could not
adopt or release fails the sync (which is retried), as upstream's ``getPodsForJob``.
Called from one sync at a time per Job.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import resources, selectors
from pilothouse.client import informer, rest
from pilothouse.controllers import refmanager
from pilothouse.controllers.job import tracking

Obj = dict[str, Any]


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
        finalizer) and releasing owned pods that no longer match. Raises
        :class:`~pilothouse.controllers.refmanager.ClaimError` when one could not be."""
        md = job["metadata"]
        selector = selectors.from_label_selector_dict((job.get("spec") or {}).get("selector"))
        manager = refmanager.ControllerRefManager(
            self.client,
            controller=job,
            selector=selector,
            resource=self.pod_resource,
            recheck=refmanager.recheck_deletion(self.client, self.job_resource, job),
            finalizers=(tracking.FINALIZER,),
        )
        # An empty selector selects nothing here (the API never gives a Job one).
        return await manager.claim(
            self.pods.indexer.list_namespace(md.get("namespace", "")),
            lambda _pod: not selector.empty,
        )
