"""Node lifecycle: notice lost nodes and move their pods away (upstream's
node lifecycle controller with taint-based eviction).

A node whose Lease in ``kube-node-lease`` has not been renewed for
``grace_period`` (40 s, upstream's node-monitor-grace-period) has its Ready
condition set to Unknown ("Kubelet stopped posting node status.") and gets the
``node.kubernetes.io/unreachable`` taints; a node reporting Ready=False gets
``node.kubernetes.io/not-ready``. The NoExecute taints evict pods: at once for
pods that do not tolerate them, after ``tolerationSeconds`` for those that do
(every pod gets 300 s by default admission). Their controllers then create
replacements elsewhere. When the node comes back, the taints go.

The node's pods are marked not Ready as soon as it is (upstream's MarkPodsNotReady), so
Services stop sending them traffic at once rather than when they are evicted, minutes
later with the default toleration. A lost node's pods are marked on every sweep while
their Ready says True (no kubelet will say otherwise, and a pod bound there later needs
it too); the pods of a node whose kubelet itself reports Ready=False are marked once,
when this controller sees the node leave Ready, so the kubelet keeps the last word. A
kubelet that comes back reports its pods' readiness again (the agent's status manager
rewrites a condition the API holds differently).

Conditions a node reports also taint it NoSchedule, as upstream's TaintNodesByCondition:
MemoryPressure, DiskPressure and PIDPressure (the kubelet's eviction manager) give
``node.kubernetes.io/memory-pressure``, ``…/disk-pressure``, ``…/pid-pressure``, and
NetworkUnavailable ``…/network-unavailable``; the taint goes when the condition does.

One periodic sweep (every ``interval`` seconds) re-reads nodes, leases and
pods from the informers, so a restart of the controller loses nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pilothouse.api import errors, meta
from pilothouse.client import events, lister, rest
from pilothouse.controllers import base

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KEY = "sweep"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
# Upstream's nodeConditionToTaintKeyStatusMap: condition type → taint key when True.
CONDITION_TAINTS = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
    "NetworkUnavailable": "node.kubernetes.io/network-unavailable",
}
_MANAGED = {UNREACHABLE, NOT_READY, *CONDITION_TAINTS.values()}


def _tolerates(pod: Obj, taint: Obj) -> tuple[bool, float | None]:
    """(tolerated, seconds it may stay) for a NoExecute taint."""
    best: float | None = None
    tolerated = False
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if t.get("effect") not in (None, "", taint["effect"]):
            continue
        key, op = t.get("key", ""), t.get("operator", "Equal")
        if key and key != taint["key"]:
            continue
        if op == "Equal" and key and t.get("value", "") != taint.get("value", ""):
            continue
        tolerated = True
        seconds = t.get("tolerationSeconds")
        if seconds is None:
            return True, None  # forever
        best = max(best or 0.0, float(seconds))
    return tolerated, best


class NodeLifecycleController(base.Controller):
    name = "nodelifecycle"
    workers = 1

    def __init__(self, ctx: Any, *, grace_period: float = 40.0, interval: float = 5.0) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.nodes_resource = ctx.resource("", "v1", "nodes")
        self.pods_resource = ctx.resource("", "v1", "pods")
        self.nodes = ctx.informers.informer(self.nodes_resource)
        self.leases = ctx.informers.informer(
            ctx.resource("coordination.k8s.io", "v1", "leases"), namespace="kube-node-lease"
        )
        self.pods = ctx.informers.informer(self.pods_resource)
        self.pods.add_indexer(lister.NODE_NAME_INDEX, lister.node_name_index)
        self.recorder: events.EventRecorder = ctx.recorder("node-controller")
        self.grace_period = grace_period
        self.interval = interval
        self._seen: dict[
            str, tuple[str, float]
        ] = {}  # node → (renewTime seen, when we saw it change)
        self._tainted_at: dict[str, float] = {}
        self._was_ready: dict[str, bool] = {}  # node → its Ready was True when last swept

    async def wait_ready(self) -> None:
        for inf in (self.nodes, self.leases, self.pods):
            await inf.wait_synced()
        self.queue.add(KEY)

    async def sync(self, key: str) -> None:
        try:
            for node in self.nodes.indexer.list():
                await self._check(node)
            # What we noted about nodes that are gone goes with them.
            for noted in (self._seen, self._tainted_at, self._was_ready):
                for name in [n for n in noted if n not in self.nodes.indexer]:
                    del noted[name]
        finally:
            self.queue.add_after(KEY, self.interval)

    def _lost(self, name: str) -> bool:
        lease = self.leases.indexer.get(f"kube-node-lease/{name}")
        renew = ((lease or {}).get("spec") or {}).get("renewTime") or ""
        now = self.clock.monotonic()
        seen = self._seen.get(name)
        if seen is None or seen[0] != renew:
            # Measured on our own clock from when we saw the lease change, as
            # upstream does, so clock skew between machines does not matter.
            self._seen[name] = (renew, now)
            return False
        return now - seen[1] > self.grace_period

    async def _check(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        if self._lost(name):
            if ready is None or ready.get("status") != "Unknown":
                await self._mark_unknown(node)
            wanted = UNREACHABLE
        elif ready is not None and ready.get("status") == "False":
            wanted = NOT_READY
        else:
            wanted = ""
        was_ready = self._was_ready.get(name, False)
        self._was_ready[name] = not wanted
        await self._set_taints(node, wanted)
        if wanted == UNREACHABLE or (wanted and was_ready):
            await self._mark_pods_not_ready(name)
        if wanted:
            await self._evict(name, {"key": wanted, "effect": "NoExecute"})
        else:
            self._tainted_at.pop(name, None)

    async def _mark_unknown(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        now = meta.now()
        conditions = []
        for c in (node.get("status") or {}).get("conditions") or []:
            c = dict(c)
            if c.get("type") in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
                c.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                    lastTransitionTime=now,
                )
            conditions.append(c)
        try:
            await self.client.patch(
                self.nodes_resource,
                name,
                {"status": {"conditions": conditions}},
                subresource="status",
            )
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
            return
        self.recorder.event(
            node, events.NORMAL, "NodeNotReady", f"Node {name} status is now: NodeNotReady"
        )
        log.warning("node %s stopped posting status; marking it unreachable", name)

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        """Set Ready=False on the node's pods that still say True (a write each, guarded
        by the pod's uid and resourceVersion: a pod changed since the informer saw it is
        left to the next sweep)."""
        for pod in self.pods.indexer.by_index(lister.NODE_NAME_INDEX, node_name):
            md, status = pod["metadata"], pod.get("status") or {}
            conditions = status.get("conditions") or []
            if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                continue
            now = meta.now()
            marked = [
                {**c, "status": "False", "lastTransitionTime": now}
                if c.get("type") == "Ready"
                else c
                for c in conditions
            ]
            patch = {
                "metadata": {"uid": md.get("uid"), "resourceVersion": md.get("resourceVersion")},
                "status": {"conditions": marked},
            }
            try:
                await self.client.patch(
                    self.pods_resource,
                    md["name"],
                    patch,
                    md.get("namespace", ""),
                    subresource="status",
                )
            except errors.StatusError as exc:
                if errors.is_not_found(exc) or errors.is_conflict(exc):
                    continue
                raise
            self.recorder.event(pod, events.WARNING, "NodeNotReady", "Node is not ready")
            log.info(
                "pod %s/%s marked not ready: node %s is not",
                md.get("namespace"),
                md["name"],
                node_name,
            )

    async def _set_taints(self, node: Obj, wanted: str) -> None:
        spec = node.get("spec") or {}
        current = spec.get("taints") or []
        taints = [t for t in current if t.get("key") not in _MANAGED]
        if wanted:
            stamp = meta.now()
            taints += [
                {"key": wanted, "effect": "NoSchedule"},
                {"key": wanted, "effect": "NoExecute", "timeAdded": stamp},
            ]
        for c in (node.get("status") or {}).get("conditions") or []:
            key = CONDITION_TAINTS.get(c.get("type", ""))
            if key is not None and c.get("status") == "True":
                taints.append({"key": key, "effect": "NoSchedule"})
        if sorted((t["key"], t["effect"]) for t in current) == sorted(
            (t["key"], t["effect"]) for t in taints
        ):
            return
        try:
            await self.client.patch(
                self.nodes_resource, node["metadata"]["name"], {"spec": {"taints": taints or None}}
            )
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise
        if wanted:
            self._tainted_at.setdefault(node["metadata"]["name"], time.time())

    async def _evict(self, node_name: str, taint: Obj) -> None:
        since = self._tainted_at.get(node_name, time.time())
        for pod in self.pods.indexer.by_index(lister.NODE_NAME_INDEX, node_name):
            md = pod["metadata"]
            if md.get("deletionTimestamp"):
                continue
            tolerated, seconds = _tolerates(pod, taint)
            if tolerated and (seconds is None or time.time() - since < seconds):
                continue
            try:
                await self.client.delete(
                    self.pods_resource, md["name"], md.get("namespace", ""), uid=md.get("uid", "")
                )
            except errors.StatusError as exc:
                if not (errors.is_not_found(exc) or errors.is_conflict(exc)):
                    raise
                continue
            self.recorder.event(
                pod,
                events.NORMAL,
                "TaintManagerEviction",
                f"Marking for deletion Pod {md.get('namespace')}/{md['name']}",
            )
