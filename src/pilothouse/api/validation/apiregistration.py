"""APIServices (``k8s.io/kube-aggregator/pkg/apis/apiregistration/validation``).

The name must be ``<version>.<group>``; a local APIService (no ``service``) may not
carry TLS settings; priorities stay in upstream's ranges.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int

_CONDITION_STATUSES = ["True", "False", "Unknown"]


def _name_rule(required: str) -> names.NameFunc:
    def check(name: str, prefix: bool) -> list[str]:
        problems = names.name_is_path_segment(name, prefix)
        if problems:
            return problems
        if name != required:
            return [f'must be `spec.version+"."+spec.group`: "{required}"']
        return []

    return check


def validate_api_service(obj: dict[str, Any]) -> list[FieldError]:
    spec = as_dict(obj.get("spec"))
    group, version = as_str(spec.get("group")), as_str(spec.get("version"))
    errs = meta.validate_object_meta(
        obj, namespaced=False, name_fn=_name_rule(f"{version}.{group}")
    )
    if not group and version != "v1":
        errs.append(
            errors.required(
                "spec.group", "only v1 may have an empty group and it better be legacy kube"
            )
        )
    if group:
        errs.extend(
            errors.invalid_value("spec.group", group, m) for m in names.is_dns1123_subdomain(group)
        )
    errs.extend(
        errors.invalid_value("spec.version", version, m) for m in names.is_dns1035_label(version)
    )
    group_priority = spec.get("groupPriorityMinimum")
    group_priority = group_priority if is_int(group_priority) else 0
    if not 0 < group_priority <= 20000:
        errs.append(
            errors.invalid_value(
                "spec.groupPriorityMinimum", group_priority, "must be positive and less than 20000"
            )
        )
    version_priority = spec.get("versionPriority")
    version_priority = version_priority if is_int(version_priority) else 0
    if not 0 < version_priority <= 1000:
        errs.append(
            errors.invalid_value(
                "spec.versionPriority", version_priority, "must be positive and less than 1000"
            )
        )
    ca_bundle = as_str(spec.get("caBundle"))
    insecure = spec.get("insecureSkipTLSVerify") is True
    service = spec.get("service")
    if service is None:
        if ca_bundle:
            errs.append(
                errors.invalid_value(
                    "spec.caBundle",
                    f"{len(_decoded(ca_bundle))} bytes",
                    "local APIServices may not have a caBundle",
                )
            )
        if insecure:
            errs.append(
                errors.invalid_value(
                    "spec.insecureSkipTLSVerify",
                    True,
                    "local APIServices may not have insecureSkipTLSVerify",
                )
            )
        return errs
    service = as_dict(service)
    if not as_str(service.get("namespace")):
        errs.append(errors.required("spec.service.namespace"))
    if not as_str(service.get("name")):
        errs.append(errors.required("spec.service.name"))
    port = service.get("port")
    port = port if is_int(port) else 0
    problems = names.is_valid_port_num(port)
    if problems:
        errs.append(
            errors.invalid_value(
                "spec.service.port", port, "port is not valid: " + ", ".join(problems)
            )
        )
    if insecure and ca_bundle:
        errs.append(
            errors.invalid_value(
                "spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present"
            )
        )
    return errs


def _decoded(ca_bundle: str) -> bytes:
    try:
        return base64.b64decode(ca_bundle, validate=True)
    except (binascii.Error, ValueError):
        return ca_bundle.encode()


def validate_api_service_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return meta.validate_object_meta_update(new, old) + validate_api_service(new)


def validate_api_service_status(new: dict[str, Any]) -> list[FieldError]:
    """What a write to ``/status`` checks beyond metadata: known condition statuses."""
    errs: list[FieldError] = []
    conditions = as_list(as_dict(new.get("status")).get("conditions"))
    for i, condition in enumerate(conditions):
        status = as_dict(condition).get("status")
        if status not in _CONDITION_STATUSES:
            errs.append(
                errors.not_supported(f"status.conditions[{i}].status", status, _CONDITION_STATUSES)
            )
    return errs
