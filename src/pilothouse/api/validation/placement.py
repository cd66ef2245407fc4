"""Where pods may run: affinity, node selectors, tolerations, taints, topology spread, DNS.

Follows the scheduling-related parts of upstream's core validation
(``validateAffinity``, ``ValidateTolerations``, ``validateNodeTaints``,
``validateTopologySpreadConstraints``, ``validatePodDNSConfig``).
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_WEIGHT_RANGE = "must be in the range 1-100"


def node_selector_requirement(
    req: dict[str, Any], path: str, *, check_values: bool
) -> list[FieldError]:
    errs: list[FieldError] = []
    operator = req.get("operator")
    values = as_list(req.get("values"))
    if operator in ("In", "NotIn"):
        if not values:
            errs.append(
                errors.required(
                    f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                )
            )
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            errs.append(
                errors.field_forbidden(
                    f"{path}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
    elif operator in ("Gt", "Lt"):
        if len(values) != 1:
            errs.append(
                errors.required(
                    f"{path}.values",
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                )
            )
    else:
        errs.append(
            errors.invalid_value(
                f"{path}.operator", as_str(operator), "not a valid selector operator"
            )
        )
    errs.extend(meta.validate_label_name(as_str(req.get("key")), f"{path}.key"))
    if check_values:
        for i, value in enumerate(values):
            errs.extend(
                errors.invalid_value(f"{path}.values[{i}]", value, m)
                for m in names.is_valid_label_value(as_str(value))
            )
    return errs


def _node_field_requirement(req: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    values = as_list(req.get("values"))
    if req.get("operator") in ("In", "NotIn"):
        if len(values) != 1:
            errs.append(
                errors.required(
                    f"{path}.values",
                    "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                )
            )
    else:
        errs.append(
            errors.invalid_value(
                f"{path}.operator", as_str(req.get("operator")), "not a valid selector operator"
            )
        )
    if req.get("key") != "metadata.name":
        errs.append(
            errors.invalid_value(
                f"{path}.key", as_str(req.get("key")), "not a valid field selector key"
            )
        )
    else:
        for i, value in enumerate(values):
            errs.extend(
                errors.invalid_value(f"{path}.values[{i}]", value, m)
                for m in names.name_is_dns_subdomain(as_str(value), False)
            )
    return errs


def node_selector_term(term: Any, path: str, *, check_values: bool) -> list[FieldError]:
    term = as_dict(term)
    errs: list[FieldError] = []
    for j, req in enumerate(as_list(term.get("matchExpressions"))):
        errs.extend(
            node_selector_requirement(
                as_dict(req), f"{path}.matchExpressions[{j}]", check_values=check_values
            )
        )
    for j, req in enumerate(as_list(term.get("matchFields"))):
        errs.extend(_node_field_requirement(as_dict(req), f"{path}.matchFields[{j}]"))
    return errs


def node_selector(selector: dict[str, Any], path: str) -> list[FieldError]:
    terms = as_list(selector.get("nodeSelectorTerms"))
    if not terms:
        return [
            errors.required(
                f"{path}.nodeSelectorTerms", "must have at least one node selector term"
            )
        ]
    errs: list[FieldError] = []
    for i, term in enumerate(terms):
        errs.extend(node_selector_term(term, f"{path}.nodeSelectorTerms[{i}]", check_values=True))
    return errs


def _pod_affinity_term(term: dict[str, Any], path: str) -> list[FieldError]:
    errs = meta.validate_label_selector(term.get("labelSelector"), f"{path}.labelSelector")
    errs += meta.validate_label_selector(term.get("namespaceSelector"), f"{path}.namespaceSelector")
    for namespace in as_list(term.get("namespaces")):
        errs.extend(
            errors.invalid_value(f"{path}.namespace", namespace, m)
            for m in names.name_is_dns_label(as_str(namespace), False)
        )
    selector = term.get("labelSelector")
    for key in ("matchLabelKeys", "mismatchLabelKeys"):
        label_keys = as_list(term.get(key))
        if not label_keys:
            continue
        if selector is None:
            errs.append(
                errors.field_forbidden(
                    f"{path}.{key}", "must not be specified when labelSelector is not set"
                )
            )
            continue
        for i, label_key in enumerate(label_keys):
            errs.extend(meta.validate_label_name(as_str(label_key), f"{path}.{key}[{i}]"))
    mismatch = set(map(str, as_list(term.get("mismatchLabelKeys"))))
    for i, label_key in enumerate(as_list(term.get("matchLabelKeys"))):
        if label_key in mismatch:
            errs.append(
                errors.invalid_value(
                    f"{path}.matchLabelKeys[{i}]",
                    label_key,
                    "exists in both matchLabelKeys and mismatchLabelKeys",
                )
            )
    topology_key = as_str(term.get("topologyKey"))
    if not topology_key:
        errs.append(errors.required(f"{path}.topologyKey", "can not be empty"))
    return errs + meta.validate_label_name(topology_key, f"{path}.topologyKey")


def _pod_affinity(affinity: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    for i, term in enumerate(as_list(affinity.get(required))):
        errs.extend(_pod_affinity_term(as_dict(term), f"{path}.{required}[{i}]"))
    for i, weighted in enumerate(as_list(affinity.get(preferred))):
        weighted = as_dict(weighted)
        weight = weighted.get("weight")
        if not is_int(weight) or not 0 < weight <= 100:
            errs.append(
                errors.invalid_value(
                    f"{path}.{preferred}[{i}].weight",
                    weight if is_int(weight) else 0,
                    _WEIGHT_RANGE,
                )
            )
        errs.extend(
            _pod_affinity_term(
                as_dict(weighted.get("podAffinityTerm")), f"{path}.{preferred}[{i}].podAffinityTerm"
            )
        )
    return errs


def affinity(value: Any, path: str) -> list[FieldError]:
    if not isinstance(value, dict):
        return []
    errs: list[FieldError] = []
    node = value.get("nodeAffinity")
    if isinstance(node, dict):
        npath = f"{path}.nodeAffinity"
        required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(required, dict):
            errs.extend(
                node_selector(required, f"{npath}.requiredDuringSchedulingIgnoredDuringExecution")
            )
        preferred = "preferredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(as_list(node.get(preferred))):
            term = as_dict(term)
            weight = term.get("weight")
            if not is_int(weight) or not 0 < weight <= 100:
                errs.append(
                    errors.invalid_value(
                        f"{npath}.{preferred}[{i}].weight",
                        weight if is_int(weight) else 0,
                        _WEIGHT_RANGE,
                    )
                )
            # Preferred terms may carry any label value: they can still be satisfied.
            errs.extend(
                node_selector_term(
                    term.get("preference"),
                    f"{npath}.{preferred}[{i}].preference",
                    check_values=False,
                )
            )
    for key in ("podAffinity", "podAntiAffinity"):
        if isinstance(value.get(key), dict):
            errs.extend(_pod_affinity(value[key], f"{path}.{key}"))
    return errs


def taint_effect(effect: Any, path: str, *, allow_empty: bool) -> list[FieldError]:
    if not effect and not allow_empty:
        return [errors.required(path)]
    if effect not in TAINT_EFFECTS:
        return [errors.not_supported(path, as_str(effect), TAINT_EFFECTS)]
    return []


def tolerations(values: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, toleration in enumerate(as_list(values)):
        toleration = as_dict(toleration)
        tpath = f"{path}[{i}]"
        key = as_str(toleration.get("key"))
        operator = as_str(toleration.get("operator"))
        value = as_str(toleration.get("value"))
        effect = as_str(toleration.get("effect"))
        if key:
            errs.extend(meta.validate_label_name(key, f"{tpath}.key"))
        if not key and operator != "Exists":
            errs.append(
                errors.invalid_value(
                    f"{tpath}.operator",
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values and all keys"',
                )
            )
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(
                errors.invalid_value(
                    f"{tpath}.effect",
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if operator in ("Equal", ""):
            msgs = names.is_valid_label_value(value)
            if msgs:
                errs.append(errors.invalid_value(f"{tpath}.operator", value, ";".join(msgs)))
        elif operator == "Exists":
            if value:
                errs.append(
                    errors.invalid_value(
                        f"{tpath}.operator",
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    )
                )
        else:
            errs.append(errors.not_supported(f"{tpath}.operator", operator, ("Equal", "Exists")))
        if effect:
            errs.extend(taint_effect(effect, f"{tpath}.effect", allow_empty=True))
    return errs


def node_taints(taints: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(as_list(taints)):
        taint = as_dict(taint)
        tpath = f"{path}[{i}]"
        key, value, effect = (
            as_str(taint.get("key")),
            as_str(taint.get("value")),
            as_str(taint.get("effect")),
        )
        errs.extend(meta.validate_label_name(key, f"{tpath}.key"))
        msgs = names.is_valid_label_value(value)
        if msgs:
            errs.append(errors.invalid_value(f"{tpath}.value", value, ";".join(msgs)))
        errs.extend(taint_effect(effect, f"{tpath}.effect", allow_empty=False))
        if (key, effect) in seen:
            errs.append(
                errors.FieldError(
                    errors.DUPLICATE,
                    tpath,
                    "taints must be unique by key and effect pair",
                    errors.GoValue(repr(taint)),
                )
            )
            continue
        seen.add((key, effect))
    return errs


def topology_spread(constraints: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    items = [as_dict(c) for c in as_list(constraints)]
    for i, c in enumerate(items):
        cpath = f"{path}[{i}]"
        skew = c.get("maxSkew")
        if not is_int(skew) or skew <= 0:
            errs.append(
                errors.invalid_value(
                    f"{cpath}.maxSkew", skew if is_int(skew) else 0, "must be greater than zero"
                )
            )
        if not as_str(c.get("topologyKey")):
            errs.append(errors.required(f"{cpath}.topologyKey", "can not be empty"))
        action = as_str(c.get("whenUnsatisfiable"))
        if action not in ("DoNotSchedule", "ScheduleAnyway"):
            errs.append(
                errors.not_supported(
                    f"{cpath}.whenUnsatisfiable", action, ("DoNotSchedule", "ScheduleAnyway")
                )
            )
        pair = (as_str(c.get("topologyKey")), action)
        rest = items[i + 1 :]
        if any(
            (as_str(o.get("topologyKey")), as_str(o.get("whenUnsatisfiable"))) == pair for o in rest
        ):
            errs.append(
                errors.duplicate(
                    f"{cpath}.{{topologyKey, whenUnsatisfiable}}",
                    f"{{{as_str(pair[0])}, {as_str(pair[1])}}}",
                )
            )
        min_domains = c.get("minDomains")
        if min_domains is not None:
            if not is_int(min_domains) or min_domains <= 0:
                errs.append(
                    errors.invalid_value(
                        f"{cpath}.minDomains", min_domains, "must be greater than zero"
                    )
                )
            if action != "DoNotSchedule":
                errs.append(
                    errors.invalid_value(
                        f"{cpath}.minDomains",
                        min_domains,
                        f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}",
                    )
                )
        for key in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            policy = c.get(key)
            if policy is not None and policy not in ("Honor", "Ignore"):
                errs.append(errors.not_supported(f"{cpath}.{key}", policy, ("Honor", "Ignore")))
        match_keys = as_list(c.get("matchLabelKeys"))
        selector = c.get("labelSelector")
        if match_keys:
            selector_keys = set(as_dict(as_dict(selector).get("matchLabels")))
            selector_keys |= {
                as_str(as_dict(e).get("key"))
                for e in as_list(as_dict(selector).get("matchExpressions"))
            }
            if selector is None:
                errs.append(
                    errors.field_forbidden(
                        f"{cpath}.matchLabelKeys",
                        "must not be specified when labelSelector is not set",
                    )
                )
            for j, key in enumerate(match_keys):
                errs.extend(meta.validate_label_name(as_str(key), f"{cpath}.matchLabelKeys[{j}]"))
                if key in selector_keys:
                    errs.append(
                        errors.invalid_value(
                            f"{cpath}.matchLabelKeys[{j}]",
                            key,
                            "exists in both matchLabelKeys and labelSelector",
                        )
                    )
        errs.extend(meta.validate_label_selector(selector, f"{cpath}.labelSelector"))
    return errs


def dns_config(spec: dict[str, Any], path: str) -> list[FieldError]:
    config = spec.get("dnsConfig")
    if spec.get("dnsPolicy") == "None":
        if not isinstance(config, dict):
            return [errors.required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not as_list(config.get("nameservers")):
            return [
                errors.required(
                    f"{path}.nameservers",
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if not isinstance(config, dict):
        return []
    errs: list[FieldError] = []
    servers = as_list(config.get("nameservers"))
    if len(servers) > 3:
        errs.append(
            errors.invalid_value(
                f"{path}.nameservers",
                errors.go_string_list(servers),
                "must not have more than 3 nameservers",
            )
        )
    for i, server in enumerate(servers):
        if names.parse_ip(as_str(server)) is None:
            errs.append(
                errors.invalid_value(
                    f"{path}.nameservers[{i}]",
                    server,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            )
    searches = [as_str(s) for s in as_list(config.get("searches"))]
    if len(searches) > 32:
        errs.append(
            errors.invalid_value(
                f"{path}.searches",
                errors.go_string_list(searches),
                "must not have more than 32 search paths",
            )
        )
    if len(" ".join(searches)) > 2048:
        errs.append(
            errors.invalid_value(
                f"{path}.searches",
                errors.go_string_list(searches),
                "must not have more than 2048 characters (including spaces) in the search list",
            )
        )
    for i, search in enumerate(searches):
        trimmed = search[:-1] if search.endswith(".") else search
        errs.extend(
            errors.invalid_value(f"{path}.searches[{i}]", trimmed, m)
            for m in names.is_dns1123_subdomain(trimmed)
        )
    for i, option in enumerate(as_list(config.get("options"))):
        if not as_str(as_dict(option).get("name")):
            errs.append(errors.required(f"{path}.options[{i}]", "must not be empty"))
    return errs
