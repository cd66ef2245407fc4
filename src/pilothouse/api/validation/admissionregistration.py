"""``admissionregistration.k8s.io/v1`` (``pkg/apis/admissionregistration/validation``).

Webhook configurations, ValidatingAdmissionPolicies and their bindings, with
upstream's messages. An update is checked with the relaxations upstream grants
to what was already stored: a configuration whose webhooks were already allowed
side effects, unknown review versions or duplicate names keeps them.

CEL expressions (match conditions, validations, variables, audit annotations) are
compiled in admission's CEL environment (:mod:`pilothouse.api.admission_cel`, loaded
only when there is an expression to compile); a ``compile`` function given instead
returns ``None`` for a good expression or the compiler's message.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int

ACCEPTED_REVIEW_VERSIONS = ("v1", "v1beta1")
FAILURE_POLICIES = ("Fail", "Ignore")
MATCH_POLICIES = ("Equivalent", "Exact")
SIDE_EFFECTS = ("None", "NoneOnDryRun", "Some", "Unknown")
NO_SIDE_EFFECTS = ("None", "NoneOnDryRun")
OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
REINVOCATION_POLICIES = ("IfNeeded", "Never")
SCOPES = ("*", "Cluster", "Namespaced")
VALIDATION_ACTIONS = ("Audit", "Deny", "Warn")
POLICY_REASONS = ("Forbidden", "Invalid", "RequestEntityTooLarge")
MAX_MATCH_CONDITIONS = 64
MAX_AUDIT_ANNOTATIONS = 20
MAX_AUDIT_VALUE_EXPRESSION = 5 * 1024

# (expression, what it is: "condition" | "message" | "variable" | "audit", has params)
# -> None, or the compiler's complaint.
Compile = Callable[[str, str, bool], str | None]

_CEL_IDENT = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*\Z")
_CEL_RESERVED = frozenset(
    {
        "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
        "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
        "void", "while",
    }
)  # fmt: skip


@dataclass
class _Options:
    require_no_side_effects: bool = True
    require_recognized_review_version: bool = True
    require_unique_names: bool = True
    allow_invalid_label_value: bool = False
    ignore_match_conditions: bool = False
    params_in_match_conditions: bool = False
    compile: Compile | None = None
    seen: set[str] = field(default_factory=set)


def is_cel_identifier(name: str) -> bool:
    return bool(_CEL_IDENT.match(name)) and name not in _CEL_RESERVED


def _fully_qualified_name(name: str, path: str) -> list[FieldError]:
    if not name:
        return [errors.required(path)]
    problems = names.is_dns1123_subdomain(name)
    if problems:
        return [errors.invalid_value(path, name, ",".join(problems))]
    if len(name.split(".")) < 3:
        return [
            errors.invalid_value(
                path, name, "should be a domain with at least three segments separated by dots"
            )
        ]
    return []


def _has_wildcard(values: list[Any]) -> bool:
    return "*" in values


def _validate_resources(resources: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not resources:
        errs.append(errors.required(path))
    wildcard_sub: set[str] = set()  # x/*
    wildcard_res: set[str] = set()  # */x
    double = single = plain = False
    for i, item in enumerate(resources):
        res_sub = as_str(item)
        if not res_sub:
            errs.append(errors.required(f"{path}[{i}]"))
            continue
        if res_sub == "*/*":
            double = True
        if res_sub == "*":
            single = True
        if "/" not in res_sub:
            plain = res_sub != "*"
            continue
        res, sub = res_sub.split("/", 1)
        if res in wildcard_sub:
            errs.append(
                errors.invalid_value(
                    f"{path}[{i}]", res_sub, f"if '{res}/*' is present, must not specify {res_sub}"
                )
            )
        if sub in wildcard_res:
            errs.append(
                errors.invalid_value(
                    f"{path}[{i}]", res_sub, f"if '*/{sub}' is present, must not specify {res_sub}"
                )
            )
        if sub == "*":
            wildcard_sub.add(res)
        if res == "*":
            wildcard_res.add(sub)
    shown = errors.go_string_list(resources)
    if len(resources) > 1 and double:
        errs.append(
            errors.invalid_value(
                path, shown, "if '*/*' is present, must not specify other resources"
            )
        )
    if single and plain:
        errs.append(
            errors.invalid_value(
                path,
                shown,
                "if '*' is present, must not specify other resources without subresources",
            )
        )
    return errs


def _validate_rule(rule: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    groups = as_list(rule.get("apiGroups"))
    if not groups:
        errs.append(errors.required(f"{path}.apiGroups"))
    if len(groups) > 1 and _has_wildcard(groups):
        errs.append(
            errors.invalid_value(
                f"{path}.apiGroups",
                errors.go_string_list(groups),
                "if '*' is present, must not specify other API groups",
            )
        )
    versions = as_list(rule.get("apiVersions"))
    if not versions:
        errs.append(errors.required(f"{path}.apiVersions"))
    if len(versions) > 1 and _has_wildcard(versions):
        errs.append(
            errors.invalid_value(
                f"{path}.apiVersions",
                errors.go_string_list(versions),
                "if '*' is present, must not specify other API versions",
            )
        )
    for i, version in enumerate(versions):
        if not version:
            errs.append(errors.required(f"{path}.apiVersions[{i}]"))
    errs.extend(_validate_resources(as_list(rule.get("resources")), f"{path}.resources"))
    scope = rule.get("scope")
    if scope is not None and scope not in SCOPES:
        errs.append(errors.not_supported(f"{path}.scope", scope, SCOPES))
    return errs


def validate_rule_with_operations(rule: Any, path: str) -> list[FieldError]:
    rule = as_dict(rule)
    errs: list[FieldError] = []
    operations = as_list(rule.get("operations"))
    if not operations:
        errs.append(errors.required(f"{path}.operations"))
    if len(operations) > 1 and _has_wildcard(operations):
        errs.append(
            errors.invalid_value(
                f"{path}.operations",
                errors.go_string_list(operations, "[]admissionregistration.OperationType"),
                "if '*' is present, must not specify other operations",
            )
        )
    for i, operation in enumerate(operations):
        if operation not in OPERATIONS:
            errs.append(errors.not_supported(f"{path}.operations[{i}]", operation, OPERATIONS))
    return errs + _validate_rule(rule, path)


def validate_webhook_url(url: str, path: str) -> list[FieldError]:
    form = "; desired format: https://host[/path]"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        return [errors.required(path, f"url must be a valid URL: {exc}{form}")]
    errs: list[FieldError] = []
    if parts.scheme != "https":
        errs.append(
            errors.invalid_value(
                path, parts.scheme, "'https' is the only allowed URL scheme" + form
            )
        )
    host = parts.netloc.rpartition("@")[2]
    if not host:
        errs.append(errors.invalid_value(path, host, "host must be specified" + form))
    if "@" in parts.netloc:
        user = parts.netloc.rpartition("@")[0]
        errs.append(
            errors.invalid_value(path, user, "user information is not permitted in the URL")
        )
    if parts.fragment:
        errs.append(
            errors.invalid_value(path, parts.fragment, "fragments are not permitted in the URL")
        )
    if parts.query:
        errs.append(
            errors.invalid_value(path, parts.query, "query parameters are not permitted in the URL")
        )
    return errs


def validate_webhook_service(service: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not as_str(service.get("name")):
        errs.append(errors.required(f"{path}.name", "service name is required"))
    if not as_str(service.get("namespace")):
        errs.append(errors.required(f"{path}.namespace", "service namespace is required"))
    port = service.get("port")
    port_value = port if is_int(port) else 0
    problems = names.is_valid_port_num(port_value)
    if problems:
        errs.append(
            errors.invalid_value(
                f"{path}.port", port_value, "port is not valid: " + ", ".join(problems)
            )
        )
    url_path = service.get("path")
    if url_path is None:
        return errs
    url_path = as_str(url_path)
    if url_path in ("", "/"):
        return errs
    if url_path == "//":
        errs.append(errors.invalid_value(f"{path}.path", url_path, "segment[0] may not be empty"))
        return errs
    if not url_path.startswith("/"):
        errs.append(errors.invalid_value(f"{path}.path", url_path, "must start with a '/'"))
    to_check = url_path[1:].removesuffix("/")
    for i, step in enumerate(to_check.split("/")):
        if not step:
            errs.append(
                errors.invalid_value(f"{path}.path", url_path, f"segment[{i}] may not be empty")
            )
            continue
        errs.extend(
            errors.invalid_value(f"{path}.path", url_path, f"segment[{i}]: {m}")
            for m in names.is_dns1123_subdomain(step)
        )
    return errs


def _client_config(config: Any, path: str) -> list[FieldError]:
    config = as_dict(config)
    url, service = config.get("url"), config.get("service")
    if (url is None) == (service is None):
        return [errors.required(path, "exactly one of url or service is required")]
    if url is not None:
        return validate_webhook_url(as_str(url), f"{path}.url")
    return validate_webhook_service(as_dict(service), f"{path}.service")


def _cel_error(path: str, expression: str, problem: str) -> FieldError:
    return errors.invalid_value(path, expression, problem)


def _default_compile() -> Compile:
    from pilothouse.api import admission_cel  # the CEL engine: only when needed

    return admission_cel.check


def _match_conditions(conditions: list[Any], opts: _Options, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if conditions and opts.compile is None:
        opts.compile = _default_compile()
    if len(conditions) > MAX_MATCH_CONDITIONS:
        errs.append(errors.too_many(path, len(conditions), MAX_MATCH_CONDITIONS))
    seen: set[str] = set()
    for i, condition in enumerate(conditions):
        condition = as_dict(condition)
        item = f"{path}[{i}]"
        expression = as_str(condition.get("expression")).strip()
        if not expression:
            errs.append(errors.required(f"{item}.expression"))
        elif opts.compile is not None:
            problem = opts.compile(expression, "condition", opts.params_in_match_conditions)
            if problem:
                errs.append(_cel_error(f"{item}.expression", expression, problem))
        name = as_str(condition.get("name"))
        if not name:
            errs.append(errors.required(f"{item}.name"))
        else:
            errs.extend(
                errors.invalid_value(f"{item}.name", name, m) for m in names.is_qualified_name(name)
            )
            if name in seen:
                errs.append(errors.duplicate(f"{item}.name", name))
            seen.add(name)
    return errs


def _review_versions(versions: Any, opts: _Options, path: str) -> list[FieldError]:
    versions = as_list(versions)
    if not versions:
        return [errors.required(path, f"must specify one of {', '.join(ACCEPTED_REVIEW_VERSIONS)}")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    accepted = False
    for i, version in enumerate(versions):
        version = as_str(version)
        if version in seen:
            errs.append(errors.invalid_value(f"{path}[{i}]", version, "duplicate version"))
            continue
        seen.add(version)
        errs.extend(
            errors.invalid_value(f"{path}[{i}]", version, m)
            for m in names.is_dns1035_label(version)
        )
        accepted = accepted or version in ACCEPTED_REVIEW_VERSIONS
    if opts.require_recognized_review_version and not accepted:
        errs.append(
            errors.invalid_value(
                path,
                errors.go_string_list(versions),
                f"must include at least one of {', '.join(ACCEPTED_REVIEW_VERSIONS)}",
            )
        )
    return errs


def _webhook(
    hook: dict[str, Any], opts: _Options, path: str, *, mutating: bool
) -> list[FieldError]:
    errs = _fully_qualified_name(as_str(hook.get("name")), f"{path}.name")
    for i, rule in enumerate(as_list(hook.get("rules"))):
        errs.extend(validate_rule_with_operations(rule, f"{path}.rules[{i}]"))
    failure = hook.get("failurePolicy")
    if failure is not None and failure not in FAILURE_POLICIES:
        errs.append(errors.not_supported(f"{path}.failurePolicy", failure, FAILURE_POLICIES))
    match_policy = hook.get("matchPolicy")
    if match_policy is not None and match_policy not in MATCH_POLICIES:
        errs.append(errors.not_supported(f"{path}.matchPolicy", match_policy, MATCH_POLICIES))
    allowed = NO_SIDE_EFFECTS if opts.require_no_side_effects else SIDE_EFFECTS
    side_effects = hook.get("sideEffects")
    if side_effects is None:
        errs.append(
            errors.required(f"{path}.sideEffects", f"must specify one of {', '.join(allowed)}")
        )
    elif side_effects not in allowed:
        errs.append(errors.not_supported(f"{path}.sideEffects", side_effects, allowed))
    timeout = hook.get("timeoutSeconds")
    if is_int(timeout) and not 1 <= timeout <= 30:
        errs.append(
            errors.invalid_value(
                f"{path}.timeoutSeconds",
                timeout,
                "the timeout value must be between 1 and 30 seconds",
            )
        )
    for key in ("namespaceSelector", "objectSelector"):
        errs.extend(
            meta.validate_label_selector(
                hook.get(key),
                f"{path}.{key}",
                allow_invalid_label_value=opts.allow_invalid_label_value,
            )
        )
    if mutating:
        policy = hook.get("reinvocationPolicy")
        if policy is not None and policy not in REINVOCATION_POLICIES:
            errs.append(
                errors.not_supported(f"{path}.reinvocationPolicy", policy, REINVOCATION_POLICIES)
            )
    errs.extend(_client_config(hook.get("clientConfig"), f"{path}.clientConfig"))
    if not opts.ignore_match_conditions:
        errs.extend(
            _match_conditions(as_list(hook.get("matchConditions")), opts, f"{path}.matchConditions")
        )
    return errs


def _configuration(obj: dict[str, Any], opts: _Options, *, mutating: bool) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, namespaced=False, name_fn=names.name_is_dns_subdomain)
    seen: set[str] = set()
    for i, hook in enumerate(as_list(obj.get("webhooks"))):
        hook = as_dict(hook)
        path = f"webhooks[{i}]"
        errs.extend(_webhook(hook, opts, path, mutating=mutating))
        errs.extend(
            _review_versions(
                hook.get("admissionReviewVersions"), opts, f"{path}.admissionReviewVersions"
            )
        )
        name = as_str(hook.get("name"))
        if opts.require_unique_names and name:
            if name in seen:
                errs.append(errors.duplicate(f"{path}.name", name))
            seen.add(name)
    return errs


def _update_options(old: dict[str, Any], compile: Compile | None) -> _Options:
    """What an update may keep because the stored object already had it."""
    hooks = [as_dict(h) for h in as_list(old.get("webhooks"))]
    hook_names = [as_str(h.get("name")) for h in hooks]

    def invalid_selector(hook: dict[str, Any]) -> bool:
        return any(
            meta.validate_label_selector(hook.get(k), "")
            for k in ("namespaceSelector", "objectSelector")
        )

    return _Options(
        require_no_side_effects=all(h.get("sideEffects") in NO_SIDE_EFFECTS for h in hooks),
        require_recognized_review_version=all(
            not as_list(h.get("admissionReviewVersions"))
            or any(v in ACCEPTED_REVIEW_VERSIONS for v in as_list(h.get("admissionReviewVersions")))
            for h in hooks
        ),
        require_unique_names=len(set(hook_names)) == len(hook_names),
        allow_invalid_label_value=any(invalid_selector(h) for h in hooks),
        compile=compile,
    )


def _same_match_conditions(new: dict[str, Any], old: dict[str, Any]) -> bool:
    new_hooks, old_hooks = as_list(new.get("webhooks")), as_list(old.get("webhooks"))
    return len(new_hooks) == len(old_hooks) and all(
        as_dict(a).get("matchConditions") == as_dict(b).get("matchConditions")
        for a, b in zip(new_hooks, old_hooks, strict=True)
    )


def validate_mutating_webhook_configuration(
    obj: dict[str, Any], *, compile: Compile | None = None
) -> list[FieldError]:
    return _configuration(obj, _Options(compile=compile), mutating=True)


def validate_validating_webhook_configuration(
    obj: dict[str, Any], *, compile: Compile | None = None
) -> list[FieldError]:
    return _configuration(obj, _Options(compile=compile), mutating=False)


def validate_mutating_webhook_configuration_update(
    new: dict[str, Any], old: dict[str, Any], *, compile: Compile | None = None
) -> list[FieldError]:
    opts = _update_options(old, compile)
    opts.ignore_match_conditions = _same_match_conditions(new, old)
    return meta.validate_object_meta_update(new, old) + _configuration(new, opts, mutating=True)


def validate_validating_webhook_configuration_update(
    new: dict[str, Any], old: dict[str, Any], *, compile: Compile | None = None
) -> list[FieldError]:
    opts = _update_options(old, compile)
    opts.ignore_match_conditions = _same_match_conditions(new, old)
    return meta.validate_object_meta_update(new, old) + _configuration(new, opts, mutating=False)
