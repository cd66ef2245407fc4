"""The HPA table: TARGETS as kubectl 1.32 prints them, from v2 and from v1 objects."""

from __future__ import annotations

from typing import Any

from pilothouse.api import autoscaling_v1
from pilothouse.apiserver.table import autoscaling


def metric(name: str, **target: Any) -> dict[str, Any]:
    kind = "Utilization" if "averageUtilization" in target else "AverageValue"
    return {"type": "Resource", "resource": {"name": name, "target": {"type": kind, **target}}}


def current(name: str, **values: Any) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": name, "current": values}}


def test_targets_column() -> None:
    specs = [metric("cpu", averageUtilization=50), metric("memory", averageValue="100Mi")]
    assert autoscaling.format_metrics(specs, []) == "cpu: <unknown>/50%, memory: <unknown>/100Mi"
    statuses = [
        current("cpu", averageUtilization=45, averageValue="45m"),
        current("memory", averageValue="52428800"),
    ]
    assert autoscaling.format_metrics(specs, statuses) == "cpu: 45%/50%, memory: 52428800/100Mi"
    three = [
        *specs,
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "qps"},
                "target": {"type": "AverageValue", "averageValue": "10"},
            },
        },
    ]
    assert (
        autoscaling.format_metrics(three, statuses)
        == "cpu: 45%/50%, memory: 52428800/100Mi + 1 more..."
    )
    assert autoscaling.format_metrics([], []) == "<none>"


def test_cells_from_v2_and_v1() -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 5,
            "metrics": [metric("cpu", averageUtilization=50)],
        },
        "status": {
            "currentReplicas": 3,
            "desiredReplicas": 3,
            "currentMetrics": [current("cpu", averageUtilization=61)],
        },
    }
    now = 1767225600.0 + 90
    expected = ["web", "Deployment/web", "cpu: 61%/50%", "2", 5, 3, "90s"]
    assert autoscaling.hpa_cells(hpa, now) == expected
    assert autoscaling.hpa_cells(autoscaling_v1.to_v1(hpa), now) == expected
