"""autoscaling/v1 as a view of stored v2 HPAs: nothing is lost either way round."""

from __future__ import annotations

import json

from pilothouse.api import autoscaling_v1


def v2_hpa() -> dict:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "annotations": {"team": "a"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2,
            "maxReplicas": 5,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "100Mi"},
                    },
                },
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                },
            ],
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 30,
                    "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }
            },
        },
        "status": {
            "currentReplicas": 2,
            "desiredReplicas": 3,
            "currentMetrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "memory", "current": {"averageValue": "50Mi"}},
                },
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "current": {"averageUtilization": 75, "averageValue": "375m"},
                    },
                },
            ],
            "conditions": [
                {
                    "type": "AbleToScale",
                    "status": "True",
                    "reason": "ReadyForNewScale",
                    "message": "m",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    }


def test_v1_shows_cpu_and_carries_the_rest_in_annotations() -> None:
    v1 = autoscaling_v1.to_v1(v2_hpa())
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 2,
        "maxReplicas": 5,
        "targetCPUUtilizationPercentage": 50,
    }
    assert v1["status"] == {
        "currentReplicas": 2,
        "desiredReplicas": 3,
        "currentCPUUtilizationPercentage": 75,
    }
    annotations = v1["metadata"]["annotations"]
    assert annotations["team"] == "a"
    assert json.loads(annotations[autoscaling_v1.METRICS]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}
    ]
    assert json.loads(annotations[autoscaling_v1.CURRENT_METRICS]) == [
        {"type": "Resource", "resource": {"name": "memory", "currentAverageValue": "50Mi"}}
    ]
    assert json.loads(annotations[autoscaling_v1.CONDITIONS])[0]["reason"] == "ReadyForNewScale"
    assert (
        json.loads(annotations[autoscaling_v1.BEHAVIOR])["scaleDown"]["stabilizationWindowSeconds"]
        == 30
    )


def test_round_trip_through_v1_keeps_everything() -> None:
    original = v2_hpa()
    back = autoscaling_v1.to_v2(autoscaling_v1.to_v1(original))
    assert back["metadata"] == original["metadata"]
    assert back["spec"]["behavior"] == original["spec"]["behavior"]
    # CPU comes first in v1's shape; the set of metrics is the same.
    assert sorted(json.dumps(m, sort_keys=True) for m in back["spec"]["metrics"]) == sorted(
        json.dumps(m, sort_keys=True) for m in original["spec"]["metrics"]
    )
    assert back["status"]["conditions"] == original["status"]["conditions"]


def test_v1_without_target_has_no_metrics_until_defaulted() -> None:
    v2 = autoscaling_v1.to_v2(
        {
            "apiVersion": "autoscaling/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "x"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 3},
        }
    )
    assert "metrics" not in v2["spec"] and v2["apiVersion"] == "autoscaling/v2"
