"""Node-pressure eviction: upstream's eviction manager (``pkg/kubelet/eviction``), step for step.

Every ``interval`` (10 s) :meth:`EvictionManager.synchronize` takes a summary of the node
and its pods and

1. evicts pods that broke their own local-storage limits — an emptyDir over its
   ``sizeLimit``, a container over its ``ephemeral-storage`` limit, a pod over the sum
   of its containers' limits — at once, with upstream's messages;
2. compares the signals (``memory.available``, ``nodefs.available``,
   ``nodefs.inodesFree``, ``imagefs.available``, ``imagefs.inodesFree``,
   ``pid.available``) with the hard and soft thresholds; a soft one counts once it has
   held for its grace period. Conditions (MemoryPressure, DiskPressure, PIDPressure)
   hold while a threshold is met and for ``evictionPressureTransitionPeriod`` after;
3. for the most urgent threshold met, first reclaims what the node itself holds (dead
   containers, unused images) and, if that is not enough, evicts one pod — ranked as
   upstream ranks them — and waits for it to be cleaned up before the next round.

An evicted pod ends ``Failed`` with reason ``Evicted`` and the message upstream gives,
a ``DisruptionTarget`` condition, and a Warning event ``Evicted``. While the node is
under pressure, :meth:`admit` refuses new pods as upstream's admission handler does.

Concurrency: one task (:meth:`run`); :meth:`admit` and :attr:`conditions` are read by
the pod workers and the node status loop on the same event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pilothouse.api import quantity
from pilothouse.client import events
from pilothouse.node.eviction import helpers
from pilothouse.node.eviction import summary as summarymod
from pilothouse.node.kubeletconfig import Threshold
from pilothouse.node.runtime import protocol

log = logging.getLogger(__name__)

Obj = dict[str, Any]
IMMEDIATE_GRACE_SECONDS = 1  # upstream's immediateEvictionGracePeriodSeconds
POD_CLEANUP_TIMEOUT = 30.0
POD_CLEANUP_POLL = 1.0


@dataclass(frozen=True)
class Eviction:
    """What the pod worker needs to evict a pod."""

    grace_seconds: int
    message: str
    condition: Obj | None  # the DisruptionTarget condition, when upstream sets one


class Evictor(Protocol):
    def __call__(self, pod: Obj, eviction: Eviction) -> Awaitable[bool]:
        """Kill the pod and mark it evicted; False when it could not be."""


class Reclaimer(Protocol):
    async def __call__(self) -> Any: ...


class EvictionManager:
    def __init__(
        self,
        *,
        thresholds: tuple[Threshold, ...],
        summary: Callable[[], Awaitable[summarymod.Summary]],
        pods: Callable[[], list[Obj]],
        evict: Evictor,
        cleaned_up: Callable[[Obj], bool],
        recorder: events.EventRecorder,
        node_ref: Obj,
        delete_unused_containers: Reclaimer,
        delete_unused_images: Reclaimer,
        pressure_transition_period: float = 300.0,
        max_pod_grace_period: int = 0,
        local_storage_isolation: bool = True,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_conditions: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.thresholds = thresholds
        self.summary = summary
        self.pods = pods
        self.evict = evict
        self.cleaned_up = cleaned_up
        self.recorder = recorder
        self.node_ref = node_ref
        self.delete_unused_containers = delete_unused_containers
        self.delete_unused_images = delete_unused_images
        self.pressure_transition_period = pressure_transition_period
        self.max_pod_grace_period = max_pod_grace_period
        self.local_storage_isolation = local_storage_isolation
        self.interval = interval
        self.clock = clock
        self.on_conditions = on_conditions
        self.conditions: list[str] = []  # node conditions now true
        self._first_observed: dict[Threshold, float] = {}
        self._conditions_last_observed: dict[str, float] = {}
        self._met: list[Threshold] = []
        self.evicted: list[str] = []  # "namespace/name" in order (for tests and logs)

    # --- admission ------------------------------------------------------------------------
    def admit(self, pod: Obj) -> tuple[bool, str, str]:
        """(admitted, reason, message) for a pod arriving at this node now."""
        if not self.conditions or helpers.is_critical(pod):
            return True, "", ""
        only_memory = self.conditions == [helpers.MEMORY_PRESSURE]
        if only_memory and (
            helpers.qos_class(pod) != "BestEffort" or _tolerates_memory_pressure(pod)
        ):
            return True, "", ""
        return (
            False,
            helpers.REASON,
            helpers.NODE_CONDITION_MESSAGE.format(helpers.condition_list(self.conditions)),
        )

    # --- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            evicted: list[Obj] = []
            try:
                evicted = await self.synchronize()
            except (OSError, ValueError, protocol.RuntimeError_) as exc:
                log.error("Eviction manager: failed to synchronize: %s", exc)
            if evicted:
                await self._wait_cleanup(evicted)
            else:
                await asyncio.sleep(self.interval)

    async def _wait_cleanup(self, pods: list[Obj]) -> None:
        deadline = self.clock() + POD_CLEANUP_TIMEOUT
        while self.clock() < deadline:
            await asyncio.sleep(POD_CLEANUP_POLL)
            if all(self.cleaned_up(p) for p in pods):
                return
        log.info("Eviction manager: timed out waiting for pods to be cleaned up")

    def _active(self) -> list[Obj]:
        out = []
        for pod in self.pods():
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") or pod["metadata"].get("deletionTimestamp"):
                continue
            out.append(pod)
        return out

    async def synchronize(self) -> list[Obj]:
        """One round; the pods it evicted (at most one, but for local-storage breaches)."""
        if not self.thresholds and not self.local_storage_isolation:
            return []
        active = self._active()
        s = await self.summary()
        observations = helpers.observe(s)

        def stats(pod: Obj) -> summarymod.PodUsage | None:
            return s.pods.get(pod["metadata"]["uid"])

        met = helpers.thresholds_met(self.thresholds, observations, enforce_min_reclaim=False)
        if self._met:
            unresolved = helpers.thresholds_met(self._met, observations, enforce_min_reclaim=True)
            met += [t for t in unresolved if t not in met]
        now = self.clock()
        self._first_observed = {t: self._first_observed.get(t, now) for t in met}
        for name in helpers.node_conditions(met):
            self._conditions_last_observed[name] = now
        conditions = [
            c
            for c, at in self._conditions_last_observed.items()
            if now - at < self.pressure_transition_period
        ]
        order = [helpers.MEMORY_PRESSURE, helpers.DISK_PRESSURE, helpers.PID_PRESSURE]
        conditions.sort(key=order.index)
        if conditions != self.conditions:
            log.info("Eviction manager: node conditions now %s", conditions or "none")
            self.conditions = conditions
            if self.on_conditions is not None:
                self.on_conditions(conditions)
        due = [t for t, at in self._first_observed.items() if now - at >= t.grace_period]
        self._met = due

        if self.local_storage_isolation:
            evicted = await self._local_storage_eviction(active, stats)
            if evicted:
                return evicted
        if not due:
            return []
        due.sort(key=helpers.eviction_priority)
        target = due[0]
        resource = helpers.SIGNAL_RESOURCE[target.signal]
        log.info("Eviction manager: attempting to reclaim %s", resource)
        self.recorder.event(
            self.node_ref,
            events.WARNING,
            "EvictionThresholdMet",
            f"Attempting to reclaim {resource}",
        )
        if await self._reclaim_node_resources(target):
            log.info("Eviction manager: able to reduce %s pressure without evicting pods", resource)
            return []
        if not active:
            log.error("Eviction manager: eviction thresholds have been met, but no pods are active")
            return []
        ranked = helpers.rank(active, target.signal, stats, dedicated_imagefs=s.dedicated_imagefs)
        grace = IMMEDIATE_GRACE_SECONDS if target.hard else self.max_pod_grace_period
        for pod in ranked:
            # (upstream also puts the annotations on its event; our recorder has none)
            message, _annotations = helpers.eviction_message(
                resource, pod, stats, due, observations
            )
            condition = {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "TerminationByKubelet",
                "message": message,
            }
            if await self._evict(pod, grace, message, condition):
                return [pod]
        log.info("Eviction manager: unable to evict any pods from the node")
        return []

    async def _reclaim_node_resources(self, target: Threshold) -> bool:
        """Dead containers and unused images first; True if that ended every threshold."""
        s = await self.summary()
        dedicated = s.dedicated_imagefs
        funcs: list[Reclaimer] = []
        if target.signal.startswith(("nodefs", "containerfs")):
            funcs = [self.delete_unused_containers] if dedicated else [
                self.delete_unused_containers, self.delete_unused_images
            ]  # fmt: skip
        elif target.signal.startswith("imagefs"):
            funcs = [self.delete_unused_images] if dedicated else [
                self.delete_unused_containers, self.delete_unused_images
            ]  # fmt: skip
        if not funcs:
            return False
        for reclaim in funcs:
            try:
                await reclaim()
            except Exception as exc:  # a failed reclaim must not stop eviction
                log.info(
                    "Eviction manager: unexpected error when attempting to reduce pressure: %s", exc
                )
        after = helpers.observe(await self.summary())
        return not helpers.thresholds_met(self.thresholds, after, enforce_min_reclaim=True)

    async def _local_storage_eviction(self, pods: list[Obj], stats: helpers.Stats) -> list[Obj]:
        evicted = []
        for pod in pods:
            usage = stats(pod)
            if usage is None:
                continue
            message = _local_storage_breach(pod, usage)
            if message and await self._evict(pod, IMMEDIATE_GRACE_SECONDS, message, None):
                evicted.append(pod)
        return evicted

    async def _evict(self, pod: Obj, grace: int, message: str, condition: Obj | None) -> bool:
        md = pod["metadata"]
        if helpers.is_critical(pod):
            log.error(
                "Eviction manager: cannot evict a critical pod %s/%s",
                md.get("namespace"),
                md["name"],
            )
            return False
        self.recorder.event(pod, events.WARNING, helpers.REASON, message)
        log.info("Evicting pod %s/%s: %s", md.get("namespace"), md["name"], message)
        ok = await self.evict(pod, Eviction(grace, message, condition))
        if ok:
            self.evicted.append(f"{md.get('namespace')}/{md['name']}")
        return True


def _tolerates_memory_pressure(pod: Obj) -> bool:
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if t.get("effect") not in (None, "", "NoSchedule"):
            continue
        if t.get("operator") == "Exists" and not t.get("key"):
            return True
        if t.get("key") == "node.kubernetes.io/memory-pressure":
            return True
    return False


def _local_storage_breach(pod: Obj, usage: summarymod.PodUsage) -> str:
    """Upstream's emptyDir, pod and container checks, in its order; "" when none broke."""
    spec = pod.get("spec") or {}
    for vol in spec.get("volumes") or []:
        empty = vol.get("emptyDir")
        if empty is None or not (empty or {}).get("sizeLimit"):
            continue
        size = quantity.to_int(quantity.parse_quantity(empty["sizeLimit"]))
        used = usage.volumes.get(vol["name"])
        if used is not None and size > 0 and used.bytes > size:
            return helpers.EMPTYDIR_MESSAGE.format(
                vol["name"], quantity.canonicalize(empty["sizeLimit"])
            )
    containers = list(spec.get("containers") or [])
    limits = [helpers.limit(c, helpers.EPHEMERAL) for c in containers]
    if any(v is not None for v in limits):
        total_limit = sum(v or 0 for v in limits)
        if usage.disk() > total_limit:
            return helpers.POD_EPHEMERAL_MESSAGE.format(
                quantity.format_quantity(total_limit, quantity.BINARY_SI)
            )
    by_name = {c["name"]: c for c in containers}
    for c in usage.containers:
        container = by_name.get(c.name)
        if container is None:
            continue
        value = ((container.get("resources") or {}).get("limits") or {}).get(helpers.EPHEMERAL)
        if value is None:
            continue
        cap = quantity.to_int(quantity.parse_quantity(value))
        if cap and c.rootfs_bytes + c.logs_bytes > cap:
            return helpers.CONTAINER_EPHEMERAL_MESSAGE.format(c.name, quantity.canonicalize(value))
    return ""
