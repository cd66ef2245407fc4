"""ResourceQuotas and LimitRanges (upstream ``ValidateResourceQuota*`` and ``ValidateLimitRange``)."""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, limitrange, quantity
from pilothouse.api.errors import FieldError
from pilothouse.api.quota import evaluators
from pilothouse.api.validation import meta, names, resources
from pilothouse.api.validation.fields import as_dict, as_list, as_str

INVALID_QUOTA_RESOURCE = "must be a standard resource for quota"
_IMMUTABLE = "field is immutable"
_EXISTS_ONLY = (
    "must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, "
    "ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, "
    "ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity"
)
_CONFLICTING = (
    frozenset({evaluators.BEST_EFFORT, evaluators.NOT_BEST_EFFORT}),
    frozenset({evaluators.TERMINATING, evaluators.NOT_TERMINATING}),
)


def quota_resource_name(name: str, path: str) -> list[FieldError]:
    """ValidateResourceQuotaResourceName: a resource name, and one quota knows when it
    has no domain (``foo`` fails both ways, as upstream reports it)."""
    errs = resources.validate_resource_name(name, path)
    if "/" not in name and not evaluators.is_standard_quota_resource(name):
        errs.append(errors.invalid_value(path, name, INVALID_QUOTA_RESOURCE))
    return errs


def _qualified(name: str, path: str) -> list[FieldError]:
    return [errors.invalid_value(path, name, m) for m in names.is_qualified_name(name)]


def _resource_list(raw: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for name, value in as_dict(raw).items():
        field = f"{path}[{name}]"
        errs.extend(quota_resource_name(name, field))
        q, bad = resources.parse_or_error(value, field)
        errs.extend(bad)
        if q is not None:
            errs.extend(resources.validate_quantity_value(name, q, field))
    return errs


def _go_list(values: Any) -> errors.GoValue:
    """A scopes list as Go's ``%#v`` prints it (``(nil)`` when absent)."""
    if not isinstance(values, list):
        return errors.go_string_list(None, "[]core.ResourceQuotaScope")
    return errors.go_string_list([as_str(v) for v in values], "[]core.ResourceQuotaScope")


def _scopes(spec: dict[str, Any]) -> list[FieldError]:
    scopes = [as_str(s) for s in as_list(spec.get("scopes"))]
    if not scopes:
        return []
    errs: list[FieldError] = []
    hard = sorted(as_dict(spec.get("hard")))
    shown = _go_list(scopes)
    for scope in scopes:
        if scope not in evaluators.STANDARD_SCOPES:
            errs.append(errors.invalid_value("spec.scopes", shown, "unsupported scope"))
        for name in hard:
            if evaluators.is_standard_quota_resource(
                name
            ) and not evaluators.scope_valid_for_resource(scope, name):
                errs.append(
                    errors.invalid_value(
                        "spec.scopes", shown, "unsupported scope applied to resource"
                    )
                )
    for pair in _CONFLICTING:
        if pair <= set(scopes):
            errs.append(errors.invalid_value("spec.scopes", shown, "conflicting scopes"))
    return errs


def _scope_selector(spec: dict[str, Any]) -> list[FieldError]:
    selector = spec.get("scopeSelector")
    if not isinstance(selector, dict):
        return []
    path = "spec.scopeSelector.matchExpressions"
    errs: list[FieldError] = []
    hard = sorted(as_dict(spec.get("hard")))
    seen: set[str] = set()
    for req in as_list(selector.get("matchExpressions")):
        req = as_dict(req)
        scope = as_str(req.get("scopeName"))
        op = as_str(req.get("operator"))
        values = as_list(req.get("values"))
        if scope not in evaluators.STANDARD_SCOPES:
            errs.append(errors.invalid_value(f"{path}.scopeName", scope, "unsupported scope"))
        for name in hard:
            if evaluators.is_standard_quota_resource(
                name
            ) and not evaluators.scope_valid_for_resource(scope, name):
                errs.append(
                    errors.invalid_value(
                        path,
                        errors.GoValue(_go_selector(selector)),
                        "unsupported scope applied to resource",
                    )
                )
        if (
            scope
            in (
                evaluators.BEST_EFFORT,
                evaluators.NOT_BEST_EFFORT,
                evaluators.TERMINATING,
                evaluators.NOT_TERMINATING,
                evaluators.CROSS_NAMESPACE_POD_AFFINITY,
            )
            and op != "Exists"
        ):
            errs.append(errors.invalid_value(f"{path}.operator", op, _EXISTS_ONLY))
        if op in ("In", "NotIn"):
            if not values:
                errs.append(
                    errors.required(
                        f"{path}.values",
                        "must be at least one value when `operator` is 'In' or 'NotIn' for "
                        "scope selector",
                    )
                )
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(
                    errors.invalid_value(
                        f"{path}.values",
                        errors.go_string_list([as_str(v) for v in values]),
                        "must be no value when `operator` is 'Exist' or 'DoesNotExist' for "
                        "scope selector",
                    )
                )
        else:
            errs.append(
                errors.invalid_value(f"{path}.operator", op, "not a valid selector operator")
            )
        seen.add(scope)
    for pair in _CONFLICTING:
        if pair <= seen:
            errs.append(
                errors.invalid_value(path, _go_list(spec.get("scopes")), "conflicting scopes")
            )
    return errs


def _go_selector(selector: dict[str, Any]) -> str:
    parts = []
    for req in as_list(selector.get("matchExpressions")):
        req = as_dict(req)
        values = " ".join(as_str(v) for v in as_list(req.get("values")))
        parts.append(
            f"{{ScopeName:{as_str(req.get('scopeName'))} Operator:{as_str(req.get('operator'))} "
            f"Values:[{values}]}}"
        )
    return "&ScopeSelector{MatchExpressions:[" + " ".join(parts) + "]}"


def validate_resource_quota_spec(spec: Any) -> list[FieldError]:
    spec = as_dict(spec)
    errs = _resource_list(spec.get("hard"), "spec.hard")
    errs += _scopes(spec)
    errs += _scope_selector(spec)
    return errs


def _status(status: Any) -> list[FieldError]:
    status = as_dict(status)
    return _resource_list(status.get("hard"), "status.hard") + _resource_list(
        status.get("used"), "status.used"
    )


def validate_resource_quota(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    errs += validate_resource_quota_spec(obj.get("spec"))
    errs += _status(obj.get("status"))
    return errs


def validate_resource_quota_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    errs += validate_resource_quota_spec(new.get("spec"))
    new_scopes = {as_str(s) for s in as_list(as_dict(new.get("spec")).get("scopes"))}
    old_scopes = {as_str(s) for s in as_list(as_dict(old.get("spec")).get("scopes"))}
    if new_scopes != old_scopes:
        errs.append(
            errors.invalid_value(
                "spec.scopes", _go_list(as_dict(new.get("spec")).get("scopes")), _IMMUTABLE
            )
        )
    return errs


def validate_resource_quota_status_update(
    new: dict[str, Any], old: dict[str, Any]
) -> list[FieldError]:
    errs: list[FieldError] = []
    if not as_str(as_dict(new.get("metadata")).get("resourceVersion")):
        errs.append(errors.required("resourceVersion"))
    return errs + _status(new.get("status"))


# --- LimitRange ---------------------------------------------------------------------


def _limit_type(value: str, path: str) -> list[FieldError]:
    errs = _qualified(value, path)
    if errs:
        return errs
    if "/" not in value and value not in limitrange.STANDARD_TYPES:
        return [
            errors.invalid_value(path, value, "must be a standard limit type or fully qualified")
        ]
    return []


def _limit_resource_name(kind: str, name: str, path: str) -> list[FieldError]:
    if kind in (limitrange.POD, limitrange.CONTAINER):
        return resources.validate_container_resource_name(name, path)
    return resources.validate_resource_name(name, path)


def _q(value: quantity.Quantity) -> str:
    return str(value)


def validate_limit_range(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=True, name_fn=names.name_is_dns_subdomain)
    seen_types: set[str] = set()
    for i, raw in enumerate(as_list(as_dict(obj.get("spec")).get("limits"))):
        item = as_dict(raw)
        kind = as_str(item.get("type"))
        errs += _limit_type(kind, f"spec.limits[{i}].type")
        if kind in seen_types:
            errs.append(errors.duplicate(f"spec.limits[{i}].type", kind))
        seen_types.add(kind)
        errs += _limit_item(f"spec.limits[{i}]", kind, item)
    return errs


def _limit_item(path: str, kind: str, item: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    parsed: dict[str, dict[str, quantity.Quantity]] = {}
    keys: list[str] = []

    def collect(field: str) -> None:
        values: dict[str, quantity.Quantity] = {}
        for name, raw_value in as_dict(item.get(field)).items():
            fpath = f"{path}.{field}[{name}]"
            errs.extend(_limit_resource_name(kind, name, fpath))
            q, bad = resources.parse_or_error(raw_value, fpath)
            errs.extend(bad)
            if name not in keys:
                keys.append(name)
            if q is not None:
                values[name] = q
        parsed[field] = values

    collect("max")
    collect("min")
    if kind == limitrange.POD:
        for field in ("default", "defaultRequest"):
            parsed[field] = {}
            if as_dict(item.get(field)):
                errs.append(
                    errors.field_forbidden(
                        f"{path}.{field}", "may not be specified when `type` is 'Pod'"
                    )
                )
    else:
        collect("default")
        collect("defaultRequest")
    if kind == limitrange.PERSISTENT_VOLUME_CLAIM and not (
        "storage" in as_dict(item.get("min")) or "storage" in as_dict(item.get("max"))
    ):
        errs.append(
            errors.required(
                f"{path}.limits",
                "either minimum or maximum storage value is required, but neither was provided",
            )
        )
    collect("maxLimitRequestRatio")
    return errs + _limit_consistency(path, keys, parsed)


def _limit_consistency(
    path: str, keys: list[str], parsed: dict[str, dict[str, quantity.Quantity]]
) -> list[FieldError]:
    errs: list[FieldError] = []
    for k in keys:
        lo, hi = parsed["min"].get(k), parsed["max"].get(k)
        default, default_req = parsed["default"].get(k), parsed["defaultRequest"].get(k)
        ratio = parsed["maxLimitRequestRatio"].get(k)
        if lo is not None and hi is not None and lo.value > hi.value:
            errs.append(
                errors.invalid_value(
                    f"{path}.min[{k}]", _q(lo), f"min value {lo} is greater than max value {hi}"
                )
            )
        if default_req is not None and lo is not None and lo.value > default_req.value:
            errs.append(
                errors.invalid_value(
                    f"{path}.defaultRequest[{k}]",
                    _q(default_req),
                    f"min value {lo} is greater than default request value {default_req}",
                )
            )
        if default_req is not None and hi is not None and default_req.value > hi.value:
            errs.append(
                errors.invalid_value(
                    f"{path}.defaultRequest[{k}]",
                    _q(default_req),
                    f"default request value {default_req} is greater than max value {hi}",
                )
            )
        if default_req is not None and default is not None and default_req.value > default.value:
            errs.append(
                errors.invalid_value(
                    f"{path}.defaultRequest[{k}]",
                    _q(default_req),
                    f"default request value {default_req} is greater than default limit value "
                    f"{default}",
                )
            )
        if default is not None and lo is not None and lo.value > default.value:
            errs.append(
                errors.invalid_value(
                    f"{path}.default[{k}]",
                    _q(lo),
                    f"min value {lo} is greater than default value {default}",
                )
            )
        if default is not None and hi is not None and default.value > hi.value:
            errs.append(
                errors.invalid_value(
                    f"{path}.default[{k}]",
                    _q(hi),
                    f"default value {default} is greater than max value {hi}",
                )
            )
        if ratio is not None and ratio.value < 1:
            errs.append(
                errors.invalid_value(
                    f"{path}.maxLimitRequestRatio[{k}]", _q(ratio), f"ratio {ratio} is less than 1"
                )
            )
        if ratio is not None and lo is not None and hi is not None and lo.value > 0:
            allowed = float(hi.value / lo.value)
            if float(ratio.value) > allowed:
                errs.append(
                    errors.invalid_value(
                        f"{path}.maxLimitRequestRatio[{k}]",
                        _q(ratio),
                        f"ratio {ratio} is greater than max/min = {allowed:.6f}",
                    )
                )
        if (
            not resources.is_overcommit_allowed(k)
            and default is not None
            and default_req is not None
            and default.value != default_req.value
        ):
            errs.append(
                errors.invalid_value(
                    f"{path}.defaultRequest[{k}]",
                    _q(default_req),
                    f"default value {default} must equal to defaultRequest value {default_req} "
                    f"in {k}",
                )
            )
    return errs


def validate_limit_range_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return meta.validate_object_meta_update(new, old) + validate_limit_range(new)
