"""Writes to the ``status`` subresource (the ``Validate*StatusUpdate`` functions).

Metadata may not change identity; counters may not go negative or exceed their
totals; a Pod's node may not be changed through status; a Namespace's phase must
agree with its deletion.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import (
    admissionpolicy,
    apiregistration,
    coremisc,
    meta,
    names,
    quota,
)
from pilothouse.api.validation.fields import as_dict, as_int, as_list, as_str, is_int

_GREATER = "cannot be greater than status.replicas"


def _counters(status: dict[str, Any], keys: tuple[str, ...]) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in keys:
        errs.extend(meta.validate_nonnegative(status.get(key), f"status.{key}"))
    return errs


def _not_above(
    status: dict[str, Any], keys: tuple[str, ...], total: str, message: str
) -> list[FieldError]:
    limit = as_int(status.get(total))
    return [
        errors.invalid_value(f"status.{key}", status[key], message)
        for key in keys
        if is_int(status.get(key)) and status[key] > limit
    ]


def _collision_count(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    value, old_value = new.get("collisionCount"), old.get("collisionCount")
    decremented = (value is None and old_value is not None) or (
        is_int(value) and is_int(old_value) and value < old_value
    )
    if decremented:
        return [
            errors.invalid_value("status.collisionCount", as_int(value), "cannot be decremented")
        ]
    return []


def _replicas_status(
    kind: str, status: dict[str, Any], old_status: dict[str, Any]
) -> list[FieldError]:
    if kind == "Deployment":
        errs = _counters(
            status,
            (
                "observedGeneration",
                "replicas",
                "updatedReplicas",
                "readyReplicas",
                "availableReplicas",
                "unavailableReplicas",
                "collisionCount",
            ),
        )
        errs += _not_above(
            status, ("updatedReplicas", "readyReplicas", "availableReplicas"), "replicas", _GREATER
        )
        errs += _not_above(
            status, ("availableReplicas",), "readyReplicas", "cannot be greater than readyReplicas"
        )
        return errs + _collision_count(status, old_status)
    if kind == "ReplicaSet":
        errs = _counters(
            status,
            (
                "replicas",
                "fullyLabeledReplicas",
                "readyReplicas",
                "availableReplicas",
                "observedGeneration",
            ),
        )
        errs += _not_above(
            status,
            ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"),
            "replicas",
            _GREATER,
        )
        return errs + _not_above(
            status, ("availableReplicas",), "readyReplicas", "cannot be greater than readyReplicas"
        )
    if kind == "StatefulSet":
        errs = _counters(
            status,
            (
                "replicas",
                "readyReplicas",
                "currentReplicas",
                "updatedReplicas",
                "availableReplicas",
                "observedGeneration",
                "collisionCount",
            ),
        )
        errs += _not_above(
            status,
            ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"),
            "replicas",
            _GREATER,
        )
        errs += _not_above(
            status,
            ("availableReplicas",),
            "readyReplicas",
            "cannot be greater than status.readyReplicas",
        )
        return errs + _collision_count(status, old_status)
    if kind == "DaemonSet":
        errs = _counters(
            status,
            (
                "currentNumberScheduled",
                "numberMisscheduled",
                "desiredNumberScheduled",
                "numberReady",
                "observedGeneration",
                "updatedNumberScheduled",
                "numberAvailable",
                "numberUnavailable",
                "collisionCount",
            ),
        )
        return errs + _collision_count(status, old_status)
    return []


def _pod_status(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    status = as_dict(new.get("status"))
    errs: list[FieldError] = []
    if as_dict(new.get("spec")).get("nodeName") != as_dict(old.get("spec")).get("nodeName"):
        errs.append(errors.field_forbidden("status.nodeName", "may not be changed directly"))
    nominated = as_str(status.get("nominatedNodeName"))
    if nominated and nominated != as_dict(old.get("status")).get("nominatedNodeName"):
        errs.extend(
            errors.invalid_value("status.nominatedNodeName", nominated, m)
            for m in names.name_is_dns_subdomain(nominated, False)
        )
    errs.extend(
        meta.validate_immutable(
            status.get("qosClass"), as_dict(old.get("status")).get("qosClass"), "status.qosClass"
        )
    )
    for i, condition in enumerate(as_list(status.get("conditions"))):
        kind = as_str(as_dict(condition).get("type"))
        if kind not in ("PodScheduled", "Ready", "Initialized"):
            errs.extend(
                errors.invalid_value(f"metadata.conditions[{i}].Type", kind, m)
                for m in names.is_qualified_name(kind)
            )
    for key, field in (("podIPs", "status.podIPs"), ("hostIPs", "status.hostIPs")):
        ips = [as_str(as_dict(e).get("ip")) for e in as_list(status.get(key))]
        for i, ip in enumerate(ips):
            if names.parse_ip(ip) is None:
                errs.append(
                    errors.invalid_value(
                        f"{field}[{i}]",
                        ip,
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )
                )
            elif ip in ips[:i]:
                errs.append(
                    errors.duplicate(
                        f"{field}[{i}]",
                        errors.GoValue(
                            f'core.{"PodIP" if key == "podIPs" else "HostIP"}{{IP:"{ip}"}}'
                        ),
                    )
                )
    host_ips = as_list(status.get("hostIPs"))
    if host_ips and as_str(as_dict(host_ips[0]).get("ip")) != as_str(status.get("hostIP")):
        errs.append(
            errors.invalid_value(
                "status.hostIPs[0].ip",
                as_str(as_dict(host_ips[0]).get("ip")),
                "must be equal to `hostIP`",
            )
        )
    return errs


def validate_status_update(
    group: str, kind: str, new: dict[str, Any], old: dict[str, Any]
) -> list[FieldError]:
    """The kind-specific part of a status write's validation."""
    errs = meta.validate_object_meta_update(new, old)
    status, old_status = as_dict(new.get("status")), as_dict(old.get("status"))
    if group == "apps":
        return errs + _replicas_status(kind, status, old_status)
    if (group, kind) == ("", "Pod"):
        return errs + _pod_status(new, old)
    if (group, kind) == ("", "ReplicationController"):
        # Upstream's ValidateReplicationControllerStatus has a ReplicaSet's rules.
        return errs + _replicas_status("ReplicaSet", status, old_status)
    if (group, kind) == ("", "ResourceQuota"):
        return errs + quota.validate_resource_quota_status_update(new, old)
    if (group, kind) == ("batch", "Job"):
        errs += _counters(status, ("active", "succeeded", "failed", "ready", "terminating"))
        if is_int(status.get("ready")) and status["ready"] > as_int(status.get("active")):
            errs.append(
                errors.invalid_value(
                    "status.ready", status["ready"], "cannot set more ready pods than active"
                )
            )
        return errs
    if (group, kind) == ("autoscaling", "HorizontalPodAutoscaler"):
        return errs + _counters(status, ("currentReplicas", "desiredReplicas"))
    if (group, kind) == ("", "Namespace"):
        deleting = bool(as_dict(new.get("metadata")).get("deletionTimestamp"))
        phase = as_str(status.get("phase"))
        if not deleting and phase != "Active":
            errs.append(
                errors.invalid_value(
                    "status.Phase", phase, "may only be 'Active' if `deletionTimestamp` is empty"
                )
            )
        if deleting and phase != "Terminating":
            errs.append(
                errors.invalid_value(
                    "status.Phase",
                    phase,
                    "may only be 'Terminating' if `deletionTimestamp` is not empty",
                )
            )
        return errs
    if (group, kind) == ("", "Node"):
        return coremisc.validate_node_update(new, old)
    if (group, kind) == ("apiregistration.k8s.io", "APIService"):
        return errs + apiregistration.validate_api_service_status(new)
    if (group, kind) == ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"):
        return errs + admissionpolicy.validate_policy_status_update(new, old)
    if (group, kind) == ("", "PersistentVolumeClaim"):
        if not as_list(as_dict(new.get("spec")).get("accessModes")):
            errs.append(errors.required("Spec.accessModes"))
        return errs
    if (group, kind) == ("policy", "PodDisruptionBudget"):
        return errs + _counters(
            status, ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")
        )
    return errs
