"""Defaults of autoscaling/v2 HorizontalPodAutoscalers (``pkg/apis/autoscaling/v2/defaults.go``).

``minReplicas`` 1; no metrics means 80 % average CPU utilization; a ``behavior``
that is given is completed with upstream's rules: scale up without stabilization by
at most 4 pods or 100 % per 15 s (whichever is more), scale down after a 300 s
window by up to 100 % per 15 s. Objects are kept in v2, so v1 writes get these too.
"""

from __future__ import annotations

from typing import Any

DEFAULT_CPU_UTILIZATION = 80


def scale_up_rules(rules: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(rules or {})
    if not out.get("policies"):
        out["policies"] = [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ]
    if out.get("selectPolicy") is None:
        out["selectPolicy"] = "Max"
    if out.get("stabilizationWindowSeconds") is None:
        out["stabilizationWindowSeconds"] = 0
    return out


def scale_down_rules(rules: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(rules or {})
    if not out.get("policies"):
        out["policies"] = [{"type": "Percent", "value": 100, "periodSeconds": 15}]
    if out.get("selectPolicy") is None:
        out["selectPolicy"] = "Max"
    if out.get("stabilizationWindowSeconds") is None:
        out["stabilizationWindowSeconds"] = 300
    return out


def horizontal_pod_autoscaler(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": DEFAULT_CPU_UTILIZATION,
                    },
                },
            }
        ]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = scale_up_rules(behavior.get("scaleUp"))
        behavior["scaleDown"] = scale_down_rules(behavior.get("scaleDown"))
