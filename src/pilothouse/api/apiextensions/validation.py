"""Upstream's validation of CustomResourceDefinitions (``apiextensions/validation``).

:func:`validate_create`, :func:`validate_update` and :func:`validate_status_update`
return the field errors of ``ValidateCustomResourceDefinition`` and friends: the
name (``must be spec.names.plural+"."+spec.group``), the group (a domain with at
least one dot), scope, names (DNS-1035 labels, kind and listKind distinct), versions
(unique, exactly one storage version, schemas required, per-version subresources,
printer columns and selectable fields), the schemas themselves (:mod:`.structural`),
conversion (None or Webhook with a URL or a service and ConversionReview versions),
``status.storedVersions``, the API-approval annotation for ``*.k8s.io`` groups, and
what may not change once the CRD is established.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from pilothouse.api import errors
from pilothouse.api.apiextensions import crd as crds
from pilothouse.api.apiextensions import jsonpath, schemarules
from pilothouse.api.meta import Obj
from pilothouse.api.validation import meta as meta_validation
from pilothouse.api.validation import names as name_rules

FieldError = errors.FieldError

PRINTER_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
PRINTER_COLUMN_FORMATS = (
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
)
CONVERSION_REVIEW_VERSIONS = ("v1", "v1beta1")
APPROVAL_ANNOTATION = "api-approved.kubernetes.io"


def _dns1035(value: str) -> list[str]:
    return name_rules.is_dns1035_label(value)


def _names(names: dict[str, Any], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for key in ("plural", "singular"):
        value = names.get(key)
        if isinstance(value, str) and value and (problems := _dns1035(value)):
            out.append(errors.invalid_value(f"{path}.{key}", value, ",".join(problems)))
    for key in ("kind", "listKind"):
        value = names.get(key)
        if isinstance(value, str) and value and (problems := _dns1035(value.lower())):
            out.append(
                errors.invalid_value(
                    f"{path}.{key}",
                    value,
                    "may have mixed case, but should otherwise match: " + ",".join(problems),
                )
            )
    for i, short in enumerate(names.get("shortNames") or ()):
        if problems := _dns1035(str(short)):
            out.append(errors.invalid_value(f"{path}.shortNames[{i}]", short, ",".join(problems)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        out.append(
            errors.invalid_value(
                f"{path}.listKind", names.get("listKind"), "kind and listKind may not be the same"
            )
        )
    for i, category in enumerate(names.get("categories") or ()):
        if problems := _dns1035(str(category)):
            out.append(
                errors.invalid_value(f"{path}.categories[{i}]", category, ",".join(problems))
            )
    return out


def _simple_json_path(value: str, path: str) -> list[FieldError]:
    if not value:
        return [errors.invalid_value(path, value, "must not be empty")]
    if value[0] != ".":
        return [errors.invalid_value(path, value, "must be a simple json path starting with .")]
    return []


def _column(col: dict[str, Any], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    if not col.get("name"):
        out.append(errors.required(f"{path}.name"))
    kinds = ",".join(PRINTER_COLUMN_TYPES)
    if not col.get("type"):
        out.append(errors.required(f"{path}.type", f"must be one of {kinds}"))
    elif col["type"] not in PRINTER_COLUMN_TYPES:
        out.append(errors.invalid_value(f"{path}.type", col["type"], f"must be one of {kinds}"))
    fmt = col.get("format")
    if fmt and fmt not in PRINTER_COLUMN_FORMATS:
        out.append(
            errors.invalid_value(
                f"{path}.format", fmt, f"must be one of {','.join(PRINTER_COLUMN_FORMATS)}"
            )
        )
    json_path = col.get("jsonPath")
    if not json_path:
        out.append(errors.required(f"{path}.JSONPath"))
    else:
        out.extend(_simple_json_path(str(json_path), f"{path}.JSONPath"))
    return out


def _subresources(subs: dict[str, Any], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    scale = subs.get("scale")
    if not isinstance(scale, dict):
        return out
    for key, prefix, under in (
        ("specReplicasPath", ".spec.", "should be a json path under .spec"),
        ("statusReplicasPath", ".status.", "should be a json path under .status"),
    ):
        value = scale.get(key)
        where = f"{path}.scale.{key}"
        if not value:
            out.append(errors.required(where))
        elif problems := _simple_json_path(str(value), where):
            out.extend(problems)
        elif not str(value).startswith(prefix):
            out.append(errors.invalid_value(where, value, under))
    selector = scale.get("labelSelectorPath")
    if selector:
        where = f"{path}.scale.labelSelectorPath"
        if problems := _simple_json_path(str(selector), where):
            out.extend(problems)
        elif not str(selector).startswith((".spec.", ".status.")):
            out.append(
                errors.invalid_value(
                    where, selector, "should be a json path under either .spec or .status"
                )
            )
    return out


def _selectable_fields(
    version: dict[str, Any], schema: dict[str, Any] | None, path: str
) -> list[FieldError]:
    out: list[FieldError] = []
    fields = version.get("selectableFields")
    if not isinstance(fields, list):
        return out
    if len(fields) > 8:
        out.append(errors.too_many(path, len(fields), 8))
    seen: set[str] = set()
    for i, entry in enumerate(fields):
        where = f"{path}[{i}].jsonPath"
        value = entry.get("jsonPath") if isinstance(entry, dict) else None
        if not value:
            out.append(errors.required(where))
            continue
        found = jsonpath.schema_at(schema, str(value)) if schema is not None else None
        if found is None:
            out.append(
                errors.invalid_value(
                    where, value, "is an invalid path: does not refer to a valid field"
                )
            )
        elif found.get("type") not in ("string", "integer", "boolean"):
            out.append(
                errors.invalid_value(
                    where, value, "must have a scalar type (string, integer, or boolean)"
                )
            )
        if value in seen:
            out.append(errors.duplicate(where, value))
        seen.add(str(value))
    return out


def _webhook_url(url: str, path: str) -> list[FieldError]:
    parts = urllib.parse.urlsplit(url)
    out: list[FieldError] = []
    if parts.scheme != "https":
        out.append(
            errors.invalid_value(
                path, url, f"'https' is the only allowed URL scheme{'; ' if False else ''}"
            )
        )
    if not parts.hostname:
        out.append(errors.invalid_value(path, url, "host must be specified"))
    if parts.username or parts.password:
        out.append(errors.invalid_value(path, url, "user information is not permitted in the URL"))
    if parts.fragment:
        out.append(errors.invalid_value(path, url, "fragments are not permitted in the URL"))
    if parts.query:
        out.append(errors.invalid_value(path, url, "query parameters are not permitted in the URL"))
    return out


def _conversion(conversion: Any, path: str) -> list[FieldError]:
    if not isinstance(conversion, dict):
        return []
    out: list[FieldError] = []
    strategy = conversion.get("strategy")
    if not strategy:
        out.append(errors.required(f"{path}.strategy"))
    elif strategy not in ("None", "Webhook"):
        out.append(errors.not_supported(f"{path}.strategy", strategy, ["None", "Webhook"]))
    webhook = conversion.get("webhook")
    if strategy == "Webhook":
        config = webhook.get("clientConfig") if isinstance(webhook, dict) else None
        if not isinstance(config, dict):
            out.append(
                errors.required(f"{path}.webhook", "required when strategy is set to Webhook")
            )
        else:
            has_url, has_service = config.get("url") is not None, config.get("service") is not None
            if has_url == has_service:
                out.append(
                    errors.required(
                        f"{path}.webhook.clientConfig", "exactly one of url or service is required"
                    )
                )
            elif has_url:
                out.extend(_webhook_url(str(config["url"]), f"{path}.webhook.clientConfig.url"))
            else:
                service = config["service"]
                where = f"{path}.webhook.clientConfig.service"
                if not service.get("name"):
                    out.append(errors.required(f"{where}.name", "service name is required"))
                if not service.get("namespace"):
                    out.append(
                        errors.required(f"{where}.namespace", "service namespace is required")
                    )
                port = service.get("port", 443)
                if not isinstance(port, int) or not 1 <= port <= 65535:
                    out.append(
                        errors.invalid_value(
                            f"{where}.port",
                            port,
                            "port is not valid: must be between 1 and 65535, inclusive",
                        )
                    )
        review = webhook.get("conversionReviewVersions") if isinstance(webhook, dict) else None
        review_path = f"{path}.webhook.conversionReviewVersions"
        if not review:
            out.append(errors.required(review_path))
        else:
            seen: set[str] = set()
            for i, v in enumerate(review):
                if v in seen:
                    out.append(errors.invalid_value(f"{review_path}[{i}]", v, "duplicate version"))
                    continue
                seen.add(v)
                for problem in _dns1035(str(v)):
                    out.append(errors.invalid_value(f"{review_path}[{i}]", v, problem))
            if not seen & set(CONVERSION_REVIEW_VERSIONS):
                out.append(
                    errors.invalid_value(
                        review_path,
                        errors.go_string_list(review),
                        f"must include at least one of {', '.join(CONVERSION_REVIEW_VERSIONS)}",
                    )
                )
    elif isinstance(webhook, dict):
        out.append(
            errors.field_forbidden(
                f"{path}.webhook", "should not be set when strategy is not set to Webhook"
            )
        )
    return out


def _spec(obj: Obj, *, established: bool = False) -> list[FieldError]:
    spec = crds.spec(obj)
    out: list[FieldError] = []
    group = spec.get("group")
    if not group:
        out.append(errors.required("spec.group"))
    elif problems := name_rules.is_dns1123_subdomain(str(group)):
        out.append(errors.invalid_value("spec.group", group, ",".join(problems)))
    elif len(str(group).split(".")) < 2:
        out.append(
            errors.invalid_value("spec.group", group, "should be a domain with at least one dot")
        )
    scope = spec.get("scope")
    if not scope:
        out.append(errors.required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        out.append(errors.not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    versions = crds.versions(obj)
    storage_count = 0
    seen: set[str] = set()
    unique = True
    for i, version in enumerate(versions):
        where = f"spec.versions[{i}]"
        name = str(version.get("name") or "")
        if version.get("storage"):
            storage_count += 1
        if name in seen:
            unique = False
        seen.add(name)
        if problems := _dns1035(name):
            out.append(errors.invalid_value(f"{where}.name", name, ",".join(problems)))
        warning = version.get("deprecationWarning")
        if warning is not None:
            if not version.get("deprecated"):
                out.append(
                    errors.invalid_value(
                        f"{where}.deprecationWarning",
                        warning,
                        "can only be set for deprecated versions",
                    )
                )
            elif len(warning) > 256:
                out.append(
                    errors.invalid_value(
                        f"{where}.deprecationWarning", warning, "must be <= 256 characters long"
                    )
                )
        raw_subs = version.get("subresources")
        subs: dict[str, Any] = raw_subs if isinstance(raw_subs, dict) else {}
        schema = crds.schema(obj, name)
        if schema is None:
            out.append(errors.required(f"{where}.schema.openAPIV3Schema", "schemas are required"))
        else:
            out.extend(
                schemarules.validate(
                    schema, f"{where}.schema.openAPIV3Schema", status_enabled="status" in subs
                )
            )
        out.extend(_subresources(subs, f"{where}.subresources"))
        for j, col in enumerate(crds.printer_columns(obj, name)):
            out.extend(_column(col, f"{where}.additionalPrinterColumns[{j}]"))
        out.extend(_selectable_fields(version, schema, f"{where}.selectableFields"))
    if not unique:
        out.append(
            errors.invalid_value(
                "spec.versions",
                errors.GoValue("[]apiextensions.CustomResourceDefinitionVersion{…}"),
                "must contain unique version names",
            )
        )
    if storage_count != 1:
        out.append(
            errors.invalid_value(
                "spec.versions",
                errors.GoValue("[]apiextensions.CustomResourceDefinitionVersion{…}"),
                "must have exactly one version marked as storage version",
            )
        )
    names = crds.names(obj)
    for key in ("plural", "singular", "kind", "listKind"):
        if not names.get(key):
            out.append(errors.required(f"spec.names.{key}"))
    out.extend(_names(names, "spec.names"))
    if spec.get("preserveUnknownFields") is True:
        out.append(
            errors.invalid_value(
                "spec.preserveUnknownFields",
                True,
                "cannot set to true, set x-preserve-unknown-fields to true in spec.versions[*].schema instead",
            )
        )
    out.extend(_conversion(spec.get("conversion"), "spec.conversion"))
    return out


def _stored_versions(obj: Obj) -> list[FieldError]:
    raw_status = obj.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    stored = status.get("storedVersions") or []
    path = "status.storedVersions"
    if not stored:
        return [
            errors.invalid_value(
                path, errors.go_string_list(stored), "must have at least one stored version"
            )
        ]
    out: list[FieldError] = []
    remaining = {v: i for i, v in enumerate(stored)}
    for version in crds.versions(obj):
        name = version.get("name")
        if version.get("storage") and name not in remaining:
            out.append(
                errors.invalid_value(
                    path,
                    errors.GoValue("apiextensions.CustomResourceDefinitionVersion{…}"),
                    f"must have the storage version {name}",
                )
            )
        remaining.pop(name, None)
    for value, index in sorted(remaining.items(), key=lambda kv: kv[1]):
        out.append(errors.invalid_value(f"{path}[{index}]", value, "must appear in spec.versions"))
    return out


def _approval(obj: Obj, old: Obj | None) -> list[FieldError]:
    group = str(crds.spec(obj).get("group") or "")
    if group not in ("k8s.io", "kubernetes.io") and not group.endswith(
        (".k8s.io", ".kubernetes.io")
    ):
        return []
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(APPROVAL_ANNOTATION)
    old_value = (
        ((old or {}).get("metadata") or {}).get("annotations", {}).get(APPROVAL_ANNOTATION)
        if old
        else None
    )
    if old is not None and old_value == value:
        return []
    path = f"metadata.annotations[{APPROVAL_ANNOTATION}]"
    if value is None:
        return [
            errors.required(
                path,
                f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}", see https://github.com/kubernetes/enhancements/pull/1111',
            )
        ]
    if value.startswith("unapproved"):
        return []
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return [
            errors.invalid_value(
                path,
                value,
                f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}" with either a URL or a reason starting with "unapproved", see https://github.com/kubernetes/enhancements/pull/1111',
            )
        ]
    return []


def _metadata(obj: Obj) -> list[FieldError]:
    spec = crds.spec(obj)
    required = f"{crds.names(obj).get('plural')}.{spec.get('group')}"

    def name_fn(name: str, prefix: bool) -> list[str]:
        problems = name_rules.name_is_dns_subdomain(name, prefix)
        if name != required:
            problems = [*problems, 'must be spec.names.plural+"."+spec.group']
        return problems

    return meta_validation.validate_object_meta(
        obj, namespaced=False, name_fn=name_fn, kube_finalizers=False
    )


def validate_create(obj: Obj) -> list[FieldError]:
    return [
        *_metadata(obj),
        *_spec(obj),
        *_status(obj),
        *_stored_versions(obj),
        *_approval(obj, None),
    ]


def _status(obj: Obj) -> list[FieldError]:
    return _names(crds.accepted_names(obj), "status.acceptedNames")


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    out = [
        *meta_validation.validate_object_meta_update(new, old, kube_finalizers=False),
        *_spec(new),
    ]
    spec, old_spec = crds.spec(new), crds.spec(old)
    if crds.is_true(old, crds.ESTABLISHED):
        if spec.get("scope") != old_spec.get("scope"):
            out.append(
                errors.invalid_value(
                    "spec.scope", spec.get("scope"), meta_validation.FIELD_IMMUTABLE
                )
            )
        if crds.names(new).get("kind") != crds.names(old).get("kind"):
            out.append(
                errors.invalid_value(
                    "spec.names.kind", crds.names(new).get("kind"), meta_validation.FIELD_IMMUTABLE
                )
            )
    if spec.get("group") != old_spec.get("group"):
        out.append(
            errors.invalid_value("spec.group", spec.get("group"), meta_validation.FIELD_IMMUTABLE)
        )
    if crds.names(new).get("plural") != crds.names(old).get("plural"):
        out.append(
            errors.invalid_value(
                "spec.names.plural", crds.names(new).get("plural"), meta_validation.FIELD_IMMUTABLE
            )
        )
    out.extend(_status(new))
    out.extend(_stored_versions(new))
    out.extend(_approval(new, old))
    return out


def validate_status_update(new: Obj, old: Obj) -> list[FieldError]:
    return [
        *meta_validation.validate_object_meta_update(new, old, kube_finalizers=False),
        *_status(new),
    ]
