"""How many replicas a resource metric asks for (upstream's ``replica_calculator.go``).

``desired = ceil(current usage / target * ready pods)``, unless the ratio is within the
tolerance (10 %) of 1. Pods are sorted first: being deleted or Failed — ignored;
Pending, or (for CPU) not yet ready or measured too soon after becoming ready —
unready; without a metric — missing. When pods are unready or missing, the ratio is
recomputed assuming the least favourable usage for the move (missing pods use 100 %
of their request on a scale-down and 0 % on a scale-up; unready pods 0 % on a
scale-up), and the move is dropped if that would reverse its direction or fall within
the tolerance. No I/O here: callers pass pods and metrics in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pilothouse.api import meta, quantity
from pilothouse.controllers.podautoscaler.metrics import PodMetric

Obj = dict[str, Any]

TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD_S = 300.0
DELAY_OF_INITIAL_READINESS_STATUS_S = 30.0


class ReplicaCalculationError(Exception):
    """The metric cannot give a replica count (upstream's error text)."""


@dataclass(frozen=True)
class Proposal:
    replicas: int
    utilization: int | None  # percent of request (Utilization targets)
    raw: int  # average usage in milli-units


def _ready_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def group_pods(
    pods: list[Obj], metrics: dict[str, PodMetric], resource: str, now: float
) -> tuple[int, set[str], set[str], set[str]]:
    """(ready count, unready, missing, ignored) pod names."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        phase = status.get("phase")
        if pod["metadata"].get("deletionTimestamp") or phase == "Failed":
            ignored.add(name)
            continue
        if phase == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu":
            condition = _ready_condition(pod)
            started = meta.parse_time(status.get("startTime"))
            if condition is None or started is None:
                not_ready = True
            else:
                transition = meta.parse_time(condition.get("lastTransitionTime")) or 0.0
                if started + CPU_INITIALIZATION_PERIOD_S > now:
                    # Just started: skip it while unready, or until a whole metric
                    # window has passed since it became ready.
                    not_ready = condition.get("status") == "False" or (
                        metric.timestamp < transition + metric.window
                    )
                else:
                    # Unready and never been ready since start: skip.
                    not_ready = (
                        condition.get("status") == "False"
                        and started + DELAY_OF_INITIAL_READINESS_STATUS_S > transition
                    )
            if not_ready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def pod_requests(pods: list[Obj], resource: str, container: str = "") -> dict[str, int]:
    """Each pod's request for ``resource`` in milli-units (the sum of its containers)."""
    out: dict[str, int] = {}
    for pod in pods:
        total = 0
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container and c.get("name") != container:
                continue
            request = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if request is None:
                if container:
                    continue
                raise ReplicaCalculationError(
                    f"missing request for {resource} in container {c.get('name')} of Pod "
                    f"{pod['metadata']['name']}"
                )
            total += quantity.milli(str(request))
        out[pod["metadata"]["name"]] = total
    return out


def utilization_ratio(
    metrics: dict[str, PodMetric], requests: dict[str, int], target: int
) -> tuple[float, int, int]:
    """(usage ratio, utilization %, average raw usage) over pods with a request."""
    used = requested = entities = 0
    for name, metric in metrics.items():
        if name in requests:
            used += metric.value
            requested += requests[name]
            entities += 1
    if requested == 0:
        raise ReplicaCalculationError("no metrics returned matched known pods")
    utilization = (used * 100) // requested
    return utilization / target, utilization, used // entities


def usage_ratio(metrics: dict[str, PodMetric], target: int) -> tuple[float, int]:
    total = sum(m.value for m in metrics.values())
    average = total // len(metrics)
    return average / target, average


def _prepare(
    pods: list[Obj], metrics: dict[str, PodMetric], resource: str, now: float
) -> tuple[dict[str, PodMetric], int, set[str], set[str]]:
    if not pods:
        raise ReplicaCalculationError(
            "no pods returned by selector while calculating replica count"
        )
    ready, unready, missing, ignored = group_pods(pods, metrics, resource, now)
    metrics = {k: v for k, v in metrics.items() if k not in ignored and k not in unready}
    if not metrics:
        raise ReplicaCalculationError(
            "did not receive metrics for targeted pods (pods might be unready)"
        )
    return metrics, ready, unready, missing


def _settle(
    current: int,
    ratio: float,
    new_ratio: float,
    count: int,
) -> int:
    if (
        abs(1.0 - new_ratio) <= TOLERANCE
        or (ratio < 1.0 and new_ratio > 1.0)
        or (ratio > 1.0 and new_ratio < 1.0)
    ):
        return current  # too small a change, or the direction would flip
    replicas = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def resource_replicas(
    *,
    current: int,
    target_utilization: int,
    resource: str,
    pods: list[Obj],
    metrics: dict[str, PodMetric],
    now: float,
    container: str = "",
) -> Proposal:
    """The replica count for an average-utilization target (percent of requests)."""
    metrics, ready, unready, missing = _prepare(pods, metrics, resource, now)
    requests = pod_requests(pods, resource, container)
    ratio, utilization, raw = utilization_ratio(metrics, requests, target_utilization)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= TOLERANCE:
            return Proposal(current, utilization, raw)
        return Proposal(math.ceil(ratio * ready), utilization, raw)
    metrics = dict(metrics)
    if missing:
        if ratio < 1.0:
            fallback = max(100, target_utilization)
            for name in missing:
                metrics[name] = PodMetric(requests.get(name, 0) * fallback // 100, 0.0, 0.0)
        elif ratio > 1.0:
            for name in missing:
                metrics[name] = PodMetric(0, 0.0, 0.0)
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = PodMetric(0, 0.0, 0.0)
    new_ratio, _, _ = utilization_ratio(metrics, requests, target_utilization)
    return Proposal(_settle(current, ratio, new_ratio, len(metrics)), utilization, raw)


def raw_resource_replicas(
    *,
    current: int,
    target_usage: int,
    resource: str,
    pods: list[Obj],
    metrics: dict[str, PodMetric],
    now: float,
) -> Proposal:
    """The replica count for an average-value target (milli-units per pod)."""
    metrics, ready, unready, missing = _prepare(pods, metrics, resource, now)
    ratio, usage = usage_ratio(metrics, target_usage)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= TOLERANCE:
            return Proposal(current, None, usage)
        return Proposal(math.ceil(ratio * ready), None, usage)
    metrics = dict(metrics)
    if missing:
        fill = target_usage if ratio < 1.0 else 0
        if ratio != 1.0:
            for name in missing:
                metrics[name] = PodMetric(fill, 0.0, 0.0)
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = PodMetric(0, 0.0, 0.0)
    new_ratio, _ = usage_ratio(metrics, target_usage)
    return Proposal(_settle(current, ratio, new_ratio, len(metrics)), None, usage)
