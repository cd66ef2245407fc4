"""autoscaling/v2 HorizontalPodAutoscalers (``pkg/apis/autoscaling/validation``).

Objects are validated in the stored v2 shape whichever version was written, so a v1
client's ``targetCPUUtilizationPercentage: 0`` is reported, as upstream reports it,
at ``spec.metrics[0].resource.target.averageUtilization``.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, quantity
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int

MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW_SECONDS = 3600
_SOURCE_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
_SELECT_POLICIES = ("Disabled", "Max", "Min")
_POLICY_TYPES = ("Percent", "Pods")
Obj = dict[str, Any]
_SOURCE_FIELDS = {
    "Object": "object",
    "Pods": "pods",
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "External": "external",
}


def _path_segment(value: str, path: str) -> list[FieldError]:
    return [errors.invalid_value(path, value, m) for m in names.name_is_path_segment(value, False)]


def validate_cross_version_object_reference(ref: Any, path: str) -> list[FieldError]:
    ref = as_dict(ref)
    errs: list[FieldError] = []
    kind, name = as_str(ref.get("kind")), as_str(ref.get("name"))
    if not kind:
        errs.append(errors.required(f"{path}.kind"))
    else:
        errs += _path_segment(kind, f"{path}.kind")
    if not name:
        errs.append(errors.required(f"{path}.name"))
    else:
        errs += _path_segment(name, f"{path}.name")
    return errs


def _sign(value: Any) -> int | None:
    if value is None:
        return None
    try:
        q = quantity.parse_quantity(value)
    except ValueError:
        return None
    return (q > 0) - (q < 0)


def _metric_target(target: Any, path: str) -> list[FieldError]:
    target = as_dict(target)
    errs: list[FieldError] = []
    kind = as_str(target.get("type"))
    if not kind:
        errs.append(errors.required(f"{path}.type", "must specify a metric target type"))
    if kind not in ("Utilization", "Value", "AverageValue"):
        errs.append(
            errors.invalid_value(
                f"{path}.type", kind, "must be either Utilization, Value, or AverageValue"
            )
        )
    for key in ("value", "averageValue"):
        if target.get(key) is not None and _sign(target[key]) != 1:
            errs.append(errors.invalid_value(f"{path}.{key}", target[key], "must be positive"))
    utilization = target.get("averageUtilization")
    if is_int(utilization) and utilization < 1:
        errs.append(
            errors.invalid_value(
                f"{path}.averageUtilization", utilization, "must be greater than 0"
            )
        )
    return errs


def _metric_identifier(metric: Any, path: str) -> list[FieldError]:
    name = as_str(as_dict(metric).get("name"))
    if not name:
        return [errors.required(f"{path}.name", "must specify a metric name")]
    return _path_segment(name, f"{path}.name")


def _resource_source(src: Obj, path: str, container: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    if not as_str(src.get("name")):
        errs.append(errors.required(f"{path}.name", "must specify a resource name"))
    if container:
        name = as_str(src.get("container"))
        if not name:
            errs.append(errors.required(f"{path}.container", "must specify a container"))
        else:
            errs += [
                errors.invalid_value(f"{path}.container", name, m)
                for m in names.is_dns1123_label(name)
            ]
    target = as_dict(src.get("target"))
    errs += _metric_target(target, f"{path}.target")
    if target.get("averageUtilization") is None and target.get("averageValue") is None:
        errs.append(
            errors.required(
                f"{path}.target.averageUtilization",
                "must set either a target raw value or a target utilization",
            )
        )
    if target.get("averageUtilization") is not None and target.get("averageValue") is not None:
        errs.append(
            errors.field_forbidden(
                f"{path}.target.averageValue",
                "may not set both a target raw value and a target utilization",
            )
        )
    return errs


def _source(kind: str, src: Obj, path: str) -> list[FieldError]:
    target = as_dict(src.get("target"))
    if kind in ("resource", "containerResource"):
        return _resource_source(src, path, kind == "containerResource")
    errs = _metric_identifier(src.get("metric"), f"{path}.metric")
    errs += _metric_target(target, f"{path}.target")
    if kind == "object":
        errs = (
            validate_cross_version_object_reference(
                src.get("describedObject"), f"{path}.describedObject"
            )
            + errs
        )
        if target.get("value") is None and target.get("averageValue") is None:
            errs.append(
                errors.required(
                    f"{path}.target.averageValue", "must set either a target value or averageValue"
                )
            )
    elif kind == "pods":
        if target.get("averageValue") is None:
            errs.append(
                errors.required(
                    f"{path}.target.averageValue", "must specify a positive target averageValue"
                )
            )
    elif kind == "external":
        if target.get("value") is None and target.get("averageValue") is None:
            errs.append(
                errors.required(
                    f"{path}.target.averageValue",
                    "must set either a target value for metric or a per-pod target",
                )
            )
        if target.get("value") is not None and target.get("averageValue") is not None:
            errs.append(
                errors.field_forbidden(
                    f"{path}.target.value",
                    "may not set both a target value for metric and a per-pod target",
                )
            )
    return errs


def _metric_spec(spec: Any, path: str) -> list[FieldError]:
    spec = as_dict(spec)
    errs: list[FieldError] = []
    kind = as_str(spec.get("type"))
    if not kind:
        errs.append(errors.required(f"{path}.type", "must specify a metric source type"))
    if kind not in _SOURCE_TYPES:
        errs.append(errors.not_supported(f"{path}.type", kind, _SOURCE_TYPES))
    present = [
        f
        for f in ("object", "external", "pods", "resource", "containerResource")
        if spec.get(f) is not None
    ]
    if present:
        errs += _source(present[0], as_dict(spec[present[0]]), f"{path}.{present[0]}")
    expected = _SOURCE_FIELDS.get(kind)
    if expected is not None and spec.get(expected) is None:
        errs.append(
            errors.required(
                f"{path}.{expected}", "must populate information for the given metric source"
            )
        )
    if len(present) != 1:
        for field in present:
            if field != expected:
                errs.append(
                    errors.field_forbidden(
                        f"{path}.{field}", "must populate the given metric source only"
                    )
                )
    return errs


def _scaling_rules(rules: Any, path: str) -> list[FieldError]:
    if rules is None:
        return []
    rules = as_dict(rules)
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if is_int(window) and window < 0:
        errs.append(
            errors.invalid_value(
                f"{path}.stabilizationWindowSeconds",
                window,
                "must be greater than or equal to zero",
            )
        )
    if is_int(window) and window > MAX_STABILIZATION_WINDOW_SECONDS:
        errs.append(
            errors.invalid_value(
                f"{path}.stabilizationWindowSeconds",
                window,
                f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}",
            )
        )
    select = rules.get("selectPolicy")
    if select is not None and select not in _SELECT_POLICIES:
        errs.append(errors.not_supported(f"{path}.selectPolicy", select, _SELECT_POLICIES))
    policies = as_list(rules.get("policies"))
    if not policies:
        errs.append(errors.required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        policy = as_dict(policy)
        ppath = f"{path}.policies[{i}]"
        if policy.get("type") not in _POLICY_TYPES:
            errs.append(
                errors.not_supported(f"{ppath}.type", as_str(policy.get("type")), _POLICY_TYPES)
            )
        value = policy.get("value")
        if not is_int(value) or value <= 0:
            errs.append(
                errors.invalid_value(f"{ppath}.value", value or 0, "must be greater than zero")
            )
        period = policy.get("periodSeconds")
        if not is_int(period) or period <= 0:
            errs.append(
                errors.invalid_value(
                    f"{ppath}.periodSeconds", period or 0, "must be greater than zero"
                )
            )
        elif period > MAX_PERIOD_SECONDS:
            errs.append(
                errors.invalid_value(
                    f"{ppath}.periodSeconds",
                    period,
                    f"must be less than or equal to {MAX_PERIOD_SECONDS}",
                )
            )
    return errs


def _spec(spec: Any) -> list[FieldError]:
    spec = as_dict(spec)
    errs: list[FieldError] = []
    minimum = spec.get("minReplicas")
    maximum = spec.get("maxReplicas")
    if is_int(minimum) and minimum < 1:
        errs.append(
            errors.invalid_value("spec.minReplicas", minimum, "must be greater than or equal to 1")
        )
    if not is_int(maximum) or maximum < 1:
        errs.append(
            errors.invalid_value("spec.maxReplicas", maximum or 0, "must be greater than 0")
        )
    if is_int(minimum) and is_int(maximum) and maximum < minimum:
        errs.append(
            errors.invalid_value(
                "spec.maxReplicas", maximum, "must be greater than or equal to `minReplicas`"
            )
        )
    errs += validate_cross_version_object_reference(
        spec.get("scaleTargetRef"), "spec.scaleTargetRef"
    )
    for i, metric in enumerate(as_list(spec.get("metrics"))):
        errs += _metric_spec(metric, f"spec.metrics[{i}]")
    behavior = spec.get("behavior")
    if behavior is not None:
        behavior = as_dict(behavior)
        errs += _scaling_rules(behavior.get("scaleUp"), "spec.behavior.scaleUp")
        errs += _scaling_rules(behavior.get("scaleDown"), "spec.behavior.scaleDown")
    return errs


def validate_horizontal_pod_autoscaler(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    return errs + _spec(obj.get("spec"))


def validate_horizontal_pod_autoscaler_update(
    new: dict[str, Any], old: dict[str, Any]
) -> list[FieldError]:
    return meta.validate_object_meta_update(new, old) + _spec(new.get("spec"))
