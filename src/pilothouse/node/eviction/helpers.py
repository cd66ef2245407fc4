"""Eviction's rules, as upstream's ``eviction/helpers.go`` states them: signals observed
from a summary, thresholds met, the node conditions they raise, pods ranked for eviction,
and the messages an evicted pod carries. Pure functions; the manager holds the state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pilothouse.api import quantity
from pilothouse.node.eviction import summary as summarymod
from pilothouse.node.kubeletconfig import Threshold

Obj = dict[str, Any]

REASON = "Evicted"
NODE_LOW_MESSAGE = "The node was low on resource: {}. "
NODE_CONDITION_MESSAGE = "The node had condition: {}. "
THRESHOLD_MET_MESSAGE = "Threshold quantity: {}, available: {}. "
CONTAINER_MESSAGE = "Container {} was using {}, request is {}, has larger consumption of {}. "
CONTAINER_EPHEMERAL_MESSAGE = 'Container {} exceeded its local ephemeral storage limit "{}". '
POD_EPHEMERAL_MESSAGE = (
    "Pod ephemeral local storage usage exceeds the total limit of containers {}. "
)
EMPTYDIR_MESSAGE = 'Usage of EmptyDir volume "{}" exceeds the limit "{}". '

MEMORY, EPHEMERAL, INODES, PIDS = "memory", "ephemeral-storage", "inodes", "pids"
MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE = "MemoryPressure", "DiskPressure", "PIDPressure"

SIGNAL_CONDITION = {
    "memory.available": MEMORY_PRESSURE,
    "allocatableMemory.available": MEMORY_PRESSURE,
    "nodefs.available": DISK_PRESSURE,
    "nodefs.inodesFree": DISK_PRESSURE,
    "imagefs.available": DISK_PRESSURE,
    "imagefs.inodesFree": DISK_PRESSURE,
    "containerfs.available": DISK_PRESSURE,
    "containerfs.inodesFree": DISK_PRESSURE,
    "pid.available": PID_PRESSURE,
}
SIGNAL_RESOURCE = {
    "memory.available": MEMORY,
    "allocatableMemory.available": MEMORY,
    "nodefs.available": EPHEMERAL,
    "nodefs.inodesFree": INODES,
    "imagefs.available": EPHEMERAL,
    "imagefs.inodesFree": INODES,
    "containerfs.available": EPHEMERAL,
    "containerfs.inodesFree": INODES,
    "pid.available": PIDS,
}
# The format each resource's quantities print in (resource.BinarySI / DecimalSI).
_FORMAT = {MEMORY: quantity.BINARY_SI, EPHEMERAL: quantity.BINARY_SI}
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000


@dataclass(frozen=True)
class Observation:
    available: int
    capacity: int


Observations = dict[str, Observation]


def observe(s: summarymod.Summary) -> Observations:
    """Upstream's makeSignalObservations, for the signals this node can measure."""
    out: Observations = {
        "memory.available": Observation(
            max(0, s.memory_capacity - s.memory_working_set), s.memory_capacity
        ),
        "nodefs.available": Observation(s.nodefs.available, s.nodefs.capacity),
        "nodefs.inodesFree": Observation(s.nodefs.inodes_free, s.nodefs.inodes),
        "imagefs.available": Observation(s.imagefs.available, s.imagefs.capacity),
        "imagefs.inodesFree": Observation(s.imagefs.inodes_free, s.imagefs.inodes),
        "pid.available": Observation(max(0, s.pid_max - s.processes), s.pid_max),
    }
    # Containers' writable layers live with the node's data, whatever holds the images.
    out["containerfs.available"] = out["nodefs.available"]
    out["containerfs.inodesFree"] = out["nodefs.inodesFree"]
    return out


def thresholds_met(
    thresholds: Iterable[Threshold], observations: Observations, *, enforce_min_reclaim: bool
) -> list[Threshold]:
    out = []
    for t in thresholds:
        seen = observations.get(t.signal)
        if seen is None:
            continue
        wanted = t.value(seen.capacity)
        if enforce_min_reclaim:
            wanted += t.min_reclaim(seen.capacity)
        if wanted > seen.available:
            out.append(t)
    return out


def node_conditions(thresholds: Iterable[Threshold]) -> list[str]:
    out: list[str] = []
    for t in thresholds:
        condition = SIGNAL_CONDITION.get(t.signal)
        if condition is not None and condition not in out:
            out.append(condition)
    return out


def eviction_priority(t: Threshold) -> int:
    """Memory first, then everything that has a resource to reclaim."""
    if SIGNAL_RESOURCE.get(t.signal) == MEMORY:
        return 0
    return 1 if t.signal in SIGNAL_RESOURCE else 2


def format_quantity(value: int, resource: str) -> str:
    return quantity.format_quantity(value, _FORMAT.get(resource, quantity.DECIMAL_SI))


# --- pods ---------------------------------------------------------------------------------------
def priority(pod: Obj) -> int:
    value = (pod.get("spec") or {}).get("priority")
    return int(value) if value is not None else 0


def is_critical(pod: Obj) -> bool:
    """Upstream's IsCriticalPod: static/mirror pods or system-critical priority."""
    annotations = pod["metadata"].get("annotations") or {}
    if "kubernetes.io/config.mirror" in annotations:
        return True
    return priority(pod) >= SYSTEM_CRITICAL_PRIORITY


def qos_class(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("qosClass") or "BestEffort")


def request(pod: Obj, resource: str) -> int:
    """The pod's request of ``resource``: its containers' sum, or its biggest init
    container's when that is more (upstream's GetResourceRequestQuantity)."""
    spec = pod.get("spec") or {}

    def of(c: Obj) -> int:
        value = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        return quantity.to_int(quantity.parse_quantity(value)) if value is not None else 0

    total = sum(of(c) for c in spec.get("containers") or [])
    init = max((of(c) for c in spec.get("initContainers") or []), default=0)
    return max(total, init)


def limit(container: Obj, resource: str) -> int | None:
    value = ((container.get("resources") or {}).get("limits") or {}).get(resource)
    return quantity.to_int(quantity.parse_quantity(value)) if value is not None else None


@dataclass(frozen=True)
class DiskMeasure:
    """Which parts of a pod's storage count for a disk signal (upstream's fsStatsType)."""

    rootfs: bool = True
    logs: bool = True
    volumes: bool = True
    inodes: bool = False

    def of(self, usage: summarymod.PodUsage) -> int:
        if self.inodes:
            return usage.inodes(rootfs=self.rootfs, logs=self.logs, volumes=self.volumes)
        return usage.disk(rootfs=self.rootfs, logs=self.logs, volumes=self.volumes)


def disk_measure(signal: str, *, dedicated_imagefs: bool) -> DiskMeasure:
    """With images on their own filesystem, imagefs pressure is about images only and
    everything a pod writes is on the node filesystem; otherwise all of it counts."""
    inodes = signal.endswith("inodesFree")
    if dedicated_imagefs and signal.startswith("imagefs"):
        return DiskMeasure(rootfs=False, logs=False, volumes=False, inodes=inodes)
    return DiskMeasure(inodes=inodes)


Stats = Callable[[Obj], summarymod.PodUsage | None]


def _cmp_bool(a: bool, b: bool) -> int:
    """True sorts first."""
    return 0 if a == b else (-1 if a else 1)


def _by_priority(p1: Obj, p2: Obj) -> int:
    a, b = priority(p1), priority(p2)
    return (a > b) - (a < b)


def rank(pods: list[Obj], signal: str, stats: Stats, *, dedicated_imagefs: bool) -> list[Obj]:
    """Pods in the order upstream evicts them for ``signal``."""
    resource = SIGNAL_RESOURCE[signal]
    if resource == PIDS:
        return sorted(pods, key=functools.cmp_to_key(_by_priority))
    if resource == MEMORY:

        def usage(p: Obj, u: summarymod.PodUsage) -> int:
            return u.memory_working_set

        requested = MEMORY
    else:
        measure = disk_measure(signal, dedicated_imagefs=dedicated_imagefs)

        def usage(p: Obj, u: summarymod.PodUsage) -> int:
            return measure.of(u)

        requested = EPHEMERAL

    def exceeds(p1: Obj, p2: Obj) -> int:
        s1, s2 = stats(p1), stats(p2)
        if s1 is None or s2 is None:
            return _cmp_bool(s1 is None, s2 is None)  # no stats: first
        return _cmp_bool(
            usage(p1, s1) > request(p1, requested), usage(p2, s2) > request(p2, requested)
        )

    def consumption(p1: Obj, p2: Obj) -> int:
        s1, s2 = stats(p1), stats(p2)
        if s1 is None or s2 is None:
            return _cmp_bool(s1 is None, s2 is None)
        a = usage(p1, s1) - request(p1, requested)
        b = usage(p2, s2) - request(p2, requested)
        return (b > a) - (b < a)  # the larger consumer first

    def ordered(p1: Obj, p2: Obj) -> int:
        for cmp in (exceeds, _by_priority, consumption):
            result = cmp(p1, p2)
            if result:
                return result
        return 0

    return sorted(pods, key=functools.cmp_to_key(ordered))


def eviction_message(
    resource: str,
    pod: Obj,
    stats: Stats,
    thresholds: list[Threshold],
    observations: Observations,
) -> tuple[str, dict[str, str]]:
    """Upstream's evictionMessage: the resource, the threshold and what each container used."""
    message = NODE_LOW_MESSAGE.format(resource)
    annotations: dict[str, str] = {}
    for t in thresholds:
        if SIGNAL_RESOURCE.get(t.signal) == resource and t.signal in observations:
            seen = observations[t.signal]
            message += THRESHOLD_MET_MESSAGE.format(
                format_quantity(t.value(seen.capacity), resource),
                format_quantity(seen.available, resource),
            )
            break
    usage = stats(pod)
    if usage is None:
        return message, annotations
    spec = pod.get("spec") or {}
    containers = {
        c["name"]: c for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    }
    exceeded: list[str] = []
    used: list[str] = []
    for c in usage.containers:
        container = containers.get(c.name)
        if container is None:
            continue
        req = ((container.get("resources") or {}).get("requests") or {}).get(resource)
        requested = quantity.to_int(quantity.parse_quantity(req)) if req is not None else 0
        if resource == EPHEMERAL:
            amount = c.rootfs_bytes + c.logs_bytes
        elif resource == MEMORY:
            amount = c.memory_working_set
        else:
            continue
        if amount > requested:
            shown = format_quantity(amount, resource)
            message += CONTAINER_MESSAGE.format(
                c.name, shown, format_quantity(requested, resource), resource
            )
            exceeded.append(c.name)
            used.append(shown)
    annotations = {
        "offending_containers": ",".join(exceeded),
        "offending_containers_usage": ",".join(used),
        "starved_resource": resource,
    }
    return message, annotations


def condition_list(conditions: Iterable[str]) -> str:
    """How Go prints a []NodeConditionType: ``[MemoryPressure DiskPressure]``."""
    return "[" + " ".join(conditions) + "]"
