"""Container environment: ``env`` (values, valueFrom references) and ``envFrom``."""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import names, volumes
from pilothouse.api.validation.fields import as_dict, as_list, as_str

_ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)


def _key_selector(ref: dict[str, Any], path: str) -> list[FieldError]:
    name = as_str(ref.get("name"))
    errs = [
        errors.invalid_value(f"{path}.name", name, m)
        for m in names.name_is_dns_subdomain(name, False)
    ]
    key = as_str(ref.get("key"))
    if not key:
        errs.append(errors.required(f"{path}.key"))
    else:
        errs.extend(
            errors.invalid_value(f"{path}.key", key, m) for m in names.is_config_map_key(key)
        )
    return errs


def validate_env(env: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(as_list(env)):
        var = as_dict(var)
        vpath = f"{path}[{i}]"
        name = as_str(var.get("name"))
        if not name:
            errs.append(errors.required(f"{vpath}.name"))
        else:
            errs.extend(
                errors.invalid_value(f"{vpath}.name", name, m)
                for m in names.is_relaxed_env_var_name(name)
            )
        value_from = var.get("valueFrom")
        if not isinstance(value_from, dict):
            continue
        fpath = f"{vpath}.valueFrom"
        count = 0
        if isinstance(value_from.get("fieldRef"), dict):
            count += 1
            errs.extend(
                volumes.object_field_selector(
                    value_from["fieldRef"], _ENV_FIELD_PATHS, f"{fpath}.fieldRef"
                )
            )
        if isinstance(value_from.get("resourceFieldRef"), dict):
            count += 1
            errs.extend(
                volumes.resource_field_selector(
                    value_from["resourceFieldRef"], f"{fpath}.resourceFieldRef", volume=False
                )
            )
        for key in ("configMapKeyRef", "secretKeyRef"):
            if isinstance(value_from.get(key), dict):
                count += 1
                errs.extend(_key_selector(value_from[key], f"{fpath}.{key}"))
        if count == 0:
            errs.append(
                errors.invalid_value(
                    fpath,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                )
            )
        elif var.get("value"):
            errs.append(
                errors.invalid_value(fpath, "", "may not be specified when `value` is not empty")
            )
        elif count > 1:
            errs.append(
                errors.invalid_value(
                    fpath, "", "may not have more than one field specified at a time"
                )
            )
    return errs


def validate_env_from(sources: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, source in enumerate(as_list(sources)):
        source = as_dict(source)
        spath = f"{path}[{i}]"
        prefix = as_str(source.get("prefix"))
        if prefix:
            errs.extend(
                errors.invalid_value(f"{spath}.prefix", prefix, m)
                for m in names.is_relaxed_env_var_name(prefix)
            )
        count = 0
        for key in ("configMapRef", "secretRef"):
            ref = source.get(key)
            if not isinstance(ref, dict):
                continue
            count += 1
            name = as_str(ref.get("name"))
            if not name:
                errs.append(errors.required(f"{spath}.{key}.name"))
            else:
                errs.extend(
                    errors.invalid_value(f"{spath}.{key}.name", name, m)
                    for m in names.name_is_dns_subdomain(name, True)
                )
        if count == 0:
            errs.append(
                errors.invalid_value(path, "", "must specify one of: `configMapRef` or `secretRef`")
            )
        elif count > 1:
            errs.append(
                errors.invalid_value(
                    path, "", "may not have more than one field specified at a time"
                )
            )
    return errs
