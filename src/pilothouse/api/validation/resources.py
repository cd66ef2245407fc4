"""Resource names and quantities: container requests/limits, capacities, storage sizes.

The predicates follow ``pkg/apis/core/helper`` (standard, native, extended, hugepage
resource names); the validators follow ``ValidateResourceQuantityValue`` and
``validateResourceRequirements`` in core validation.
"""

from __future__ import annotations

import functools
from typing import Any

from pilothouse.api import errors, quantity
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import names
from pilothouse.api.validation.fields import as_dict, as_list, as_str

_HUGEPAGES = "hugepages-"
_REQUESTS_PREFIX = "requests."
_STANDARD_CONTAINER = frozenset({"cpu", "memory", "ephemeral-storage"})
_STANDARD = frozenset(
    {
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "persistentvolumeclaims",
        "configmaps",
        "services.nodeports",
        "services.loadbalancers",
        "storage",
        "requests.storage",
    }
)
_INTEGER = frozenset(
    {
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "services.nodeports",
        "services.loadbalancers",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
    }
)
IS_NOT_INTEGER = "must be an integer"
IS_NOT_POSITIVE = "must be greater than zero"
_NEGATIVE = "must be greater than or equal to 0"


def is_hugepage(name: str) -> bool:
    return name.startswith(_HUGEPAGES)


def is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_extended(name: str) -> bool:
    if is_native(name) or name.startswith(_REQUESTS_PREFIX):
        return False
    return not names.is_qualified_name(_REQUESTS_PREFIX + name)


def is_standard_container_resource(name: str) -> bool:
    return name in _STANDARD_CONTAINER or is_hugepage(name)


def is_standard_resource(name: str) -> bool:
    return name in _STANDARD or is_hugepage(name) or name.startswith("requests.hugepages-")


def is_overcommit_allowed(name: str) -> bool:
    return is_native(name) and not is_hugepage(name)


def is_integer_resource(name: str) -> bool:
    return name in _INTEGER or is_extended(name)


@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> quantity.Quantity:
    # Quantities are immutable and pods repeat the same few spellings.
    return quantity.parse(text)


def parse_or_error(value: Any, path: str) -> tuple[quantity.Quantity | None, list[FieldError]]:
    """Parse a quantity; a bad one is reported the way upstream's decoder reports it."""
    try:
        return (_parse_text(value) if type(value) is str else quantity.parse(value)), []
    except quantity.QuantityError as exc:
        shown = value if isinstance(value, str | int | float) else errors.GoValue(repr(value))
        return None, [errors.invalid_value(path, shown, str(exc))]


def validate_resource_name(name: str, path: str) -> list[FieldError]:
    errs = [errors.invalid_value(path, name, m) for m in names.is_qualified_name(name)]
    if errs:
        return errs
    if "/" not in name and not is_standard_resource(name):
        return [
            errors.invalid_value(path, name, "must be a standard resource type or fully qualified")
        ]
    return []


def validate_container_resource_name(name: str, path: str) -> list[FieldError]:
    errs = validate_resource_name(name, path)
    if "/" not in name:
        if not is_standard_container_resource(name):
            return [
                *errs,
                errors.invalid_value(path, name, "must be a standard resource for containers"),
            ]
    elif not is_native(name) and not is_extended(name):
        return [
            *errs,
            errors.invalid_value(path, name, "doesn't follow extended resource name standard"),
        ]
    return errs


def validate_quantity_value(name: str, q: quantity.Quantity, path: str) -> list[FieldError]:
    """ValidateResourceQuantityValue: not negative, and whole for integer resources."""
    errs: list[FieldError] = []
    if q.value < 0:
        errs.append(errors.invalid_value(path, str(q), _NEGATIVE))
    if is_integer_resource(name) and q.milli_value() % 1000 != 0:
        errs.append(errors.invalid_value(path, str(q), IS_NOT_INTEGER))
    return errs


def validate_positive_quantity(q: quantity.Quantity, path: str) -> list[FieldError]:
    if q.value <= 0:
        return [errors.invalid_value(path, str(q), IS_NOT_POSITIVE)]
    return []


def _hugepage_error(name: str, q: quantity.Quantity) -> str | None:
    try:
        page = quantity.parse(name[len(_HUGEPAGES) :])
    except quantity.QuantityError:
        return None
    if page.value <= 0 or q.value % page.value != 0:
        return f"{q} is not positive integer multiple of {name}"
    return None


def validate_resource_requirements(
    requirements: Any, claim_names: set[str], path: str
) -> list[FieldError]:
    """Container (and pod overhead) requests and limits."""
    requirements = as_dict(requirements)
    errs: list[FieldError] = []
    lim_path, req_path = f"{path}.limits", f"{path}.requests"
    limits: dict[str, quantity.Quantity] = {}
    has_cpu_or_memory = has_hugepages = False
    for name, raw in as_dict(requirements.get("limits")).items():
        field = f"{lim_path}[{name}]"
        errs.extend(validate_container_resource_name(name, field))
        q, bad = parse_or_error(raw, field)
        errs.extend(bad)
        if q is None:
            continue
        limits[name] = q
        errs.extend(validate_quantity_value(name, q, field))
        if is_hugepage(name):
            has_hugepages = True
            message = _hugepage_error(name, q)
            if message:
                errs.append(errors.invalid_value(field, str(q), message))
        has_cpu_or_memory |= name in ("cpu", "memory")
    for name, raw in as_dict(requirements.get("requests")).items():
        field = f"{req_path}[{name}]"
        errs.extend(validate_container_resource_name(name, field))
        q, bad = parse_or_error(raw, field)
        errs.extend(bad)
        if q is None:
            continue
        errs.extend(validate_quantity_value(name, q, field))
        limit = limits.get(name)
        if limit is not None:
            if q.value != limit.value and not is_overcommit_allowed(name):
                errs.append(
                    errors.invalid_value(
                        req_path, str(q), f"must be equal to {name} limit of {limit}"
                    )
                )
            elif q.value > limit.value:
                errs.append(
                    errors.invalid_value(
                        req_path, str(q), f"must be less than or equal to {name} limit of {limit}"
                    )
                )
        elif not is_overcommit_allowed(name) and name not in as_dict(requirements.get("limits")):
            errs.append(
                errors.required(lim_path, "Limit must be set for non overcommitable resources")
            )
        if is_hugepage(name):
            has_hugepages = True
            message = _hugepage_error(name, q)
            if message:
                errs.append(errors.invalid_value(field, str(q), message))
        has_cpu_or_memory |= name in ("cpu", "memory")
    if has_hugepages and not has_cpu_or_memory:
        errs.append(errors.field_forbidden(path, "HugePages require cpu or memory"))
    errs.extend(_validate_claims(requirements.get("claims"), claim_names, f"{path}.claims"))
    return errs


def _validate_claims(claims: Any, claim_names: set[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, claim in enumerate(as_list(claims)):
        name = as_str(as_dict(claim).get("name"))
        request = as_str(as_dict(claim).get("request"))
        if not name:
            errs.append(errors.required(f"{path}[{i}]"))
            continue
        key = f"{name}/{request}" if request else name
        if name in seen or key in seen:
            errs.append(errors.duplicate(f"{path}[{i}]", key if name not in seen else name))
        seen.add(key)
        if name not in claim_names:
            detail = "must be one of the names in pod.spec.resourceClaims"
            detail += ": " + ", ".join(sorted(claim_names)) if claim_names else " which is empty"
            errs.append(errors.field_not_found(f"{path}[{i}]", name, detail))
    return errs
