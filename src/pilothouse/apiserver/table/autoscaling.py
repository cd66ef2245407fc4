"""The table of HorizontalPodAutoscalers (a port of upstream's
``printHorizontalPodAutoscaler`` and ``formatHPAMetrics``).

TARGETS shows at most two metrics as ``<name>: <current>/<target>`` (``cpu:
45%/50%``), ``<unknown>`` until the controller has measured, and ``+ N more...``
beyond two. v1 objects are read through their v2 form, as upstream prints both
versions from one internal type.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import autoscaling_v1, quantity
from pilothouse.apiserver.table import timefmt
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

_EMPTY: dict[str, Any] = {}
_MAX_SHOWN = 2

HPA_COLUMNS = (
    column(
        "Name",
        "string",
        "Name must be unique within a namespace. Is required when creating resources, although "
        "some resources may allow a client to request the generation of an appropriate name "
        "automatically. Name is primarily intended for creation idempotence and configuration "
        "definition. Cannot be updated. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        format_="name",
    ),
    column(
        "Reference",
        "string",
        "reference to scaled resource; horizontal pod autoscaler will learn the current resource "
        "consumption and will set the desired number of pods by using its Scale subresource.",
    ),
    column(
        "Targets",
        "string",
        "metrics contains the specifications for which to use to calculate the desired replica "
        "count (the maximum replica count across all metrics will be used).  The desired replica "
        "count is calculated multiplying the ratio between the target value and the current value "
        "by the current number of pods.  Ergo, metrics used must decrease as the pod count is "
        "increased, and vice-versa.  See the individual metric source types for more information "
        "about how each type of metric must respond.",
    ),
    column(
        "MinPods",
        "string",
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can "
        "scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature "
        "gate HPAScaleToZero is enabled and at least one Object or External metric is configured. "
        " Scaling is active as long as at least one metric value is available.",
    ),
    column(
        "MaxPods",
        "string",
        "maxReplicas is the upper limit for the number of pods that can be set by the autoscaler; "
        "cannot be smaller than MinReplicas.",
    ),
    column(
        "Replicas",
        "string",
        "currentReplicas is current number of replicas of pods managed by this autoscaler, as last "
        "seen by the autoscaler.",
    ),
    column(
        "Age",
        "string",
        "CreationTimestamp is a timestamp representing the server time when this object was "
        "created. It is not guaranteed to be set in happens-before order across separate "
        "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
        "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
        "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    ),
)


def _q(value: Any) -> str:
    try:
        return quantity.canonicalize(value)
    except ValueError:
        return str(value)


def _current(statuses: list[Any], i: int, key: str) -> dict[str, Any]:
    if i < len(statuses) and isinstance(statuses[i], dict):
        return ((statuses[i].get(key) or _EMPTY).get("current")) or _EMPTY
    return _EMPTY


def _resource_target(spec: dict[str, Any], current: dict[str, Any]) -> str:
    name = spec.get("name", "")
    target = spec.get("target") or _EMPTY
    if target.get("averageValue") is not None:
        now = (
            _q(current["averageValue"]) if current.get("averageValue") is not None else "<unknown>"
        )
        return f"{name}: {now}/{_q(target['averageValue'])}"
    now = (
        f"{current['averageUtilization']}%"
        if current.get("averageUtilization") is not None
        else "<unknown>"
    )
    goal = (
        f"{target['averageUtilization']}%"
        if target.get("averageUtilization") is not None
        else "<auto>"
    )
    return f"{name}: {now}/{goal}"


def format_metrics(specs: list[Any], statuses: list[Any]) -> str:
    if not specs:
        return "<none>"
    shown: list[str] = []
    for i, spec in enumerate(specs):
        spec = spec if isinstance(spec, dict) else _EMPTY
        kind = spec.get("type")
        if kind == "External":
            ext = spec.get("external") or _EMPTY
            target = ext.get("target") or _EMPTY
            cur = _current(statuses, i, "external")
            if target.get("averageValue") is not None:
                now = (
                    _q(cur["averageValue"]) if cur.get("averageValue") is not None else "<unknown>"
                )
                shown.append(f"{now}/{_q(target['averageValue'])} (avg)")
            else:
                now = _q(cur["value"]) if cur.get("value") is not None else "<unknown>"
                shown.append(f"{now}/{_q(target.get('value'))}")
        elif kind == "Pods":
            target = (spec.get("pods") or _EMPTY).get("target") or _EMPTY
            cur = _current(statuses, i, "pods")
            now = _q(cur["averageValue"]) if cur.get("averageValue") is not None else "<unknown>"
            shown.append(f"{now}/{_q(target.get('averageValue'))}")
        elif kind == "Object":
            target = (spec.get("object") or _EMPTY).get("target") or _EMPTY
            cur = _current(statuses, i, "object")
            if target.get("averageValue") is not None:
                now = (
                    _q(cur["averageValue"]) if cur.get("averageValue") is not None else "<unknown>"
                )
                shown.append(f"{now}/{_q(target['averageValue'])} (avg)")
            else:
                now = _q(cur["value"]) if cur.get("value") is not None else "<unknown>"
                shown.append(f"{now}/{_q(target.get('value'))}")
        elif kind == "Resource":
            shown.append(
                _resource_target(spec.get("resource") or _EMPTY, _current(statuses, i, "resource"))
            )
        elif kind == "ContainerResource":
            shown.append(
                _resource_target(
                    spec.get("containerResource") or _EMPTY,
                    _current(statuses, i, "containerResource"),
                )
            )
        else:
            shown.append("<unknown type>")
    if len(shown) > _MAX_SHOWN:
        return f"{', '.join(shown[:_MAX_SHOWN])} + {len(shown) - _MAX_SHOWN} more..."
    return ", ".join(shown)


def hpa_cells(hpa: Object, now: float) -> Cells:
    if hpa.get("apiVersion") == "autoscaling/v1":
        hpa = autoscaling_v1.to_v2(hpa)
    meta = hpa.get("metadata") or _EMPTY
    spec = hpa.get("spec") or _EMPTY
    status = hpa.get("status") or _EMPTY
    ref = spec.get("scaleTargetRef") or _EMPTY
    minimum = spec.get("minReplicas")
    return [
        meta.get("name", ""),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        format_metrics(spec.get("metrics") or [], status.get("currentMetrics") or []),
        "<unset>" if minimum is None else str(minimum),
        int(spec.get("maxReplicas") or 0),
        int(status.get("currentReplicas") or 0),
        timefmt.since(meta.get("creationTimestamp"), now),
    ]


PRINTERS = {("autoscaling", "HorizontalPodAutoscaler"): Printer(HPA_COLUMNS, hpa_cells)}
