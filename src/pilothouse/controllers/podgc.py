"""Pod garbage collection (upstream's podgc controller).

Every ``interval`` seconds, delete (with grace 0, as upstream forces them):

* pods bound to a node that does not exist — after a quarantine, since a node
  may still be registering (the node agent cannot confirm their deletion);
* pods being deleted that were never scheduled (nobody would confirm them);
* the oldest finished pods beyond ``terminated_threshold``.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, meta
from pilothouse.client import lister, rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KEY = "podgc"


class PodGCController(base.Controller):
    name = "podgc"
    workers = 1

    def __init__(
        self,
        ctx: Any,
        *,
        interval: float = 20.0,
        quarantine: float = 40.0,
        terminated_threshold: int = 12500,
    ) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.pods_resource = ctx.resource("", "v1", "pods")
        self.pods = ctx.informers.informer(self.pods_resource)
        self.nodes = ctx.informers.informer(ctx.resource("", "v1", "nodes"))
        self.interval = interval
        self.quarantine = quarantine
        self.terminated_threshold = terminated_threshold
        self._missing_since: dict[str, float] = {}

    async def wait_ready(self) -> None:
        await self.pods.wait_synced()
        await self.nodes.wait_synced()
        self.queue.add(KEY)

    async def sync(self, key: str) -> None:
        try:
            await self._collect()
        finally:
            self.queue.add_after(KEY, self.interval)

    async def _collect(self) -> None:
        now = self.clock.monotonic()
        nodes = {n["metadata"]["name"] for n in self.nodes.indexer.list()}
        pods = self.pods.indexer.list()
        doomed: list[tuple[Obj, str]] = []
        for name in list(self._missing_since):
            if name in nodes:
                del self._missing_since[name]
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in nodes:
                since = self._missing_since.setdefault(node, now)
                if now - since >= self.quarantine:
                    doomed.append((pod, f"node {node} does not exist"))
            elif not node and pod["metadata"].get("deletionTimestamp"):
                doomed.append((pod, "unscheduled pod being deleted"))
        finished = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")
        ]
        extra = len(finished) - self.terminated_threshold
        if extra > 0:
            finished.sort(
                key=lambda p: meta.parse_time(p["metadata"].get("creationTimestamp")) or 0.0
            )
            doomed.extend((p, "too many terminated pods") for p in finished[:extra])
        for pod, why in doomed:
            md = pod["metadata"]
            try:
                await self.client.delete(
                    self.pods_resource,
                    md["name"],
                    md.get("namespace", ""),
                    grace_period_seconds=0,
                    uid=md.get("uid", ""),
                )
                log.info("podgc: deleted %s (%s)", lister.key_of(pod), why)
            except errors.StatusError as exc:
                if not (errors.is_not_found(exc) or errors.is_conflict(exc)):
                    raise
