"""ValidatingAdmissionPolicies and their bindings (``admissionregistration.k8s.io/v1``).

Upstream's ``validateValidatingAdmissionPolicySpec`` and
``validateValidatingAdmissionPolicyBindingSpec``, with their messages (including
upstream's own misspelt ``spec.matchResouces`` path in binding errors). CEL
expressions are compiled through the caller's ``compile`` function, as in
:mod:`.admissionregistration`.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import admissionregistration as webhooks
from pilothouse.api.validation import meta, names
from pilothouse.api.validation.fields import as_dict, as_list, as_str


def _group_version(api_version: str) -> tuple[str, str] | None:
    if api_version in ("", "/"):
        return "", ""
    count = api_version.count("/")
    if count == 0:
        return "", api_version
    if count == 1:
        group, _, version = api_version.partition("/")
        return group, version
    return None


def _param_kind(kind: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    api_version = as_str(kind.get("apiVersion"))
    if not api_version:
        errs.append(errors.required(f"{path}.apiVersion"))
    else:
        gv = _group_version(api_version)
        if gv is None:
            errs.append(
                errors.invalid_value(
                    f"{path}.apiVersion",
                    api_version,
                    f"unexpected GroupVersion string: {api_version}",
                )
            )
        else:
            group, version = gv
            if group:
                problems = names.is_dns1123_subdomain(group)
                if problems:
                    errs.append(
                        errors.invalid_value(f"{path}.apiVersion", group, ",".join(problems))
                    )
            if not version:
                errs.append(
                    errors.invalid_value(
                        f"{path}.apiVersion", api_version, "version must be specified"
                    )
                )
            else:
                problems = names.is_dns1035_label(version)
                if problems:
                    errs.append(
                        errors.invalid_value(f"{path}.apiVersion", version, ",".join(problems))
                    )
    kind_name = as_str(kind.get("kind"))
    if not kind_name:
        errs.append(errors.required(f"{path}.kind"))
    else:
        problems = names.is_dns1035_label(kind_name.lower())
        if problems:
            errs.append(
                errors.invalid_value(
                    f"{path}.kind",
                    kind_name,
                    "may have mixed case, but should otherwise match: " + ",".join(problems),
                )
            )
    return errs


def _named_rule(rule: Any, path: str) -> list[FieldError]:
    rule = as_dict(rule)
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, name in enumerate(as_list(rule.get("resourceNames"))):
        name = as_str(name)
        errs.extend(
            errors.invalid_value(f"{path}.resourceNames[{i}]", name, m)
            for m in names.name_is_path_segment(name, False)
        )
        if name in seen:
            errs.append(errors.duplicate(f"{path}.resourceNames[{i}]", name))
        seen.add(name)
    return errs + webhooks.validate_rule_with_operations(rule, path)


def validate_match_resources(match: Any, path: str) -> list[FieldError]:
    if match is None:
        return []
    match = as_dict(match)
    errs: list[FieldError] = []
    policy = match.get("matchPolicy")
    if policy is None:
        errs.append(errors.required(f"{path}.matchPolicy"))
    elif policy not in webhooks.MATCH_POLICIES:
        errs.append(errors.not_supported(f"{path}.matchPolicy", policy, webhooks.MATCH_POLICIES))
    for key in ("namespaceSelector", "objectSelector"):
        if match.get(key) is None:
            errs.append(errors.required(f"{path}.{key}"))
        else:
            errs.extend(meta.validate_label_selector(match[key], f"{path}.{key}"))
    for key in ("resourceRules", "excludeResourceRules"):
        for i, rule in enumerate(as_list(match.get(key))):
            errs.extend(_named_rule(rule, f"{path}.{key}[{i}]"))
    return errs


def _has_newlines(text: str) -> bool:
    return "\n" in text or "\r" in text


def _compile(
    opts: webhooks._Options, expression: str, what: str, params: bool, path: str
) -> list[FieldError]:
    if opts.compile is None:
        return []
    problem = opts.compile(expression, what, params)
    return [errors.invalid_value(path, expression, problem)] if problem else []


def _validation(v: Any, params: bool, opts: webhooks._Options, path: str) -> list[FieldError]:
    v = as_dict(v)
    errs: list[FieldError] = []
    expression = as_str(v.get("expression"))
    if not expression.strip():
        errs.append(errors.required(f"{path}.expression", "expression is not specified"))
    else:
        errs.extend(_compile(opts, expression, "condition", params, f"{path}.expression"))
    message_expression = as_str(v.get("messageExpression"))
    if message_expression and not message_expression.strip():
        errs.append(
            errors.invalid_value(
                f"{path}.messageExpression", message_expression, "must be non-empty if specified"
            )
        )
    elif message_expression.strip():
        errs.extend(
            _compile(opts, message_expression, "message", params, f"{path}.messageExpression")
        )
    message = as_str(v.get("message"))
    if message and not message.strip():
        errs.append(
            errors.invalid_value(
                f"{path}.message", message, "message must be non-empty if specified"
            )
        )
    elif _has_newlines(message.strip()):
        errs.append(
            errors.invalid_value(f"{path}.message", message, "message must not contain line breaks")
        )
    reason = v.get("reason")
    if reason is not None and reason not in webhooks.POLICY_REASONS:
        errs.append(errors.not_supported(f"{path}.reason", reason, webhooks.POLICY_REASONS))
    return errs


def _variable(
    v: Any, params: bool, opts: webhooks._Options, checker: Any, path: str
) -> list[FieldError]:
    v = as_dict(v)
    errs: list[FieldError] = []
    name = as_str(v.get("name"))
    if not name.strip():
        errs.append(errors.required(f"{path}.name", "name is not specified"))
    elif not webhooks.is_cel_identifier(name):
        errs.append(
            errors.invalid_value(f"{path}.name", name, "name is not a valid CEL identifier")
        )
    expression = as_str(v.get("expression"))
    if not expression.strip():
        errs.append(errors.required(f"{path}.expression", "expression is not specified"))
    elif checker is not None:
        problem = checker.variable(name, expression, params)
        if problem:
            errs.append(errors.invalid_value(f"{path}.expression", expression, problem))
    else:
        errs.extend(_compile(opts, expression, "variable", params, f"{path}.expression"))
    return errs


def _audit_annotation(
    a: Any, policy_name: str, params: bool, opts: webhooks._Options, path: str
) -> list[FieldError]:
    a = as_dict(a)
    errs: list[FieldError] = []
    key = as_str(a.get("key"))
    if policy_name:
        errs.extend(
            errors.invalid_value(f"{path}.key", f"{policy_name}/{key}", m)
            for m in names.is_qualified_name(f"{policy_name}/{key}")
        )
    else:
        errs.append(errors.invalid_value(f"{path}.key", key, "requires metadata.name be non-empty"))
    value = as_str(a.get("valueExpression")).strip()
    if not value:
        errs.append(errors.required(f"{path}.valueExpression", "valueExpression is not specified"))
    elif len(value) > webhooks.MAX_AUDIT_VALUE_EXPRESSION:
        errs.append(
            errors.required(
                f"{path}.valueExpression",
                f"must not exceed {webhooks.MAX_AUDIT_VALUE_EXPRESSION} bytes in length",
            )
        )
    else:
        errs.extend(_compile(opts, value, "audit", params, f"{path}.valueExpression"))
    return errs


def _has_expressions(spec: dict[str, Any]) -> bool:
    return any(
        as_list(spec.get(k))
        for k in ("validations", "variables", "matchConditions", "auditAnnotations")
    )


def _policy_spec(name: str, spec: dict[str, Any], opts: webhooks._Options) -> list[FieldError]:
    errs: list[FieldError] = []
    checker: Any = None
    if opts.compile is None and _has_expressions(spec):
        from pilothouse.api import admission_cel  # the CEL engine: only when needed

        checker = admission_cel.Checker()
        opts.compile = checker
    failure = spec.get("failurePolicy")
    if failure is None:
        errs.append(errors.required("spec.failurePolicy"))
    elif failure not in webhooks.FAILURE_POLICIES:
        errs.append(errors.not_supported("spec.failurePolicy", failure, webhooks.FAILURE_POLICIES))
    params = spec.get("paramKind") is not None
    if params:
        opts.params_in_match_conditions = True
        errs.extend(_param_kind(as_dict(spec.get("paramKind")), "spec.paramKind"))
    constraints = spec.get("matchConstraints")
    if constraints is None:
        errs.append(errors.required("spec.matchConstraints"))
    else:
        errs.extend(validate_match_resources(constraints, "spec.matchConstraints"))
        if not as_list(as_dict(constraints).get("resourceRules")):
            errs.append(errors.required("spec.matchConstraints.resourceRules"))
    if not opts.ignore_match_conditions:
        errs.extend(
            webhooks._match_conditions(
                as_list(spec.get("matchConditions")), opts, "spec.matchConditions"
            )
        )
    for i, variable in enumerate(as_list(spec.get("variables"))):
        errs.extend(_variable(variable, params, opts, checker, f"spec.variables[{i}]"))
    validations = as_list(spec.get("validations"))
    annotations = as_list(spec.get("auditAnnotations"))
    if not validations and not annotations:
        why = "validations or auditAnnotations must contain at least one item"
        errs.append(errors.required("spec.validations", why))
        errs.append(errors.required("spec.auditAnnotations", why))
        return errs
    for i, validation in enumerate(validations):
        errs.extend(_validation(validation, params, opts, f"spec.validations[{i}]"))
    if len(annotations) > webhooks.MAX_AUDIT_ANNOTATIONS:
        errs.append(
            errors.invalid_value(
                "spec.auditAnnotations",
                errors.OMITTED,
                f"must not have more than {webhooks.MAX_AUDIT_ANNOTATIONS} auditAnnotations",
            )
        )
    keys: set[str] = set()
    for i, annotation in enumerate(annotations):
        path = f"spec.auditAnnotations[{i}]"
        errs.extend(_audit_annotation(annotation, name, params, opts, path))
        key = as_str(as_dict(annotation).get("key"))
        if key in keys:
            errs.append(errors.duplicate(f"{path}.key", key))
        keys.add(key)
    return errs


def validate_policy(
    obj: dict[str, Any], *, compile: webhooks.Compile | None = None
) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=False, name_fn=names.name_is_dns_subdomain)
    name = as_str(as_dict(obj.get("metadata")).get("name"))
    return errs + _policy_spec(name, as_dict(obj.get("spec")), webhooks._Options(compile=compile))


def validate_policy_update(
    new: dict[str, Any], old: dict[str, Any], *, compile: webhooks.Compile | None = None
) -> list[FieldError]:
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    opts = webhooks._Options(
        compile=compile,
        ignore_match_conditions=(
            new_spec.get("paramKind") == old_spec.get("paramKind")
            and new_spec.get("matchConditions") == old_spec.get("matchConditions")
        ),
    )
    name = as_str(as_dict(new.get("metadata")).get("name"))
    return meta.validate_object_meta_update(new, old) + _policy_spec(name, new_spec, opts)


def validate_policy_status_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    checking = as_dict(as_dict(new.get("status")).get("typeChecking"))
    for i, warning in enumerate(as_list(checking.get("expressionWarnings"))):
        warning = as_dict(warning)
        path = f"status.typeChecking.expressionWarnings[{i}]"
        if not as_str(warning.get("warning")):
            errs.append(errors.required(f"{path}.warning"))
        if not as_str(warning.get("fieldRef")).strip():
            errs.append(errors.required(f"{path}.fieldRef"))
    return errs


def _param_ref(ref: Any, path: str) -> list[FieldError]:
    if ref is None:
        return []
    ref = as_dict(ref)
    errs: list[FieldError] = []
    name, selector = as_str(ref.get("name")), ref.get("selector")
    exclusive = "name and selector are mutually exclusive"
    if name:
        errs.extend(
            errors.invalid_value(f"{path}.name", name, m)
            for m in names.name_is_path_segment(name, False)
        )
        if selector is not None:
            errs.append(errors.field_forbidden(f"{path}.name", exclusive))
    if selector is not None:
        errs.extend(meta.validate_label_selector(selector, f"{path}.selector"))
        if name:
            errs.append(errors.field_forbidden(f"{path}.selector", exclusive))
    if not name and selector is None:
        errs.append(errors.required(path, "one of name or selector must be specified"))
    action = ref.get("parameterNotFoundAction")
    if not action:
        errs.append(errors.required(f"{path}.parameterNotFoundAction"))
    elif action not in ("Deny", "Allow"):
        errs.append(
            errors.not_supported(f"{path}.parameterNotFoundAction", action, ["Deny", "Allow"])
        )
    return errs


def _validation_actions(actions: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, action in enumerate(actions):
        if action not in webhooks.VALIDATION_ACTIONS:
            errs.append(errors.not_supported(f"{path}[{i}]", action, webhooks.VALIDATION_ACTIONS))
        if action in seen:
            errs.append(errors.duplicate(f"{path}[{i}]", action))
        seen.add(as_str(action))
    if "Deny" in seen and "Warn" in seen:
        errs.append(
            errors.invalid_value(
                path,
                errors.go_string_list(actions, "[]admissionregistration.ValidationAction"),
                "must not contain both Deny and Warn (repeating the same validation failure "
                "information in the API response and headers serves no purpose)",
            )
        )
    if not seen:
        errs.append(errors.required(path, "at least one validation action is required"))
    return errs


def validate_binding(obj: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=False, name_fn=names.name_is_dns_subdomain)
    spec = as_dict(obj.get("spec"))
    policy = as_str(spec.get("policyName"))
    if not policy:
        errs.append(errors.required("spec.policyName"))
    else:
        errs.extend(
            errors.invalid_value("spec.policyName", policy, m)
            for m in names.name_is_dns_subdomain(policy, False)
        )
    errs.extend(_param_ref(spec.get("paramRef"), "spec.paramRef"))
    # Upstream's path, spelling included.
    errs.extend(validate_match_resources(spec.get("matchResources"), "spec.matchResouces"))
    errs.extend(
        _validation_actions(as_list(spec.get("validationActions")), "spec.validationActions")
    )
    return errs


def validate_binding_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return meta.validate_object_meta_update(new, old) + validate_binding(new)
