"""Roles, ClusterRoles, RoleBindings and ClusterRoleBindings (``pkg/apis/rbac/validation``).

Names of roles and bindings only need to be path segments (``system:node`` is a
valid name); rules need verbs and either resources or URLs, never both; a binding's
``roleRef`` may not change once it exists.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, rbac
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names
from pilothouse.api.validation.fields import as_dict, as_list, as_str


def _strings(value: Any) -> list[str]:
    return [as_str(v) for v in as_list(value)]


def _policy_rule(rule: Any, namespaced: bool, path: str) -> list[FieldError]:
    rule = as_dict(rule)
    errs: list[FieldError] = []
    if not as_list(rule.get("verbs")):
        errs.append(errors.required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = _strings(rule.get("nonResourceURLs"))
    if urls:
        shown = errors.go_string_list(urls)
        if namespaced:
            errs.append(
                errors.invalid_value(
                    f"{path}.nonResourceURLs",
                    shown,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(
                errors.invalid_value(
                    f"{path}.nonResourceURLs",
                    shown,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return errs
    if not as_list(rule.get("apiGroups")):
        errs.append(
            errors.required(
                f"{path}.apiGroups", "resource rules must supply at least one api group"
            )
        )
    resources = as_list(rule.get("resources"))
    if not resources:
        errs.append(
            errors.required(f"{path}.resources", "resource rules must supply at least one resource")
        )
    if as_list(rule.get("resourceNames")) and len(resources) > 1:
        errs.append(
            errors.required(
                f"{path}.resourceNames", "resource names cannot apply to multiple resources"
            )
        )
    return errs


def _role(obj: dict[str, Any], *, namespaced: bool) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=namespaced, name_fn=names.name_is_path_segment)
    for i, rule in enumerate(as_list(obj.get("rules"))):
        errs.extend(_policy_rule(rule, namespaced, f"rules[{i}]"))
    return errs


def validate_role(obj: dict[str, Any]) -> list[FieldError]:
    return _role(obj, namespaced=True)


def validate_cluster_role(obj: dict[str, Any]) -> list[FieldError]:
    return _role(obj, namespaced=False)


def _subject(subject: Any, namespaced: bool, path: str) -> list[FieldError]:
    subject = as_dict(subject)
    errs: list[FieldError] = []
    name = as_str(subject.get("name"))
    api_group = as_str(subject.get("apiGroup"))
    kind = as_str(subject.get("kind"))
    if not name:
        errs.append(errors.required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            errs.extend(
                errors.invalid_value(f"{path}.name", name, m)
                for m in names.name_is_dns_subdomain(name, False)
            )
        if api_group:
            errs.append(errors.not_supported(f"{path}.apiGroup", api_group, [""]))
        if not namespaced and not subject.get("namespace"):
            errs.append(errors.required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if not name:
            what = "user" if kind == "User" else "group"
            errs.append(errors.invalid_value(f"{path}.name", name, f"{what} name cannot be empty"))
        if api_group != rbac.GROUP_NAME:
            errs.append(errors.not_supported(f"{path}.apiGroup", api_group, [rbac.GROUP_NAME]))
    else:
        errs.append(errors.not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return errs


def _binding(obj: dict[str, Any], *, namespaced: bool) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=namespaced, name_fn=names.name_is_path_segment)
    ref = as_dict(obj.get("roleRef"))
    api_group = as_str(ref.get("apiGroup"))
    if api_group != rbac.GROUP_NAME:
        errs.append(errors.not_supported("roleRef.apiGroup", api_group, [rbac.GROUP_NAME]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    kind = as_str(ref.get("kind"))
    if kind not in kinds:
        errs.append(errors.not_supported("roleRef.kind", kind, kinds))
    name = as_str(ref.get("name"))
    if not name:
        errs.append(errors.required("roleRef.name"))
    else:
        errs.extend(
            errors.invalid_value("roleRef.name", name, m)
            for m in names.name_is_path_segment(name, False)
        )
    for i, subject in enumerate(as_list(obj.get("subjects"))):
        errs.extend(_subject(subject, namespaced, f"subjects[{i}]"))
    return errs


def validate_role_binding(obj: dict[str, Any]) -> list[FieldError]:
    return _binding(obj, namespaced=True)


def validate_cluster_role_binding(obj: dict[str, Any]) -> list[FieldError]:
    return _binding(obj, namespaced=False)


def _role_ref_value(ref: dict[str, Any]) -> errors.GoValue:
    """The internal ``rbac.RoleRef`` as Go's ``%#v`` prints it in the message."""
    parts = ", ".join(
        f"{field}:{errors.go_repr(as_str(ref.get(key)))}"
        for field, key in (("APIGroup", "apiGroup"), ("Kind", "kind"), ("Name", "name"))
    )
    return errors.GoValue(f"rbac.RoleRef{{{parts}}}")


def _binding_update(
    new: dict[str, Any], old: dict[str, Any], *, namespaced: bool
) -> list[FieldError]:
    errs = _binding(new, namespaced=namespaced) + meta.validate_object_meta_update(new, old)
    new_ref, old_ref = as_dict(new.get("roleRef")), as_dict(old.get("roleRef"))
    keys = ("apiGroup", "kind", "name")
    if any(as_str(new_ref.get(k)) != as_str(old_ref.get(k)) for k in keys):
        errs.append(
            errors.invalid_value("roleRef", _role_ref_value(new_ref), "cannot change roleRef")
        )
    return errs


def validate_role_binding_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return _binding_update(new, old, namespaced=True)


def validate_cluster_role_binding_update(
    new: dict[str, Any], old: dict[str, Any]
) -> list[FieldError]:
    return _binding_update(new, old, namespaced=False)


def validate_role_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return validate_role(new) + meta.validate_object_meta_update(new, old)


def validate_cluster_role_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return validate_cluster_role(new) + meta.validate_object_meta_update(new, old)
