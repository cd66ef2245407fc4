"""Namespaces, Nodes, ConfigMaps, Secrets, ServiceAccounts, Events and Bindings."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import meta, names, placement, resources
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int, semantic_equal

MAX_SECRET_SIZE = 1024 * 1024
_IMMUTABLE_SET = "field is immutable when `immutable` is set"


def validate_namespace(ns: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(ns, namespaced=False, name_fn=names.name_is_dns_label)
    for value in as_list(as_dict(ns.get("spec")).get("finalizers")):
        value = as_str(value)
        errs.extend(
            errors.invalid_value("spec.finalizers", value, m)
            for m in names.is_qualified_name(value)
        )
        errs.extend(meta.kube_finalizer_name(value, "spec.finalizers"))
    return errs


def validate_namespace_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    return meta.validate_object_meta_update(new, old)


def _node_resources(node: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    status = as_dict(node.get("status"))
    for key in ("capacity", "allocatable"):
        for name, value in as_dict(status.get(key)).items():
            q, bad = resources.parse_or_error(value, f"status.{key}.{name}")
            errs.extend(bad)
            if q is not None:
                errs.extend(resources.validate_quantity_value(name, q, f"status.{key}.{name}"))
    return errs


def _pod_cidrs(spec: dict[str, Any]) -> list[str]:
    cidrs = [as_str(c) for c in as_list(spec.get("podCIDRs"))]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [as_str(spec["podCIDR"])]
    return cidrs


def validate_node(node: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(node, namespaced=False, name_fn=names.name_is_dns_subdomain)
    spec = as_dict(node.get("spec"))
    # Upstream reports taint problems under metadata.taints.
    errs.extend(placement.node_taints(spec.get("taints"), "metadata.taints"))
    errs.extend(_node_resources(node))
    cidrs = _pod_cidrs(spec)
    for i, cidr in enumerate(cidrs):
        if names.parse_cidr(cidr) is None:
            errs.append(
                errors.invalid_value(
                    f"spec.podCIDRs[{i}]",
                    cidr,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                )
            )
    if len(cidrs) > 1:
        if not names.is_dual_stack(cidrs) or len(cidrs) > 2:
            errs.append(
                errors.invalid_value(
                    "spec.podCIDRs",
                    errors.go_string_list(cidrs),
                    "may specify no more than one CIDR for each IP family",
                )
            )
        for i, cidr in enumerate(cidrs):
            if cidr in cidrs[:i]:
                errs.append(errors.duplicate(f"spec.podCIDRs[{i}]", cidr))
    return errs


def validate_node_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old) + _node_resources(new)
    seen: list[Any] = []
    for i, address in enumerate(as_list(as_dict(new.get("status")).get("addresses"))):
        if address in seen:
            errs.append(errors.duplicate(f"status.addresses[{i}]", errors.GoValue(repr(address))))
        seen.append(address)
    spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    old_cidrs, cidrs = _pod_cidrs(old_spec), _pod_cidrs(spec)
    if old_cidrs and old_cidrs != cidrs:
        message = 'node updates may not change podCIDR except from "" to valid'
        count = (
            1
            if len(old_cidrs) != len(cidrs)
            else sum(a != b for a, b in zip(old_cidrs, cidrs, strict=True))
        )
        errs.extend(errors.field_forbidden("spec.podCIDRs", message) for _ in range(count))
    old_provider = as_str(old_spec.get("providerID"))
    if old_provider and old_provider != spec.get("providerID"):
        errs.append(
            errors.field_forbidden(
                "spec.providerID", 'node updates may not change providerID except from "" to valid'
            )
        )
    errs.extend(placement.node_taints(spec.get("taints"), "metadata.taints"))
    if spec.get("externalID") != old_spec.get("externalID"):
        errs.append(errors.field_forbidden("spec.externalID", "may not be updated"))
    return errs


def _decoded_data(data: dict[str, Any], path: str) -> tuple[dict[str, bytes], list[FieldError]]:
    out: dict[str, bytes] = {}
    errs: list[FieldError] = []
    for key, value in data.items():
        try:
            out[key] = base64.b64decode(as_str(value), validate=True)
        except (binascii.Error, ValueError) as exc:
            errs.append(
                errors.invalid_value(
                    f"{path}[{key}]", "<secret contents redacted>", f"illegal base64 data: {exc}"
                )
            )
    return out, errs


def _is_json_object(raw: bytes) -> str | None:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return str(exc)
    if not isinstance(value, dict):
        return "json: cannot unmarshal into Go value of type map[string]interface {}"
    return None


def validate_secret(secret: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(secret, namespaced=True, name_fn=names.name_is_dns_subdomain)
    data, decode_errs = _decoded_data(as_dict(secret.get("data")), "data")
    errs.extend(decode_errs)
    for key in as_dict(secret.get("data")):
        errs.extend(
            errors.invalid_value(f"data[{key}]", key, m) for m in names.is_config_map_key(key)
        )
    if sum(len(v) for v in data.values()) > MAX_SECRET_SIZE:
        errs.append(errors.too_long("data", MAX_SECRET_SIZE))
    kind = as_str(secret.get("type"))
    annotations = as_dict(as_dict(secret.get("metadata")).get("annotations"))
    if kind == "kubernetes.io/service-account-token":
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.append(errors.required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        raw = data.get(key)
        if key not in as_dict(secret.get("data")):
            errs.append(errors.required(f"data[{key}]"))
        elif raw is not None and (problem := _is_json_object(raw)):
            errs.append(errors.invalid_value(f"data[{key}]", "<secret contents redacted>", problem))
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            errs.append(errors.required("data[username]"))
            errs.append(errors.required("data[password]"))
    elif kind == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            errs.append(errors.required("data[ssh-privatekey]"))
    elif kind == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if key not in as_dict(secret.get("data")):
                errs.append(errors.required(f"data[{key}]"))
    return errs


def _immutable_contents(
    new: dict[str, Any], old: dict[str, Any], keys: tuple[str, ...]
) -> list[FieldError]:
    if old.get("immutable") is not True:
        return []
    errs: list[FieldError] = []
    if new.get("immutable") is not True:
        errs.append(errors.field_forbidden("immutable", _IMMUTABLE_SET))
    for key in keys:
        if not semantic_equal(new.get(key), old.get(key)):
            errs.append(errors.field_forbidden(key, _IMMUTABLE_SET))
    return errs


def validate_secret_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    errs.extend(meta.validate_immutable(as_str(new.get("type")), as_str(old.get("type")), "type"))
    errs.extend(_immutable_contents(new, old, ("data",)))
    return errs + validate_secret(new)


def validate_config_map(cm: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta(cm, namespaced=True, name_fn=names.name_is_dns_subdomain)
    data, binary = as_dict(cm.get("data")), as_dict(cm.get("binaryData"))
    total = 0
    for key, value in data.items():
        errs.extend(
            errors.invalid_value(f"data[{key}]", key, m) for m in names.is_config_map_key(key)
        )
        if key in binary:
            errs.append(
                errors.invalid_value(f"data[{key}]", key, "duplicate of key present in binaryData")
            )
        total += len(as_str(value).encode())
    for key, value in binary.items():
        errs.extend(
            errors.invalid_value(f"binaryData[{key}]", key, m) for m in names.is_config_map_key(key)
        )
        try:
            total += len(base64.b64decode(as_str(value), validate=True))
        except (binascii.Error, ValueError) as exc:
            errs.append(
                errors.invalid_value(
                    f"binaryData[{key}]", "<binary data>", f"illegal base64 data: {exc}"
                )
            )
    if total > MAX_SECRET_SIZE:
        errs.append(errors.too_long("", MAX_SECRET_SIZE))
    return errs


def validate_config_map_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    errs.extend(_immutable_contents(new, old, ("data", "binaryData")))
    return errs + validate_config_map(new)


def validate_service_account(sa: dict[str, Any]) -> list[FieldError]:
    return meta.validate_object_meta(sa, namespaced=True, name_fn=names.name_is_dns_subdomain)


def validate_binding(binding: dict[str, Any]) -> list[FieldError]:
    target = as_dict(binding.get("target"))
    errs: list[FieldError] = []
    kind = as_str(target.get("kind"))
    if kind and kind != "Node":
        errs.append(errors.not_supported("target.kind", kind, ("Node", "<empty>")))
    if not target.get("name"):
        errs.append(errors.required("target.name"))
    return errs


def _legacy_event(event: dict[str, Any]) -> list[FieldError]:
    """Rules every core/v1 Event obeys (``legacyValidateEvent``)."""
    errs: list[FieldError] = []
    namespace = as_str(as_dict(event.get("metadata")).get("namespace"))
    involved_namespace = as_str(as_dict(event.get("involvedObject")).get("namespace"))
    mismatch = errors.invalid_value(
        "involvedObject.namespace", involved_namespace, "does not match event.namespace"
    )
    if not event.get("eventTime"):
        if not involved_namespace:
            if namespace not in ("", "default"):
                errs.append(mismatch)
        elif namespace != involved_namespace:
            errs.append(mismatch)
    else:
        if not involved_namespace and namespace not in ("default", "kube-system"):
            errs.append(mismatch)
        controller = as_str(event.get("reportingComponent"))
        if not controller:
            errs.append(errors.required("reportingController"))
        errs.extend(
            errors.invalid_value("reportingController", controller, m)
            for m in names.is_qualified_name(controller)
        )
        for key, json_key, limit in (
            ("reportingInstance", "reportingInstance", 128),
            ("action", "action", 128),
            ("reason", "reason", 128),
        ):
            value = as_str(event.get(json_key))
            if not value:
                errs.append(errors.required(key))
            if len(value) > limit:
                errs.append(errors.invalid_value(key, "", f"can have at most {limit} characters"))
        if len(as_str(event.get("message"))) > 1024:
            errs.append(errors.invalid_value("message", "", "can have at most 1024 characters"))
    errs.extend(
        errors.invalid_value("namespace", namespace, m)
        for m in names.is_dns1123_subdomain(namespace)
    )
    return errs


def validate_event(event: dict[str, Any], *, strict: bool) -> list[FieldError]:
    """A core-shaped Event; ``strict`` for events.k8s.io/v1 requests."""
    errs = _legacy_event(event)
    if not strict:
        return errs
    errs.extend(
        meta.validate_object_meta(event, namespaced=True, name_fn=names.name_is_dns_subdomain)
    )
    errs.extend(_event_series(event))
    if not event.get("eventTime"):
        errs.append(errors.required("eventTime"))
    kind = as_str(event.get("type"))
    if kind not in ("Normal", "Warning"):
        errs.append(errors.invalid_value("type", "", f"has invalid value: {kind}"))
    for key in ("firstTimestamp", "lastTimestamp"):
        if event.get(key):
            errs.append(errors.invalid_value(key, "", "needs to be unset"))
    if is_int(event.get("count")) and event["count"] != 0:
        errs.append(errors.invalid_value("count", "", "needs to be unset"))
    source = as_dict(event.get("source"))
    if source.get("component") or source.get("host"):
        errs.append(errors.invalid_value("source", "", "needs to be unset"))
    return errs


def _event_series(event: dict[str, Any]) -> list[FieldError]:
    series = event.get("series")
    if not isinstance(series, dict):
        return []
    errs: list[FieldError] = []
    count = series.get("count")
    if not is_int(count) or count < 2:
        errs.append(errors.invalid_value("series.count", "", "should be at least 2"))
    if not series.get("lastObservedTime"):
        errs.append(errors.required("series.lastObservedTime"))
    return errs


_EVENT_IMMUTABLE = (
    ("involvedObject", "involvedObject"),
    ("reason", "reason"),
    ("message", "message"),
    ("source", "source"),
    ("firstTimestamp", "firstTimestamp"),
    ("lastTimestamp", "lastTimestamp"),
    ("count", "count"),
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("action", "action"),
    ("related", "related"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
)


def validate_event_update(
    new: dict[str, Any], old: dict[str, Any], *, strict: bool
) -> list[FieldError]:
    errs = _legacy_event(new)
    if not strict:
        return errs
    errs.extend(meta.validate_object_meta_update(new, old))
    if not semantic_equal(new.get("series"), old.get("series")):
        errs.extend(_event_series(new))
    for json_key, path in _EVENT_IMMUTABLE:
        errs.extend(meta.validate_immutable(new.get(json_key), old.get(json_key), path))
    return errs


def event_from_events_v1(event: dict[str, Any]) -> dict[str, Any]:
    """An events.k8s.io/v1 Event in core/v1 shape (the shape the rules are written for)."""
    renamed = {
        "regarding": "involvedObject",
        "note": "message",
        "deprecatedSource": "source",
        "deprecatedFirstTimestamp": "firstTimestamp",
        "deprecatedLastTimestamp": "lastTimestamp",
        "deprecatedCount": "count",
        "reportingController": "reportingComponent",
    }
    return {renamed.get(k, k): v for k, v in event.items()}
