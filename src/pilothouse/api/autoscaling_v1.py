"""autoscaling/v1 HorizontalPodAutoscalers as views of stored autoscaling/v2 objects
(upstream's ``pkg/apis/autoscaling/v1/conversion.go``).

v1 knows one metric, ``targetCPUUtilizationPercentage``. What v2 holds beyond it
travels in annotations, as upstream carries it, so an object written through v1 and
read through v2 (or the reverse) loses nothing:

* ``autoscaling.alpha.kubernetes.io/metrics`` — the other metrics, in v1's MetricSpec
  shape (``targetAverageUtilization``, ``metricName`` …);
* ``autoscaling.alpha.kubernetes.io/current-metrics`` — their current values;
* ``autoscaling.alpha.kubernetes.io/conditions`` — ``status.conditions``;
* ``autoscaling.alpha.kubernetes.io/behavior`` — ``spec.behavior``.

No I/O here.
"""

from __future__ import annotations

import json
from typing import Any

from pilothouse.api import meta

Obj = dict[str, Any]

METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
_ANNOTATIONS = (METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR)


def _drop_none(d: Obj) -> Obj:
    return {k: v for k, v in d.items() if v is not None}


def _target_v2(value: Any, utilization: Any, average: Any) -> Obj:
    if utilization is not None:
        return {"type": "Utilization", "averageUtilization": utilization}
    if average is not None:
        return {"type": "AverageValue", "averageValue": average}
    return _drop_none({"type": "Value", "value": value})


def _metric_identifier(name: Any, selector: Any) -> Obj:
    return _drop_none({"name": name, "selector": selector})


def metric_spec_to_v2(spec: Obj) -> Obj:
    """One v1 (v2beta1-shaped) MetricSpec in v2's shape."""
    kind = spec.get("type")
    out: Obj = {"type": kind}
    if kind == "Resource" and isinstance(spec.get("resource"), dict):
        r = spec["resource"]
        out["resource"] = {
            "name": r.get("name"),
            "target": _target_v2(
                None, r.get("targetAverageUtilization"), r.get("targetAverageValue")
            ),
        }
    elif kind == "ContainerResource" and isinstance(spec.get("containerResource"), dict):
        r = spec["containerResource"]
        out["containerResource"] = {
            "name": r.get("name"),
            "container": r.get("container"),
            "target": _target_v2(
                None, r.get("targetAverageUtilization"), r.get("targetAverageValue")
            ),
        }
    elif kind == "Pods" and isinstance(spec.get("pods"), dict):
        p = spec["pods"]
        out["pods"] = {
            "metric": _metric_identifier(p.get("metricName"), p.get("selector")),
            "target": {"type": "AverageValue", "averageValue": p.get("targetAverageValue")},
        }
    elif kind == "Object" and isinstance(spec.get("object"), dict):
        o = spec["object"]
        out["object"] = {
            "describedObject": o.get("target"),
            "metric": _metric_identifier(o.get("metricName"), o.get("selector")),
            "target": _target_v2(o.get("targetValue"), None, o.get("averageValue")),
        }
    elif kind == "External" and isinstance(spec.get("external"), dict):
        e = spec["external"]
        out["external"] = {
            "metric": _metric_identifier(e.get("metricName"), e.get("metricSelector")),
            "target": _target_v2(e.get("targetValue"), None, e.get("targetAverageValue")),
        }
    return out


def metric_spec_to_v1(spec: Obj) -> Obj:
    kind = spec.get("type")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        r = spec.get(key) or {}
        target = r.get("target") or {}
        out[key] = _drop_none(
            {
                "name": r.get("name"),
                "container": r.get("container") if kind == "ContainerResource" else None,
                "targetAverageUtilization": target.get("averageUtilization"),
                "targetAverageValue": target.get("averageValue"),
            }
        )
    elif kind == "Pods":
        p = spec.get("pods") or {}
        out["pods"] = _drop_none(
            {
                "metricName": (p.get("metric") or {}).get("name"),
                "selector": (p.get("metric") or {}).get("selector"),
                "targetAverageValue": (p.get("target") or {}).get("averageValue"),
            }
        )
    elif kind == "Object":
        o = spec.get("object") or {}
        out["object"] = _drop_none(
            {
                "target": o.get("describedObject"),
                "metricName": (o.get("metric") or {}).get("name"),
                "selector": (o.get("metric") or {}).get("selector"),
                "targetValue": (o.get("target") or {}).get("value"),
                "averageValue": (o.get("target") or {}).get("averageValue"),
            }
        )
    elif kind == "External":
        e = spec.get("external") or {}
        out["external"] = _drop_none(
            {
                "metricName": (e.get("metric") or {}).get("name"),
                "metricSelector": (e.get("metric") or {}).get("selector"),
                "targetValue": (e.get("target") or {}).get("value"),
                "targetAverageValue": (e.get("target") or {}).get("averageValue"),
            }
        )
    return out


def metric_status_to_v1(status: Obj) -> Obj:
    kind = status.get("type")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        r = status.get(key) or {}
        current = r.get("current") or {}
        out[key] = _drop_none(
            {
                "name": r.get("name"),
                "container": r.get("container") if kind == "ContainerResource" else None,
                "currentAverageUtilization": current.get("averageUtilization"),
                "currentAverageValue": current.get("averageValue"),
            }
        )
    elif kind == "Pods":
        p = status.get("pods") or {}
        out["pods"] = _drop_none(
            {
                "metricName": (p.get("metric") or {}).get("name"),
                "selector": (p.get("metric") or {}).get("selector"),
                "currentAverageValue": (p.get("current") or {}).get("averageValue"),
            }
        )
    elif kind == "Object":
        o = status.get("object") or {}
        out["object"] = _drop_none(
            {
                "target": o.get("describedObject"),
                "metricName": (o.get("metric") or {}).get("name"),
                "selector": (o.get("metric") or {}).get("selector"),
                "currentValue": (o.get("current") or {}).get("value"),
                "averageValue": (o.get("current") or {}).get("averageValue"),
            }
        )
    elif kind == "External":
        e = status.get("external") or {}
        out["external"] = _drop_none(
            {
                "metricName": (e.get("metric") or {}).get("name"),
                "metricSelector": (e.get("metric") or {}).get("selector"),
                "currentValue": (e.get("current") or {}).get("value"),
                "currentAverageValue": (e.get("current") or {}).get("averageValue"),
            }
        )
    return out


def metric_status_to_v2(status: Obj) -> Obj:
    kind = status.get("type")
    out: Obj = {"type": kind}
    if kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        r = status.get(key) or {}
        out[key] = _drop_none(
            {
                "name": r.get("name"),
                "container": r.get("container") if kind == "ContainerResource" else None,
                "current": _drop_none(
                    {
                        "averageUtilization": r.get("currentAverageUtilization"),
                        "averageValue": r.get("currentAverageValue"),
                    }
                ),
            }
        )
    elif kind == "Pods":
        p = status.get("pods") or {}
        out["pods"] = {
            "metric": _metric_identifier(p.get("metricName"), p.get("selector")),
            "current": _drop_none({"averageValue": p.get("currentAverageValue")}),
        }
    elif kind == "Object":
        o = status.get("object") or {}
        out["object"] = {
            "describedObject": o.get("target"),
            "metric": _metric_identifier(o.get("metricName"), o.get("selector")),
            "current": _drop_none(
                {"value": o.get("currentValue"), "averageValue": o.get("averageValue")}
            ),
        }
    elif kind == "External":
        e = status.get("external") or {}
        out["external"] = {
            "metric": _metric_identifier(e.get("metricName"), e.get("metricSelector")),
            "current": _drop_none(
                {"value": e.get("currentValue"), "averageValue": e.get("currentAverageValue")}
            ),
        }
    return out


def _is_cpu_utilization(metric: Obj) -> bool:
    resource = metric.get("resource") or {}
    return (
        metric.get("type") == "Resource"
        and resource.get("name") == "cpu"
        and (resource.get("target") or {}).get("averageUtilization") is not None
    )


def _load(annotations: Obj, key: str) -> Any:
    raw = annotations.pop(key, None)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def to_v2(obj: Obj) -> Obj:
    """A v1 object (as sent by a client) in the stored v2 shape."""
    out = meta.deep_copy(obj)
    out["apiVersion"] = "autoscaling/v2"
    md = out.setdefault("metadata", {})
    annotations = dict(md.get("annotations") or {})
    raw_spec = out.get("spec")
    spec: Obj = raw_spec if isinstance(raw_spec, dict) else {}
    v2_spec: Obj = {
        k: v for k, v in spec.items() if k in ("scaleTargetRef", "minReplicas", "maxReplicas")
    }
    metrics: list[Obj] = []
    cpu = spec.get("targetCPUUtilizationPercentage")
    if cpu is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": cpu},
                },
            }
        )
    others = _load(annotations, METRICS)
    if isinstance(others, list):
        metrics.extend(metric_spec_to_v2(m) for m in others if isinstance(m, dict))
    if metrics:
        v2_spec["metrics"] = metrics
    behavior = _load(annotations, BEHAVIOR)
    if isinstance(behavior, dict):
        v2_spec["behavior"] = behavior
    out["spec"] = v2_spec
    raw_status = out.get("status")
    status: Obj | None = raw_status if isinstance(raw_status, dict) else None
    current = _load(annotations, CURRENT_METRICS)
    conditions = _load(annotations, CONDITIONS)
    if status is not None:
        v2_status: Obj = {
            k: v
            for k, v in status.items()
            if k in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas")
        }
        current_metrics: list[Obj] = []
        if status.get("currentCPUUtilizationPercentage") is not None:
            current_metrics.append(
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "current": {
                            "averageUtilization": status["currentCPUUtilizationPercentage"]
                        },
                    },
                }
            )
        if isinstance(current, list):
            current_metrics.extend(metric_status_to_v2(m) for m in current if isinstance(m, dict))
        if current_metrics:
            v2_status["currentMetrics"] = current_metrics
        if isinstance(conditions, list):
            v2_status["conditions"] = conditions
        out["status"] = v2_status
    _set_annotations(md, annotations)
    return out


def to_v1(obj: Obj) -> Obj:
    """A stored v2 object as autoscaling/v1 shows it."""
    out = meta.deep_copy(obj)
    out["apiVersion"] = "autoscaling/v1"
    md = out.setdefault("metadata", {})
    annotations = {k: v for k, v in (md.get("annotations") or {}).items() if k not in _ANNOTATIONS}
    spec = out.get("spec") or {}
    v1_spec: Obj = {
        k: v for k, v in spec.items() if k in ("scaleTargetRef", "minReplicas", "maxReplicas")
    }
    others: list[Obj] = []
    for metric in spec.get("metrics") or []:
        if "targetCPUUtilizationPercentage" not in v1_spec and _is_cpu_utilization(metric):
            v1_spec["targetCPUUtilizationPercentage"] = metric["resource"]["target"][
                "averageUtilization"
            ]
        else:
            others.append(metric_spec_to_v1(metric))
    if others:
        annotations[METRICS] = json.dumps(others, separators=(",", ":"))
    if spec.get("behavior") is not None:
        annotations[BEHAVIOR] = json.dumps(spec["behavior"], separators=(",", ":"))
    out["spec"] = v1_spec
    status = out.get("status")
    if isinstance(status, dict):
        v1_status: Obj = {
            k: v
            for k, v in status.items()
            if k in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas")
        }
        v1_status.setdefault("currentReplicas", 0)
        v1_status.setdefault("desiredReplicas", 0)
        current_others: list[Obj] = []
        for metric in status.get("currentMetrics") or []:
            resource = metric.get("resource") or {}
            utilization = (resource.get("current") or {}).get("averageUtilization")
            if (
                metric.get("type") == "Resource"
                and resource.get("name") == "cpu"
                and utilization is not None
                and "currentCPUUtilizationPercentage" not in v1_status
            ):
                v1_status["currentCPUUtilizationPercentage"] = utilization
            else:
                current_others.append(metric_status_to_v1(metric))
        if current_others:
            annotations[CURRENT_METRICS] = json.dumps(current_others, separators=(",", ":"))
        if status.get("conditions"):
            annotations[CONDITIONS] = json.dumps(status["conditions"], separators=(",", ":"))
        out["status"] = v1_status
    _set_annotations(md, annotations)
    return out


def _set_annotations(md: Obj, annotations: Obj) -> None:
    if annotations:
        md["annotations"] = annotations
    else:
        md.pop("annotations", None)
