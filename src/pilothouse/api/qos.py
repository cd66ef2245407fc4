"""Pod quality-of-service classes (upstream: ``pkg/apis/core/helper/qos``).

Guaranteed: every container has CPU and memory limits, and requests equal
limits. BestEffort: no container requests or limits anything. Otherwise
Burstable. Init containers count; requests default to limits before this runs.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import quantity

_COMPUTE = ("cpu", "memory")


def pod_qos_class(pod: dict[str, Any]) -> str:
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        c_requests = {k: v for k, v in (res.get("requests") or {}).items() if k in _COMPUTE}
        c_limits = {k: v for k, v in (res.get("limits") or {}).items() if k in _COMPUTE}
        for name, value in c_requests.items():
            if _positive(value):
                requests[name] = value
        for name, value in c_limits.items():
            if _positive(value):
                limits[name] = value
        if (
            set(c_limits) != set(_COMPUTE)
            or not all(_positive(v) for v in c_limits.values())
            or any(
                name in c_requests and _parse(c_requests[name]) != _parse(c_limits[name])
                for name in _COMPUTE
            )
        ):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _parse(value: Any) -> Any:
    try:
        return quantity.parse_quantity(value)
    except ValueError:
        return None


def _positive(value: Any) -> bool:
    parsed = _parse(value)
    return parsed is not None and parsed > 0
