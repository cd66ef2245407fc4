"""Pods, pod specs and pod templates (``ValidatePodSpec``, ``ValidatePodCreate/Update``).

:func:`validate_pod_spec` is the one pod-spec validator every workload kind reuses
through :func:`validate_pod_template_spec`.
"""

from __future__ import annotations

import copy
from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import (
    containers,
    meta,
    names,
    placement,
    podsecurity,
    resources,
    volumes,
)
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int, semantic_equal

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"
_APPARMOR_CONTAINER = "container.apparmor.security.beta.kubernetes.io/"
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_MAX_INT32 = 2**31 - 1
UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _seccomp_annotation(value: str, path: str) -> list[FieldError]:
    if value in ("runtime/default", "docker/default", "unconfined"):
        return []
    if value.startswith("localhost/"):
        return volumes.local_descending_path(value[len("localhost/") :], path)
    return [errors.invalid_value(path, value, "must be a valid seccomp profile")]


def pod_specific_annotations(annotations: Any, spec: dict[str, Any], path: str) -> list[FieldError]:
    annotations = as_dict(annotations)
    errs: list[FieldError] = []
    if MIRROR_ANNOTATION in annotations and not spec.get("nodeName"):
        errs.append(
            errors.invalid_value(
                f"{path}[{MIRROR_ANNOTATION}]",
                annotations[MIRROR_ANNOTATION],
                "must set spec.nodeName if mirror pod annotation is set",
            )
        )
    cost = annotations.get(_DELETION_COST)
    if cost is not None:
        try:
            ok = -(2**31) <= int(as_str(cost)) <= _MAX_INT32 and as_str(cost).strip() == cost
        except ValueError:
            ok = False
        if not ok:
            errs.append(
                errors.invalid_value(f"{path}[{_DELETION_COST}]", cost, "must be a 32bit integer")
            )
    if _SECCOMP_POD in annotations:
        errs.extend(
            _seccomp_annotation(as_str(annotations[_SECCOMP_POD]), f"{path}.{_SECCOMP_POD}")
        )
    container_names = {
        as_str(as_dict(c).get("name"))
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in as_list(spec.get(key))
    }
    for key, value in annotations.items():
        if key.startswith(_SECCOMP_CONTAINER):
            errs.extend(_seccomp_annotation(as_str(value), f"{path}.{key}"))
        elif key.startswith(_APPARMOR_CONTAINER):
            name = key[len(_APPARMOR_CONTAINER) :]
            if name not in container_names:
                errs.append(errors.invalid_value(f"{path}[{key}]", name, "container not found"))
            text = as_str(value)
            if text not in ("", "runtime/default", "unconfined") and not text.startswith(
                "localhost/"
            ):
                errs.append(
                    errors.invalid_value(
                        f"{path}[{key}]", text, f'invalid AppArmor profile name: "{text}"'
                    )
                )
    return errs


def _host_network_ports(spec: dict[str, Any], path: str, *, is_pod: bool) -> list[FieldError]:
    if spec.get("hostNetwork") is not True:
        return []
    errs: list[FieldError] = []
    for i, container in enumerate(as_list(spec.get("containers"))):
        for j, port in enumerate(as_list(as_dict(container).get("ports"))):
            port = as_dict(port)
            host, target = port.get("hostPort") or 0, port.get("containerPort") or 0
            if (is_pod or host != 0) and host != target:
                errs.append(
                    errors.invalid_value(
                        f"{path}.containers[{i}].ports[{j}].hostPort",
                        host,
                        "must match `containerPort` when `hostNetwork` is true",
                    )
                )
    return errs


def _resource_claims(claims: Any, path: str) -> tuple[set[str], list[FieldError]]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, claim in enumerate(as_list(claims)):
        claim = as_dict(claim)
        cpath = f"{path}[{i}]"
        name = as_str(claim.get("name"))
        if not name:
            errs.append(errors.required(f"{cpath}.name"))
        elif name in seen:
            errs.append(errors.duplicate(f"{cpath}.name", name))
        else:
            errs.extend(
                errors.invalid_value(f"{cpath}.name", name, m) for m in names.is_dns1123_label(name)
            )
            seen.add(name)
        template, claim_name = (
            claim.get("resourceClaimTemplateName"),
            claim.get("resourceClaimName"),
        )
        if template is not None and claim_name is not None:
            errs.append(
                errors.invalid_value(
                    cpath,
                    errors.GoValue(repr(claim)),
                    "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified",
                )
            )
        if template is None and claim_name is None:
            errs.append(
                errors.invalid_value(
                    cpath,
                    errors.GoValue(repr(claim)),
                    "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`",
                )
            )
    return seen, errs


def validate_pod_spec(
    spec: Any, path: str, *, pod_name: str = "", is_pod: bool = False
) -> list[FieldError]:
    """ValidatePodSpec: everything a pod spec must satisfy, in a Pod or a template."""
    spec = as_dict(spec)
    errs: list[FieldError] = []
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is None:
        errs.append(errors.required(f"{path}.terminationGracePeriodSeconds"))
    host_users = spec.get("hostUsers") is not False
    vols, vol_errs = volumes.validate_volumes(
        spec.get("volumes"), f"{path}.volumes", pod_name=pod_name, is_pod=is_pod
    )
    errs.extend(vol_errs)
    claim_names, claim_errs = _resource_claims(spec.get("resourceClaims"), f"{path}.resourceClaims")
    errs.extend(claim_errs)
    errs.extend(containers.validate_containers(spec, vols, claim_names, path, host_users))
    errs.extend(containers.validate_init_containers(spec, vols, claim_names, path, host_users))
    errs.extend(containers.validate_ephemeral_containers(spec, vols, claim_names, path, host_users))
    errs.extend(_host_network_ports(spec, path, is_pod=is_pod))
    restart = spec.get("restartPolicy")
    if not restart:
        errs.append(errors.required(f"{path}.restartPolicy"))
    elif restart not in _RESTART_POLICIES:
        errs.append(errors.not_supported(f"{path}.restartPolicy", restart, _RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if not dns:
        errs.append(errors.required(f"{path}.dnsPolicy"))
    elif dns not in _DNS_POLICIES:
        errs.append(errors.not_supported(f"{path}.dnsPolicy", dns, _DNS_POLICIES))
    errs.extend(meta.validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    errs.extend(podsecurity.pod_security_context(spec, f"{path}.securityContext"))
    for i, secret in enumerate(as_list(spec.get("imagePullSecrets"))):
        if not isinstance(secret, dict) or set(secret) - {"name"}:
            errs.append(
                errors.invalid_value(
                    f"{path}.imagePullSecrets[{i}]",
                    errors.GoValue(repr(secret)),
                    "only name may be set",
                )
            )
    errs.extend(placement.affinity(spec.get("affinity"), f"{path}.affinity"))
    errs.extend(placement.dns_config(spec, f"{path}.dnsConfig"))
    for i, gate in enumerate(as_list(spec.get("readinessGates"))):
        condition = as_str(as_dict(gate).get("conditionType"))
        errs.extend(
            errors.invalid_value(f"{path}.readinessGates[{i}].conditionType", condition, m)
            for m in names.is_qualified_name(condition)
        )
    seen_gates: set[str] = set()
    for i, gate in enumerate(as_list(spec.get("schedulingGates"))):
        gate_name = as_str(as_dict(gate).get("name"))
        errs.extend(
            errors.invalid_value(f"{path}.schedulingGates[{i}]", gate_name, m)
            for m in names.is_qualified_name(gate_name)
        )
        if gate_name in seen_gates:
            errs.append(errors.duplicate(f"{path}.schedulingGates[{i}]", gate_name))
        seen_gates.add(gate_name)
    errs.extend(
        placement.topology_spread(
            spec.get("topologySpreadConstraints"), f"{path}.topologySpreadConstraints"
        )
    )
    errs.extend(podsecurity.host_users(spec, path))
    for key, fn in (
        ("serviceAccountName", names.name_is_dns_subdomain),
        ("nodeName", names.name_is_dns_subdomain),
    ):
        value = as_str(spec.get(key))
        if value:
            errs.extend(errors.invalid_value(f"{path}.{key}", value, m) for m in fn(value, False))
    deadline = spec.get("activeDeadlineSeconds")
    if is_int(deadline) and not 1 <= deadline <= _MAX_INT32:
        errs.append(
            errors.invalid_value(
                f"{path}.activeDeadlineSeconds",
                deadline,
                names.inclusive_range_error(1, _MAX_INT32),
            )
        )
    for key in ("hostname", "subdomain"):
        value = as_str(spec.get(key))
        if value:
            errs.extend(
                errors.invalid_value(f"{path}.{key}", value, m)
                for m in names.is_dns1123_label(value)
            )
    errs.extend(placement.tolerations(spec.get("tolerations"), f"{path}.tolerations"))
    for i, alias in enumerate(as_list(spec.get("hostAliases"))):
        alias = as_dict(alias)
        ip = as_str(alias.get("ip"))
        if names.parse_ip(ip) is None:
            errs.append(
                errors.invalid_value(
                    f"{path}.hostAliases[{i}].ip",
                    ip,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            )
        for j, hostname in enumerate(as_list(alias.get("hostnames"))):
            errs.extend(
                errors.invalid_value(f"{path}.hostAliases[{i}].hostnames[{j}]", hostname, m)
                for m in names.is_dns1123_subdomain(as_str(hostname))
            )
    for key in ("priorityClassName", "runtimeClassName"):
        value = spec.get(key)
        if value is not None and (key == "runtimeClassName" or value):
            errs.extend(
                errors.invalid_value(f"{path}.{key}", value, m)
                for m in names.name_is_dns_subdomain(as_str(value), False)
            )
    preemption = spec.get("preemptionPolicy")
    if preemption is not None:
        if not preemption:
            errs.append(errors.required(f"{path}.preemptionPolicy"))
        elif preemption not in ("PreemptLowerPriority", "Never"):
            errs.append(
                errors.not_supported(
                    f"{path}.preemptionPolicy", preemption, ("PreemptLowerPriority", "Never")
                )
            )
    if spec.get("overhead") is not None:
        errs.extend(
            resources.validate_resource_requirements(
                {"limits": spec["overhead"]}, claim_names, f"{path}.overhead"
            )
        )
    errs.extend(podsecurity.os_specific(spec, path))
    return errs


def validate_pod_template_spec(template: Any, path: str) -> list[FieldError]:
    """ValidatePodTemplateSpec: a workload's pod template (labels, annotations, spec)."""
    template = as_dict(template)
    template_meta = as_dict(template.get("metadata"))
    spec = as_dict(template.get("spec"))
    errs = meta.validate_labels(template_meta.get("labels"), f"{path}.labels")
    errs += meta.validate_annotations(template_meta.get("annotations"), f"{path}.annotations")
    errs += pod_specific_annotations(template_meta.get("annotations"), spec, f"{path}.annotations")
    errs += validate_pod_spec(spec, f"{path}.spec")
    if as_list(spec.get("ephemeralContainers")):
        errs.append(
            errors.field_forbidden(
                f"{path}.spec.ephemeralContainers",
                "ephemeral containers not allowed in pod template",
            )
        )
    return errs


def _pod_metadata_and_spec(pod: dict[str, Any]) -> list[FieldError]:
    pod_meta = as_dict(pod.get("metadata"))
    spec = as_dict(pod.get("spec"))
    errs = meta.validate_object_meta(pod, namespaced=True, name_fn=names.name_is_dns_subdomain)
    errs += pod_specific_annotations(pod_meta.get("annotations"), spec, "metadata.annotations")
    errs += validate_pod_spec(spec, "spec", pod_name=as_str(pod_meta.get("name")), is_pod=True)
    if not spec.get("serviceAccountName"):
        for i, volume in enumerate(as_list(spec.get("volumes"))):
            for j, source in enumerate(
                as_list(as_dict(as_dict(volume).get("projected")).get("sources"))
            ):
                if as_dict(source).get("serviceAccountToken") is not None:
                    errs.append(
                        errors.field_forbidden(
                            f"spec.volumes[{i}].projected.sources[{j}].serviceAccountToken",
                            "must not be specified when serviceAccountName is not set",
                        )
                    )
    for key in ("containers", "initContainers"):
        for i, container in enumerate(as_list(spec.get(key))):
            errs.extend(containers.image_whitespace(as_dict(container), f"spec.{key}[{i}]"))
    return errs


def validate_pod_create(pod: dict[str, Any]) -> list[FieldError]:
    errs = _pod_metadata_and_spec(pod)
    spec = as_dict(pod.get("spec"))
    if as_list(spec.get("ephemeralContainers")):
        errs.append(errors.field_forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if spec.get("nodeName") and as_list(spec.get("schedulingGates")):
        errs.append(
            errors.field_forbidden(
                "spec.nodeName", "cannot be set until all schedulingGates have been cleared"
            )
        )
    return errs


def _diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Lines naming what differs, in the spirit of upstream's ``cmp.Diff`` output."""
    if semantic_equal(old, new):
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in sorted(set(old) | set(new)):
            lines.extend(_diff(old.get(key), new.get(key), f"{path}.{key}" if path else key))
        return lines
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            line
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for line in _diff(a, b, f"{path}[{i}]")
        ]
    return [f"  {path}:", f"- \t{errors.go_repr(old)}", f"+ \t{errors.go_repr(new)}"]


def spec_diff(old: Any, new: Any) -> str:
    return "\n".join(["  core.PodSpec{", *_diff(old, new), "  }"])


def validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = meta.validate_object_meta_update(new, old)
    errs += _pod_metadata_and_spec(new)
    new_meta, old_meta = as_dict(new.get("metadata")), as_dict(old.get("metadata"))
    new_ann, old_ann = as_dict(new_meta.get("annotations")), as_dict(old_meta.get("annotations"))
    for key, value in old_ann.items():
        if new_ann.get(key) == value and key in new_ann:
            continue
        if key.startswith(_APPARMOR_CONTAINER):
            errs.append(
                errors.field_forbidden(
                    f"metadata.annotations[{key}]", "may not remove or update AppArmor annotations"
                )
            )
        if key == MIRROR_ANNOTATION:
            errs.append(
                errors.field_forbidden(
                    f"metadata.annotations[{key}]", "may not remove or update mirror pod annotation"
                )
            )
    for key in new_ann:
        if key in old_ann:
            continue
        if key.startswith(_APPARMOR_CONTAINER):
            errs.append(
                errors.field_forbidden(
                    f"metadata.annotations[{key}]", "may not add AppArmor annotations"
                )
            )
        if key == MIRROR_ANNOTATION:
            errs.append(
                errors.field_forbidden(
                    f"metadata.annotations[{key}]", "may not add mirror pod annotation"
                )
            )
    spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    for key in ("containers", "initContainers"):
        new_list, old_list = as_list(spec.get(key)), as_list(old_spec.get(key))
        if len(new_list) != len(old_list):
            errs.append(
                errors.field_forbidden(
                    f"spec.{key}", "pod updates may not add or remove containers"
                )
            )
            return errs
        for i, container in enumerate(new_list):
            image = as_str(as_dict(container).get("image"))
            if not image:
                errs.append(errors.required(f"spec.{key}[{i}].image"))
            if image != image.strip():
                errs.append(
                    errors.invalid_value(
                        f"spec.{key}[{i}].image",
                        image,
                        "must not have leading or trailing whitespace",
                    )
                )
    deadline, old_deadline = (
        spec.get("activeDeadlineSeconds"),
        old_spec.get("activeDeadlineSeconds"),
    )
    if is_int(deadline):
        if not 0 <= deadline <= _MAX_INT32:
            errs.append(
                errors.invalid_value(
                    "spec.activeDeadlineSeconds",
                    deadline,
                    names.inclusive_range_error(0, _MAX_INT32),
                )
            )
            return errs
        if is_int(old_deadline) and old_deadline < deadline:
            errs.append(
                errors.invalid_value(
                    "spec.activeDeadlineSeconds",
                    deadline,
                    "must be less than or equal to previous value",
                )
            )
            return errs
    elif old_deadline is not None:
        errs.append(
            errors.invalid_value(
                "spec.activeDeadlineSeconds",
                errors.GoValue("null"),
                "must not update from a positive integer to nil value",
            )
        )
    errs.extend(_only_added_tolerations(spec.get("tolerations"), old_spec.get("tolerations")))
    new_gates = {
        as_str(as_dict(g).get("name")): i
        for i, g in enumerate(as_list(spec.get("schedulingGates")))
    }
    for gate in as_list(old_spec.get("schedulingGates")):
        new_gates.pop(as_str(as_dict(gate).get("name")), None)
    for gate, i in new_gates.items():
        errs.append(
            errors.field_forbidden(
                f"spec.schedulingGates[{i}].name",
                f"only deletion is allowed, but found new scheduling gate '{gate}'",
            )
        )
    if semantic_equal(spec, old_spec):
        return errs
    errs.extend(_gated_node_selector(spec, old_spec))
    munged = _munge_updatable(spec, old_spec)
    if not semantic_equal(munged, old_spec):
        errs.append(
            errors.field_forbidden(
                "spec",
                f"pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{spec_diff(old_spec, munged)}",
            )
        )
    return errs


def _only_added_tolerations(new: Any, old: Any) -> list[FieldError]:
    new_list = [as_dict(t) for t in as_list(new)]
    for existing in as_list(old):
        wanted = {k: v for k, v in as_dict(existing).items() if k != "tolerationSeconds"}
        if not any(
            semantic_equal(wanted, {k: v for k, v in t.items() if k != "tolerationSeconds"})
            for t in new_list
        ):
            return [
                errors.field_forbidden(
                    "spec.tolerations",
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            ]
    return placement.tolerations(new, "spec.tolerations")


def _munge_updatable(spec: dict[str, Any], old_spec: dict[str, Any]) -> dict[str, Any]:
    """The new spec with every field a pod update may change reset to its old value."""
    munged = copy.deepcopy(spec)
    for key in ("containers", "initContainers"):
        for container, old_container in zip(
            as_list(munged.get(key)), as_list(old_spec.get(key)), strict=False
        ):
            if isinstance(container, dict):
                container["image"] = as_dict(old_container).get("image")
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        munged[key] = old_spec.get(key)
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if is_int(old_grace) and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if as_list(old_spec.get("schedulingGates")):
        # A gated pod may still gain node selectors and change its node affinity.
        munged["nodeSelector"] = old_spec.get("nodeSelector")
        rest = {k: v for k, v in as_dict(munged.get("affinity")).items() if k != "nodeAffinity"}
        old_rest = {
            k: v for k, v in as_dict(old_spec.get("affinity")).items() if k != "nodeAffinity"
        }
        if semantic_equal(rest, old_rest):
            munged["affinity"] = old_spec.get("affinity")
    return munged


def _gated_node_selector(spec: dict[str, Any], old_spec: dict[str, Any]) -> list[FieldError]:
    if not as_list(old_spec.get("schedulingGates")):
        return []
    new_selector = as_dict(spec.get("nodeSelector"))
    for key, value in as_dict(old_spec.get("nodeSelector")).items():
        if new_selector.get(key) != value:
            return [
                errors.invalid_value(
                    "spec.nodeSelector",
                    errors.go_string_map(new_selector),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                )
            ]
    return []
