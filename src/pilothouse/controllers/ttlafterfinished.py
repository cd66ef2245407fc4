"""The TTL-after-finished controller: delete finished Jobs once their
``spec.ttlSecondsAfterFinished`` has passed (upstream's ``ttlafterfinished``).

Handlers enqueue Jobs that are finished and carry a TTL; ``sync`` computes when the
Job expires (the finished condition's ``lastTransitionTime`` plus the TTL) and either
requeues it for that moment — no polling — or, after re-reading the Job from the API
(the TTL may have been changed or removed meanwhile), deletes it with foreground
propagation and a resourceVersion precondition, so a Job changed in between is not
deleted on stale information. One Job at a time per key; Jobs in parallel.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, meta
from pilothouse.client import informer, lister, rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def finish_time(job: Obj) -> float | None:
    """When the Job finished: its Complete or Failed condition's transition."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return meta.parse_time(condition.get("lastTransitionTime"))
    return None


def needs_cleanup(job: Obj) -> bool:
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    return ttl is not None and finish_time(job) is not None


def expires_in(job: Obj, now: float) -> float | None:
    """Seconds until the Job expires (<= 0: expired); None if it never does."""
    finished = finish_time(job)
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if finished is None or ttl is None:
        return None
    return finished + float(ttl) - now


class TTLAfterFinishedController(base.Controller):
    name = "ttl-after-finished"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.job_resource = ctx.resource("batch", "v1", "jobs")
        self.jobs: informer.Informer = ctx.informers.informer(self.job_resource)
        self.jobs.add_handlers(on_add=self._changed, on_update=lambda _o, new: self._changed(new))

    async def wait_ready(self) -> None:
        await self.jobs.wait_synced()

    def _changed(self, job: Obj) -> None:
        if not job["metadata"].get("deletionTimestamp") and needs_cleanup(job):
            self.enqueue(job)

    async def sync(self, key: str) -> None:
        job = self.jobs.indexer.get(key)
        if job is None or job["metadata"].get("deletionTimestamp") or not needs_cleanup(job):
            return
        remaining = expires_in(job, self.clock.now())
        if remaining is None:
            return
        if remaining > 0:
            self.queue.add_after(key, remaining)
            return
        namespace, name = lister.split_key(key)
        # The cache may be stale: the TTL may have been changed; decide on a fresh read.
        try:
            fresh = await self.client.get(self.job_resource, name, namespace)
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return
            raise
        if fresh["metadata"].get("deletionTimestamp") or not needs_cleanup(fresh):
            return
        remaining = expires_in(fresh, self.clock.now())
        if remaining is None:
            return
        if remaining > 0:
            self.queue.add_after(key, remaining)
            return
        log.info("cleaning up Job %s: its TTL after finishing has passed", key)
        try:
            await self.client.delete(
                self.job_resource,
                name,
                namespace,
                propagation_policy="Foreground",
                resource_version=fresh["metadata"].get("resourceVersion", ""),
            )
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
