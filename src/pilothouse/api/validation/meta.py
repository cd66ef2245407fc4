"""ObjectMeta, labels, annotations, selectors and owner references.

Mirrors apimachinery's ``pkg/api/validation/objectmeta.go`` and
``pkg/apis/meta/v1/validation``, plus core's extra finalizer-name rule. Two entry
points matter to callers: :func:`validate_object_meta` (create, with a kind's name
rule) and :func:`validate_object_meta_update` (what may not change on update).
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import names
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int, semantic_equal

FIELD_IMMUTABLE = "field is immutable"
IS_NEGATIVE = "must be greater than or equal to 0"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})
_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def validate_label_name(key: str, path: str) -> list[FieldError]:
    return [errors.invalid_value(path, key, m) for m in names.is_qualified_name(key)]


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, value in as_dict(labels).items():
        errs.extend(validate_label_name(key, path))
        if not isinstance(value, str):
            errs.append(errors.invalid_value(path, value, "label values must be strings"))
            continue
        errs.extend(errors.invalid_value(path, value, m) for m in names.is_valid_label_value(value))
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    total = 0
    for key, value in as_dict(annotations).items():
        errs.extend(
            errors.invalid_value(path, key, m) for m in names.is_qualified_name(key.lower())
        )
        total += len(key.encode()) + len(as_str(value).encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(errors.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def validate_label_selector(
    selector: Any, path: str, *, allow_invalid_label_value: bool = False
) -> list[FieldError]:
    """A ``metav1.LabelSelector``: label syntax and operator/values consistency."""
    if not isinstance(selector, dict):
        return []
    errs = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, req in enumerate(as_list(selector.get("matchExpressions"))):
        req_path = f"{path}.matchExpressions[{i}]"
        req = as_dict(req)
        operator = req.get("operator")
        values = as_list(req.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                errs.append(
                    errors.required(
                        f"{req_path}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errs.append(
                    errors.field_forbidden(
                        f"{req_path}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            errs.append(
                errors.invalid_value(
                    f"{req_path}.operator", as_str(operator), "not a valid selector operator"
                )
            )
        errs.extend(validate_label_name(as_str(req.get("key")), f"{req_path}.key"))
        if not allow_invalid_label_value:
            for j, value in enumerate(values):
                errs.extend(
                    errors.invalid_value(f"{req_path}.values[{j}]", value, m)
                    for m in names.is_valid_label_value(as_str(value))
                )
    return errs


def label_selector_matches(selector: Any, labels: Any) -> bool:
    """Whether ``labels`` satisfy a ``metav1.LabelSelector`` (an empty one matches all)."""
    selector = as_dict(selector)
    labels = as_dict(labels)
    for key, value in as_dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for req in as_list(selector.get("matchExpressions")):
        req = as_dict(req)
        key, operator = as_str(req.get("key")), req.get("operator")
        values = as_list(req.get("values"))
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def label_selector_is_valid(selector: Any) -> bool:
    """Whether ``LabelSelectorAsSelector`` would accept the selector."""
    return not validate_label_selector(selector, "") and all(
        as_dict(r).get("operator") in _SELECTOR_OPERATORS
        for r in as_list(as_dict(selector).get("matchExpressions"))
    )


def validate_owner_references(refs: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    first_controller = ""
    for ref in as_list(refs):
        ref = as_dict(ref)
        api_version = as_str(ref.get("apiVersion"))
        kind = as_str(ref.get("kind"))
        group, _, version = api_version.rpartition("/")
        if not version:
            errs.append(
                errors.invalid_value(f"{path}.apiVersion", api_version, "version must not be empty")
            )
        if not kind:
            errs.append(errors.invalid_value(f"{path}.kind", kind, "kind must not be empty"))
        if not as_str(ref.get("name")):
            errs.append(
                errors.invalid_value(
                    f"{path}.name", as_str(ref.get("name")), "name must not be empty"
                )
            )
        if not as_str(ref.get("uid")):
            errs.append(
                errors.invalid_value(f"{path}.uid", as_str(ref.get("uid")), "uid must not be empty")
            )
        if group == "" and version == "v1" and kind == "Event":
            errs.append(
                errors.invalid_value(
                    path,
                    errors.GoValue(repr(ref)),
                    "/v1, Kind=Event is disallowed from being an owner",
                )
            )
        if ref.get("controller") is True:
            current = f"{kind}/{as_str(ref.get('name'))}"
            if first_controller:
                errs.append(
                    errors.invalid_value(
                        path,
                        errors.GoValue(repr(refs)),
                        'Only one reference can have Controller set to true. Found "true" in '
                        f"references for {first_controller} and {current}",
                    )
                )
            else:
                first_controller = current
    return errs


def validate_finalizers(finalizers: Any, path: str, *, kube_names: bool) -> list[FieldError]:
    """Qualified names; with ``kube_names`` also core's "standard or fully qualified" rule."""
    errs: list[FieldError] = []
    values = [as_str(f) for f in as_list(finalizers)]
    for value in values:
        errs.extend(errors.invalid_value(path, value, m) for m in names.is_qualified_name(value))
    if "orphan" in values and "foregroundDeletion" in values:
        errs.append(
            errors.invalid_value(
                path,
                errors.go_string_list(values),
                "finalizer orphan and foregroundDeletion cannot be both set",
            )
        )
    if kube_names:
        for i, value in enumerate(values):
            errs.extend(kube_finalizer_name(value, f"{path}[{i}]"))
    return errs


def kube_finalizer_name(value: str, path: str) -> list[FieldError]:
    if "/" not in value and value not in _STANDARD_FINALIZERS:
        return [
            errors.invalid_value(
                path, value, "name is neither a standard finalizer name nor is it fully qualified"
            )
        ]
    return []


def validate_nonnegative(value: Any, path: str) -> list[FieldError]:
    if is_int(value) and value < 0:
        return [errors.invalid_value(path, value, IS_NEGATIVE)]
    return []


def validate_immutable(new: Any, old: Any, path: str, shown: Any = None) -> list[FieldError]:
    if semantic_equal(new, old):
        return []
    return [errors.invalid_value(path, new if shown is None else shown, FIELD_IMMUTABLE)]


def validate_object_meta(
    obj: dict[str, Any],
    *,
    namespaced: bool,
    name_fn: names.NameFunc,
    kube_finalizers: bool = True,
    path: str = "metadata",
) -> list[FieldError]:
    """ValidateObjectMeta: names, namespace, labels, annotations, owners, finalizers."""
    meta = as_dict(obj.get("metadata"))
    errs: list[FieldError] = []
    generate_name = as_str(meta.get("generateName"))
    if generate_name:
        errs.extend(
            errors.invalid_value(f"{path}.generateName", generate_name, m)
            for m in name_fn(generate_name, True)
        )
    name = as_str(meta.get("name"))
    if not name:
        errs.append(errors.required(f"{path}.name", "name or generateName is required"))
    else:
        errs.extend(errors.invalid_value(f"{path}.name", name, m) for m in name_fn(name, False))
    namespace = as_str(meta.get("namespace"))
    if namespaced:
        if not namespace:
            errs.append(errors.required(f"{path}.namespace"))
        else:
            errs.extend(
                errors.invalid_value(f"{path}.namespace", namespace, m)
                for m in names.name_is_dns_label(namespace, False)
            )
    elif namespace:
        errs.append(errors.field_forbidden(f"{path}.namespace", "not allowed on this type"))
    errs.extend(validate_nonnegative(meta.get("generation"), f"{path}.generation"))
    errs.extend(validate_labels(meta.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    errs.extend(validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences"))
    errs.extend(
        validate_finalizers(
            meta.get("finalizers"), f"{path}.finalizers", kube_names=kube_finalizers
        )
    )
    errs.extend(_validate_managed_fields(meta.get("managedFields"), f"{path}.managedFields"))
    return errs


def _validate_managed_fields(entries: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, entry in enumerate(as_list(entries)):
        entry = as_dict(entry)
        operation = entry.get("operation")
        if operation not in ("Apply", "Update"):
            errs.append(
                errors.invalid_value(
                    f"{path}[{i}].operation",
                    as_str(operation),
                    "must be `Apply` or `Update`",
                )
            )
        fields_type = as_str(entry.get("fieldsType"))
        if fields_type and fields_type != "FieldsV1":
            errs.append(
                errors.invalid_value(f"{path}[{i}].fieldsType", fields_type, "must be `FieldsV1`")
            )
    return errs


def validate_object_meta_update(
    new: dict[str, Any],
    old: dict[str, Any],
    *,
    kube_finalizers: bool = True,
    path: str = "metadata",
) -> list[FieldError]:
    """ValidateObjectMetaUpdate: identity fields are immutable, syntax still holds."""
    meta, old_meta = as_dict(new.get("metadata")), as_dict(old.get("metadata"))
    errs: list[FieldError] = []
    if old_meta.get("deletionTimestamp"):
        extra = sorted(
            set(map(str, as_list(meta.get("finalizers"))))
            - set(map(str, as_list(old_meta.get("finalizers"))))
        )
        if extra:
            errs.append(
                errors.field_forbidden(
                    f"{path}.finalizers",
                    "no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers {errors.go_string_list(extra)!r}",
                )
            )
    generation, old_generation = meta.get("generation"), old_meta.get("generation")
    if is_int(generation) and is_int(old_generation) and generation < old_generation:
        errs.append(
            errors.invalid_value(f"{path}.generation", generation, "must not be decremented")
        )
    for key in ("name", "namespace", "uid"):
        errs.extend(
            validate_immutable(as_str(meta.get(key)), as_str(old_meta.get(key)), f"{path}.{key}")
        )
    for key in ("creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        errs.extend(
            validate_immutable(
                meta.get(key), old_meta.get(key), f"{path}.{key}", shown=_go_time(meta.get(key))
            )
        )
    errs.extend(validate_labels(meta.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    errs.extend(validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences"))
    errs.extend(_validate_managed_fields(meta.get("managedFields"), f"{path}.managedFields"))
    if kube_finalizers:
        for i, value in enumerate(as_list(meta.get("finalizers"))):
            errs.extend(kube_finalizer_name(as_str(value), f"{path}.finalizers[{i}]"))
    return errs


def _go_time(value: Any) -> Any:
    # An unset pointer prints as null in upstream's messages.
    return errors.GoValue("null") if value is None else value
