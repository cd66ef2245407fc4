"""The disruption controller: keeps each PodDisruptionBudget's status current
(upstream's disruption controller), so evictions know how many pods may go.

For a budget it counts the pods its selector matches, how many are healthy
(Ready and not being deleted, and not just evicted), how many should be
(``minAvailable``, or the expected count minus ``maxUnavailable``; percentages
are of the expected count, which comes from the pods' controllers' scale), and
writes ``disruptionsAllowed`` with the ``DisruptionAllowed`` condition. The
eviction subresource spends one allowed disruption per eviction and records the
pod in ``disruptedPods``; this controller forgets entries once the pod is gone
or after two minutes.
"""

from __future__ import annotations

import logging
from typing import Any

from pilothouse.api import errors, intstr, meta, selectors
from pilothouse.client import lister, rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DELETION_TIMEOUT_S = 120.0
# Controllers whose scale gives the expected number of pods, by owner kind.
SCALABLE = {
    "ReplicationController": ("", "replicationcontrollers"),
    "ReplicaSet": ("apps", "replicasets"),
    "StatefulSet": ("apps", "statefulsets"),
    "Deployment": ("apps", "deployments"),
}


def _ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


class DisruptionController(base.Controller):
    name = "disruption"
    workers = 2

    def __init__(self, ctx: Any) -> None:
        super().__init__(clock=ctx.clock)
        self.ctx = ctx
        self.client: rest.Client = ctx.client
        self.pdb_resource = ctx.resource("policy", "v1", "poddisruptionbudgets")
        self.pdbs = ctx.informers.informer(self.pdb_resource)
        self.pods = ctx.informers.informer(ctx.resource("", "v1", "pods"))
        self.pdbs.add_handlers(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n))
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=self._pod_updated,
            on_delete=self._pod_changed,
        )

    async def wait_ready(self) -> None:
        await self.pdbs.wait_synced()
        await self.pods.wait_synced()

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(old)
        self._pod_changed(new)

    def _pod_changed(self, pod: Obj) -> None:
        md = pod.get("metadata") or {}
        labels = md.get("labels") or {}
        for pdb in self.pdbs.indexer.list_namespace(md.get("namespace", "")):
            if selectors.from_label_selector_dict((pdb.get("spec") or {}).get("selector")).matches(
                labels
            ):
                self.enqueue(pdb)

    async def sync(self, key: str) -> None:
        pdb = self.pdbs.indexer.get(key)
        if pdb is None:
            return
        namespace = pdb["metadata"]["namespace"]
        spec = pdb.get("spec") or {}
        selector = selectors.from_label_selector_dict(spec.get("selector"))
        pods = [
            p
            for p in self.pods.indexer.list_namespace(namespace)
            if selector.matches((p.get("metadata") or {}).get("labels") or {})
        ]
        status = dict(pdb.get("status") or {})
        now_wall = self.clock.now()
        live = {p["metadata"]["name"]: p for p in pods}
        disrupted = {}
        for name, stamp in (status.get("disruptedPods") or {}).items():
            pod = live.get(name)
            when = meta.parse_time(stamp) or 0.0
            if (
                pod is not None
                and not pod["metadata"].get("deletionTimestamp")
                and now_wall - when < DELETION_TIMEOUT_S
            ):
                disrupted[name] = stamp
        healthy = sum(
            1
            for p in pods
            if _ready(p)
            and not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["name"] not in disrupted
        )
        expected, desired = await self._desired(pdb, pods)
        allowed = max(0, healthy - desired) if expected > 0 or desired <= healthy else 0
        condition_status = "True" if allowed > 0 else "False"
        old_condition = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "DisruptionAllowed"),
            None,
        )
        transition = meta.now()
        if old_condition is not None and old_condition.get("status") == condition_status:
            transition = old_condition.get("lastTransitionTime", transition)
        generation = int(pdb["metadata"].get("generation") or 1)
        new_status = {
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [
                {
                    "type": "DisruptionAllowed",
                    "status": condition_status,
                    "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
                    "message": "",
                    "observedGeneration": generation,
                    "lastTransitionTime": transition,
                }
            ],
        }
        if disrupted:
            new_status["disruptedPods"] = disrupted
        if new_status == status:
            return
        updated = meta.deep_copy(pdb)
        updated["status"] = new_status
        try:
            await self.client.update_status(self.pdb_resource, updated)
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return
            raise
        if disrupted:
            # Forget evictions that never finished once their time is up.
            self.queue.add_after(key, DELETION_TIMEOUT_S)

    async def _desired(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int]:
        spec = pdb.get("spec") or {}
        max_unavailable = spec.get("maxUnavailable")
        min_available = spec.get("minAvailable")
        if max_unavailable is not None:
            expected = await self._expected_scale(pdb, pods)
            unavailable = intstr.scaled_value(max_unavailable, expected, True)
            return expected, max(0, expected - unavailable)
        if min_available is None:
            return len(pods), len(pods)  # upstream: an empty budget keeps every pod
        if isinstance(min_available, int):
            return len(pods), min_available
        expected = await self._expected_scale(pdb, pods)
        return expected, intstr.scaled_value(min_available, expected, True)

    async def _expected_scale(self, pdb: Obj, pods: list[Obj]) -> int:
        """Sum of the replicas of the controllers of ``pods`` (each counted once)."""
        namespace = pdb["metadata"]["namespace"]
        seen: dict[str, int] = {}
        for pod in pods:
            ref = next(
                (r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")),
                None,
            )
            if ref is None:
                seen[f"pod/{lister.key_of(pod)}"] = 1  # a bare pod counts as itself
                continue
            owner_kind, owner_name, uid = ref.get("kind"), ref.get("name"), ref.get("uid")
            if uid in seen:
                continue
            replicas = 1
            if owner_kind in SCALABLE:
                group, plural = SCALABLE[owner_kind]
                resource = self.ctx.resource(group, "v1", plural)
                try:
                    owner = await self.client.get(resource, owner_name, namespace)
                    deployment = next(
                        (
                            r
                            for r in owner["metadata"].get("ownerReferences") or []
                            if r.get("controller") and r.get("kind") == "Deployment"
                        ),
                        None,
                    )
                    if deployment is not None:
                        if deployment["uid"] in seen:
                            continue
                        dep = await self.client.get(
                            self.ctx.resource("apps", "v1", "deployments"),
                            deployment["name"],
                            namespace,
                        )
                        seen[deployment["uid"]] = int((dep.get("spec") or {}).get("replicas", 1))
                        continue
                    replicas = int((owner.get("spec") or {}).get("replicas", 1))
                except errors.StatusError as exc:
                    if not errors.is_not_found(exc):
                        raise
            seen[uid] = replicas
        return sum(seen.values()) if seen else 0
