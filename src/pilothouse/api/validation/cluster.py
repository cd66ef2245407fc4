"""Leases, EndpointSlices, PriorityClasses and PodDisruptionBudgets."""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import apps, meta, names, services
from pilothouse.api.validation.fields import as_dict, as_int, as_list, as_str, is_int

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES = {
    "system-node-critical": 2_000_001_000,
    "system-cluster-critical": 2_000_000_000,
}
_PROTOCOLS = ("SCTP", "TCP", "UDP")


def validate_lease(lease: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(lease, namespaced=True, name_fn=names.name_is_dns_subdomain)
    spec = as_dict(lease.get("spec"))
    duration = spec.get("leaseDurationSeconds")
    if is_int(duration) and duration <= 0:
        errs.append(
            errors.invalid_value("spec.leaseDurationSeconds", duration, "must be greater than 0")
        )
    transitions = spec.get("leaseTransitions")
    if is_int(transitions) and transitions < 0:
        errs.append(
            errors.invalid_value(
                "spec.leaseTransitions", transitions, "must be greater than or equal to 0"
            )
        )
    strategy = spec.get("strategy")
    if strategy is not None:
        text = as_str(strategy)
        if "/" in text:
            errs.extend(
                errors.invalid_value("spec.strategy", text, m)
                for m in names.is_qualified_name(text)
            )
        elif text != "OldestEmulationVersion":
            errs.append(errors.not_supported("spec.strategy", text, ("OldestEmulationVersion",)))
    if spec.get("preferredHolder") and not strategy:
        errs.append(
            errors.field_forbidden(
                "spec.preferredHolder", "may only be specified if `strategy` is defined"
            )
        )
    return errs


def _fqdn(value: str, path: str) -> list[FieldError]:
    if not value:
        return [errors.required(path)]
    name = value.removesuffix(".")
    problems = names.is_dns1123_subdomain(name)
    if problems:
        return [errors.invalid_value(path, name, ",".join(problems))]
    if len(name.split(".")) < 2:
        return [
            errors.invalid_value(
                path, name, "should be a domain with at least two segments separated by dots"
            )
        ]
    for label in name.split("."):
        problems = names.is_dns1123_label(label)
        if problems:
            return [errors.invalid_value(path, label, ",".join(problems))]
    return []


def _slice_address(address: str, kind: str, path: str) -> list[FieldError]:
    if kind in ("IPv4", "IPv6"):
        ip = names.parse_ip(address)
        if ip is None or ip.version != int(kind[-1]):
            return [errors.invalid_value(path, address, f"must be a valid {kind} address")]
        return services.non_special_ip(address, path)
    if kind == "FQDN":
        return _fqdn(address, path)
    return []


def validate_endpoint_slice(
    eps: dict[str, Any], *, old_address_type: Any = None
) -> list[FieldError]:
    errs = meta.validate_object_meta(eps, namespaced=True, name_fn=names.name_is_dns_subdomain)
    kind = as_str(eps.get("addressType"))
    if not kind:
        errs.append(errors.required("addressType"))
    elif kind not in ADDRESS_TYPES and not (kind == "IP" and old_address_type is not None):
        errs.append(errors.not_supported("addressType", kind, ADDRESS_TYPES))
    endpoints = as_list(eps.get("endpoints"))
    if len(endpoints) > 1000:
        errs.append(errors.too_many("endpoints", len(endpoints), 1000))
        endpoints = []
    for i, endpoint in enumerate(endpoints):
        endpoint = as_dict(endpoint)
        epath = f"endpoints[{i}]"
        addresses = as_list(endpoint.get("addresses"))
        if not addresses:
            errs.append(errors.required(f"{epath}.addresses", "must contain at least 1 address"))
        elif len(addresses) > 100:
            errs.append(errors.too_many(f"{epath}.addresses", len(addresses), 100))
        for j, address in enumerate(addresses):
            errs.extend(_slice_address(as_str(address), kind, f"{epath}.addresses[{j}]"))
        node_name = endpoint.get("nodeName")
        if node_name is not None:
            errs.extend(
                errors.invalid_value(f"{epath}.nodeName", node_name, m)
                for m in names.name_is_dns_subdomain(as_str(node_name), False)
            )
        topology = as_dict(endpoint.get("deprecatedTopology"))
        if len(topology) > 16:
            errs.append(errors.too_many(f"{epath}.deprecatedTopology", len(topology), 16))
        errs.extend(meta.validate_labels(topology, f"{epath}.deprecatedTopology"))
        for key in ("zone", "hostname"):
            value = endpoint.get(key)
            if value is not None:
                errs.extend(
                    errors.invalid_value(f"{epath}.{key}", value, m)
                    for m in names.is_dns1123_label(as_str(value))
                )
        zones = as_list(as_dict(endpoint.get("hints")).get("forZones"))
        if len(zones) > 8:
            errs.append(errors.too_many(f"{epath}.hints.forZones", len(zones), 8))
            continue
        seen_zones: set[str] = set()
        for j, zone in enumerate(zones):
            zone_name = as_str(as_dict(zone).get("name"))
            zpath = f"{epath}.hints.forZones[{j}].name"
            if zone_name in seen_zones:
                errs.append(errors.duplicate(zpath, zone_name))
            seen_zones.add(zone_name)
            errs.extend(
                errors.invalid_value(zpath, zone_name, m)
                for m in names.is_valid_label_value(zone_name)
            )
    ports = as_list(eps.get("ports"))
    if len(ports) > 20000:
        return [*errs, errors.too_many("ports", len(ports), 20000)]
    seen: set[str] = set()
    for i, port in enumerate(ports):
        port = as_dict(port)
        ppath = f"ports[{i}]"
        name = as_str(port.get("name"))
        if name:
            errs.extend(
                errors.invalid_value(f"{ppath}.name", name, m) for m in names.is_dns1123_label(name)
            )
        if name in seen:
            errs.append(errors.duplicate(f"{ppath}.name", name))
        seen.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            errs.append(errors.required(f"{ppath}.protocol"))
        elif protocol not in _PROTOCOLS:
            errs.append(errors.not_supported(f"{ppath}.protocol", protocol, _PROTOCOLS))
        app_protocol = port.get("appProtocol")
        if app_protocol is not None:
            errs.extend(
                errors.invalid_value(f"{ppath}.appProtocol", app_protocol, m)
                for m in names.is_qualified_name(as_str(app_protocol))
            )
    return errs


def validate_endpoint_slice_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    errs += validate_endpoint_slice(new, old_address_type=old.get("addressType"))
    return errs + meta.validate_immutable(
        new.get("addressType"), old.get("addressType"), "addressType"
    )


def validate_priority_class(pc: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(pc, namespaced=False, name_fn=names.name_is_dns_subdomain)
    name = as_str(as_dict(pc.get("metadata")).get("name"))
    value = as_int(pc.get("value"))
    if name.startswith("system-"):
        reason = None
        if name not in SYSTEM_PRIORITY_CLASSES:
            reason = f"{name} is not a known system priority class"
        elif SYSTEM_PRIORITY_CLASSES[name] != value:
            reason = f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
        elif pc.get("globalDefault") is True:
            reason = f"globalDefault of {name} PriorityClass must be false"
        if reason:
            errs.append(
                errors.field_forbidden(
                    "metadata.name",
                    f"priority class names with 'system-' prefix are reserved for system use only. error: {reason}",
                )
            )
    elif value > HIGHEST_USER_PRIORITY:
        errs.append(
            errors.field_forbidden(
                "value",
                f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}",
            )
        )
    policy = pc.get("preemptionPolicy")
    if policy is not None:
        if not policy:
            errs.append(errors.required("preemptionPolicy"))
        elif policy not in ("PreemptLowerPriority", "Never"):
            errs.append(
                errors.not_supported("preemptionPolicy", policy, ("PreemptLowerPriority", "Never"))
            )
    return errs


def validate_priority_class_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    if new.get("value") != old.get("value"):
        errs.append(errors.field_forbidden("value", "may not be changed in an update."))
    errs += meta.validate_immutable(
        new.get("preemptionPolicy"), old.get("preemptionPolicy"), "preemptionPolicy"
    )
    return errs + validate_priority_class(new)


def validate_pdb(pdb: dict[str, Any]) -> list[FieldError]:
    """PodDisruptionBudgets have no kind-specific name rule: only the generic one applies."""
    spec = as_dict(pdb.get("spec"))
    errs: list[FieldError] = []
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        errs.append(
            errors.invalid_value(
                "spec",
                errors.GoValue(repr(spec)),
                "minAvailable and maxUnavailable cannot be both set",
            )
        )
    for key, value in (("minAvailable", min_available), ("maxUnavailable", max_unavailable)):
        if value is not None:
            errs.extend(apps.validate_positive_int_or_percent(value, f"spec.{key}"))
            errs.extend(apps.not_more_than_100_percent(value, f"spec.{key}"))
    errs.extend(meta.validate_label_selector(spec.get("selector"), "spec.selector"))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("AlwaysAllow", "IfHealthyBudget"):
        errs.append(
            errors.not_supported(
                "spec.unhealthyPodEvictionPolicy", policy, ("AlwaysAllow", "IfHealthyBudget")
            )
        )
    return errs
