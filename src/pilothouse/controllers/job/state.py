"""What one Job sync works with: its dependencies and what it learned so far.

:class:`Deps` is what the files of this package need from the controller (client,
recorder, clock, expectations, back-off records, a way to requeue), so they do not
import the controller. :class:`SyncState` is built at the start of one ``sync`` and
handed from step to step; nothing in it outlives the sync. Conditions and pod
predicates shared by the steps live here too. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import meta, resources
from pilothouse.client import events, rest
from pilothouse.client.clock import Clock
from pilothouse.controllers import expectations as expectations_mod
from pilothouse.controllers.job import backoff, indexes, tracking

Obj = dict[str, Any]

COMPLETE = "Complete"
FAILED = "Failed"
FAILURE_TARGET = "FailureTarget"
SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
SUSPENDED = "Suspended"
CONTROLLER_NAME = "kubernetes.io/job-controller"


@dataclass
class Deps:
    client: rest.Client
    recorder: events.EventRecorder
    clock: Clock
    jobs: resources.Resource
    pods: resources.Resource
    expectations: expectations_mod.Expectations
    finalizers: tracking.FinalizerExpectations
    backoffs: backoff.Store
    enqueue_after: Callable[[str, float], None]


@dataclass
class SyncState:
    key: str
    job: Obj
    pods: list[Obj]
    active_pods: list[Obj]
    uncounted_succeeded: set[str]
    uncounted_failed: set[str]
    expected_removed: set[str]
    ready: int = 0
    terminating: int = 0
    succeeded: int = 0
    failed: int = 0
    finished: Obj | None = None
    prev_succeeded_indexes: indexes.Intervals = field(default_factory=indexes.Intervals)
    succeeded_indexes: indexes.Intervals = field(default_factory=indexes.Intervals)
    failed_indexes: indexes.Intervals | None = None
    new_backoff: backoff.Record = field(default_factory=backoff.Record)
    delayed_per_index: dict[int, Obj] = field(default_factory=dict)

    @property
    def spec(self) -> Obj:
        spec: Obj = self.job["spec"]
        return spec

    @property
    def status(self) -> Obj:
        status: Obj = self.job["status"]
        return status


# --- the Job --------------------------------------------------------------------------------
def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def has_backoff_limit_per_index(job: Obj) -> bool:
    return (job.get("spec") or {}).get("backoffLimitPerIndex") is not None


def suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def only_replace_failed(job: Obj) -> bool:
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def managed_elsewhere(job: Obj) -> bool:
    managed_by = (job.get("spec") or {}).get("managedBy")
    return managed_by is not None and managed_by != CONTROLLER_NAME


def find_condition(job: Obj, type_: str) -> Obj | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def is_finished(job: Obj) -> bool:
    return any(
        c.get("type") in (COMPLETE, FAILED) and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def condition(type_: str, reason: str, message: str, now: float, status: str = "True") -> Obj:
    stamp = meta.format_time(now)
    return {
        "type": type_,
        "status": status,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def ensure_condition(
    job: Obj, type_: str, status: str, reason: str, message: str, now: float
) -> bool:
    """Set a condition (upstream's ensureJobConditionStatus); False changes nothing when
    absent. Returns whether the list changed."""
    conditions = job["status"].setdefault("conditions", [])
    for i, c in enumerate(conditions):
        if c.get("type") == type_:
            if (c.get("status"), c.get("reason"), c.get("message")) != (status, reason, message):
                conditions[i] = condition(type_, reason, message, now, status)
                return True
            return False
    if status != "False":
        conditions.append(condition(type_, reason, message, now, status))
        return True
    return False


# --- pods -------------------------------------------------------------------------------------
def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_active(pod: Obj) -> bool:
    return phase(pod) not in ("Succeeded", "Failed") and not pod["metadata"].get(
        "deletionTimestamp"
    )


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) not in (
        "Succeeded",
        "Failed",
    )


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed, or — unless only failed pods are replaced — deleted before it succeeded
    (an orphan may never reach the Failed phase)."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != "Succeeded"


def is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def uid(obj: Obj) -> str:
    return str(obj["metadata"].get("uid", ""))


def active_pods_order(pod: Obj) -> tuple[Any, ...]:
    """Upstream's ActivePods order: the pods best deleted first sort first."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ready_since = None
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            ready_since = meta.parse_time(c.get("lastTransitionTime"))
    restarts = max(
        (int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or []),
        default=0,
    )
    created = meta.parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
    return (
        1 if spec.get("nodeName") else 0,
        {"Pending": 0, "Unknown": 1, "Running": 2}.get(phase(pod), 0),
        1 if ready_since is not None else 0,
        -(ready_since or 0.0),
        -restarts,
        -created,
    )
