"""Containers: names, images, mounts, devices, security context, resize policy; ports
(:mod:`.ports`), env (:mod:`.env`), probes and lifecycle hooks (:mod:`.probes`).

Follows ``validateContainerCommon``, ``validateContainers``, ``validateInitContainers``
and ``validateEphemeralContainers`` in upstream's core validation, with 1.32's
feature defaults (relaxed env var names on, sleep action zero off).
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import env, names, ports, probes, resources, volumes
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_INIT_ONLY = "may not be set for init containers without restartPolicy=Always"
# Fields an ephemeral container may set (allowedEphemeralContainerFields).
_EPHEMERAL_FORBIDDEN = (
    "ports",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resizePolicy",
    "restartPolicy",
)


def _mounts(
    container: dict[str, Any], vols: dict[str, dict[str, Any]], path: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    devices = {
        as_str(as_dict(d).get("name")): as_str(as_dict(d).get("devicePath"))
        for d in as_list(container.get("volumeDevices"))
    }
    privileged = as_dict(container.get("securityContext")).get("privileged") is True
    mount_points: set[str] = set()
    for i, mount in enumerate(as_list(container.get("volumeMounts"))):
        mount = as_dict(mount)
        mpath = f"{path}[{i}]"
        name, target = as_str(mount.get("name")), as_str(mount.get("mountPath"))
        if not name:
            errs.append(errors.required(f"{mpath}.name"))
        if name not in vols:
            errs.append(errors.field_not_found(f"{mpath}.name", name))
        if not target:
            errs.append(errors.required(f"{mpath}.mountPath"))
        if target in mount_points:
            errs.append(errors.invalid_value(f"{mpath}.mountPath", target, "must be unique"))
        mount_points.add(target)
        if name in devices:
            errs.append(
                errors.invalid_value(
                    f"{mpath}.name", name, "must not already exist in volumeDevices"
                )
            )
        if target in devices.values():
            errs.append(
                errors.invalid_value(
                    f"{mpath}.mountPath",
                    target,
                    "must not already exist as a path in volumeDevices",
                )
            )
        sub_path, sub_expr = as_str(mount.get("subPath")), as_str(mount.get("subPathExpr"))
        if name in vols and vols[name].get("image") is not None:
            if sub_path:
                errs.append(
                    errors.invalid_value(
                        f"{mpath}.subPath", sub_path, "not allowed in image volume sources"
                    )
                )
            if sub_expr:
                errs.append(
                    errors.invalid_value(
                        f"{mpath}.subPathExpr", sub_expr, "not allowed in image volume sources"
                    )
                )
        if sub_path:
            errs.extend(volumes.local_descending_path(sub_path, f"{path}.subPath"))
        if sub_expr:
            if sub_path:
                errs.append(
                    errors.invalid_value(
                        f"{mpath}.subPathExpr",
                        sub_expr,
                        "subPathExpr and subPath are mutually exclusive",
                    )
                )
            errs.extend(volumes.local_descending_path(sub_expr, f"{path}.subPathExpr"))
        propagation = mount.get("mountPropagation")
        if propagation is not None:
            supported = ("Bidirectional", "HostToContainer", "None")
            if propagation not in supported:
                errs.append(
                    errors.not_supported(f"{path}.mountPropagation", propagation, supported)
                )
            if propagation == "Bidirectional" and not privileged:
                errs.append(
                    errors.field_forbidden(
                        f"{path}.mountPropagation",
                        "Bidirectional mount propagation is available only to privileged containers",
                    )
                )
        rro = mount.get("recursiveReadOnly")
        if rro in ("Enabled", "IfPossible"):
            if not mount.get("readOnly"):
                errs.append(
                    errors.field_forbidden(
                        f"{path}.recursiveReadOnly", "may only be specified when readOnly is true"
                    )
                )
            if propagation not in (None, "None"):
                errs.append(
                    errors.field_forbidden(
                        f"{path}.recursiveReadOnly",
                        "may only be specified when mountPropagation is None or not specified",
                    )
                )
        elif rro not in (None, "Disabled"):
            errs.append(
                errors.not_supported(
                    f"{path}.recursiveReadOnly", rro, ("Disabled", "Enabled", "IfPossible")
                )
            )
    return errs


def _devices(
    container: dict[str, Any], vols: dict[str, dict[str, Any]], path: str
) -> list[FieldError]:
    errs: list[FieldError] = []
    mounts = {
        as_str(as_dict(m).get("name")): as_str(as_dict(m).get("mountPath"))
        for m in as_list(container.get("volumeMounts"))
    }
    seen_names: set[str] = set()
    seen_paths: set[str] = set()
    for i, device in enumerate(as_list(container.get("volumeDevices"))):
        device = as_dict(device)
        dpath = f"{path}[{i}]"
        name, target = as_str(device.get("name")), as_str(device.get("devicePath"))
        if not name:
            errs.append(errors.required(f"{dpath}.name"))
        if name in seen_names:
            errs.append(errors.invalid_value(f"{dpath}.name", name, "must be unique"))
        volume = vols.get(name)
        if (
            volume is not None
            and volume.get("persistentVolumeClaim") is None
            and volume.get("ephemeral") is None
        ):
            errs.append(
                errors.invalid_value(
                    f"{dpath}.name",
                    name,
                    "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
                )
            )
        if volume is None:
            errs.append(errors.field_not_found(f"{dpath}.name", name))
        if not target:
            errs.append(errors.required(f"{dpath}.devicePath"))
        if target in seen_paths:
            errs.append(errors.invalid_value(f"{dpath}.devicePath", target, "must be unique"))
        if target and volumes.path_no_backsteps(target, ""):
            errs.append(
                errors.invalid_value(
                    f"{dpath}.devicePath", target, "can not contain backsteps ('..')"
                )
            )
        else:
            seen_paths.add(target)
        if name in mounts:
            errs.append(
                errors.invalid_value(
                    f"{dpath}.name", name, "must not already exist in volumeMounts"
                )
            )
        if target in mounts.values():
            errs.append(
                errors.invalid_value(
                    f"{dpath}.devicePath",
                    target,
                    "must not already exist as a path in volumeMounts",
                )
            )
        if name:
            seen_names.add(name)
    return errs


def _security_context(sc: Any, path: str, host_users: bool) -> list[FieldError]:
    if not isinstance(sc, dict):
        return []
    from pilothouse.api.validation import podsecurity

    errs: list[FieldError] = []
    for key, check in (
        ("runAsUser", names.is_valid_user_id),
        ("runAsGroup", names.is_valid_group_id),
    ):
        value = sc.get(key)
        if is_int(value):
            errs.extend(errors.invalid_value(f"{path}.{key}", value, m) for m in check(value))
    proc_mount = sc.get("procMount")
    if proc_mount is not None:
        if proc_mount not in ("Default", "Unmasked"):
            errs.append(
                errors.not_supported(f"{path}.procMount", proc_mount, ("Default", "Unmasked"))
            )
        if host_users and proc_mount == "Unmasked":
            errs.append(
                errors.invalid_value(
                    f"{path}.procMount", proc_mount, "`hostUsers` must be false to use `Unmasked`"
                )
            )
    errs.extend(podsecurity.seccomp_profile(sc.get("seccompProfile"), f"{path}.seccompProfile"))
    if sc.get("allowPrivilegeEscalation") is False:
        shown = errors.GoValue(repr(sc))
        if sc.get("privileged") is True:
            errs.append(
                errors.invalid_value(
                    path,
                    shown,
                    "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                )
            )
        if "CAP_SYS_ADMIN" in as_list(as_dict(sc.get("capabilities")).get("add")):
            errs.append(
                errors.invalid_value(
                    path,
                    shown,
                    "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
                )
            )
    errs.extend(podsecurity.app_armor_profile(sc.get("appArmorProfile"), f"{path}.appArmorProfile"))
    return errs


def _resize_policy(policies: Any, restart_policy: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, policy in enumerate(as_list(policies)):
        policy = as_dict(policy)
        resource, restart = as_str(policy.get("resourceName")), as_str(policy.get("restartPolicy"))
        if resource in seen:
            errs.append(errors.duplicate(f"{path}[{i}]", resource))
        seen.add(resource)
        if not resource or not restart:
            errs.append(errors.required(path))
        if resource and resource not in ("cpu", "memory"):
            errs.append(errors.not_supported(path, resource, ("cpu", "memory")))
        if restart and restart not in ("NotRequired", "RestartContainer"):
            errs.append(errors.not_supported(path, restart, ("NotRequired", "RestartContainer")))
        if restart_policy == "Never" and restart != "NotRequired":
            errs.append(
                errors.invalid_value(
                    path, restart, "must be 'NotRequired' when `restartPolicy` is 'Never'"
                )
            )
    return errs


def container_common(
    container: dict[str, Any],
    vols: dict[str, dict[str, Any]],
    claim_names: set[str],
    path: str,
    restart_policy: Any,
    host_users: bool,
) -> list[FieldError]:
    errs: list[FieldError] = []
    name = as_str(container.get("name"))
    if not name:
        errs.append(errors.required(f"{path}.name"))
    else:
        errs.extend(
            errors.invalid_value(f"{path}.name", name, m) for m in names.is_dns1123_label(name)
        )
    if not as_str(container.get("image")):
        errs.append(errors.required(f"{path}.image"))
    policy = container.get("terminationMessagePolicy")
    if not policy:
        errs.append(errors.required(f"{path}.terminationMessagePolicy"))
    elif policy not in ("File", "FallbackToLogsOnError"):
        errs.append(
            errors.not_supported(
                f"{path}.terminationMessagePolicy", policy, ("File", "FallbackToLogsOnError")
            )
        )
    errs.extend(ports.validate_container_ports(container.get("ports"), f"{path}.ports"))
    errs.extend(env.validate_env(container.get("env"), f"{path}.env"))
    errs.extend(env.validate_env_from(container.get("envFrom"), f"{path}.envFrom"))
    errs.extend(_mounts(container, vols, f"{path}.volumeMounts"))
    errs.extend(_devices(container, vols, f"{path}.volumeDevices"))
    pull = container.get("imagePullPolicy")
    if not pull:
        errs.append(errors.required(f"{path}.imagePullPolicy"))
    elif pull not in PULL_POLICIES:
        errs.append(errors.not_supported(f"{path}.imagePullPolicy", pull, PULL_POLICIES))
    errs.extend(
        resources.validate_resource_requirements(
            container.get("resources"), claim_names, f"{path}.resources"
        )
    )
    errs.extend(
        _resize_policy(container.get("resizePolicy"), restart_policy, f"{path}.resizePolicy")
    )
    errs.extend(
        _security_context(container.get("securityContext"), f"{path}.securityContext", host_users)
    )
    return errs


def validate_containers(
    spec: dict[str, Any],
    vols: dict[str, dict[str, Any]],
    claim_names: set[str],
    path: str,
    host_users: bool,
) -> list[FieldError]:
    containers = [as_dict(c) for c in as_list(spec.get("containers"))]
    if not containers:
        return [errors.required(f"{path}.containers")]
    grace, restart = spec.get("terminationGracePeriodSeconds"), spec.get("restartPolicy")
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        cpath = f"{path}.containers[{i}]"
        errs.extend(container_common(container, vols, claim_names, cpath, restart, host_users))
        name = as_str(container.get("name"))
        if name in seen:
            errs.append(errors.duplicate(f"{cpath}.name", name))
        seen.add(name)
        errs.extend(probes.validate_probes_and_lifecycle(container, grace, cpath))
        if container.get("restartPolicy") is not None:
            errs.append(
                errors.field_forbidden(
                    f"{cpath}.restartPolicy", "may not be set for non-init containers"
                )
            )
    return errs + ports.host_port_conflicts(containers, f"{path}.containers")


def validate_init_containers(
    spec: dict[str, Any],
    vols: dict[str, dict[str, Any]],
    claim_names: set[str],
    path: str,
    host_users: bool,
) -> list[FieldError]:
    grace, restart = spec.get("terminationGracePeriodSeconds"), spec.get("restartPolicy")
    names_seen = {as_str(as_dict(c).get("name")) for c in as_list(spec.get("containers"))}
    errs: list[FieldError] = []
    for i, container in enumerate(as_list(spec.get("initContainers"))):
        container = as_dict(container)
        cpath = f"{path}.initContainers[{i}]"
        errs.extend(container_common(container, vols, claim_names, cpath, restart, host_users))
        policy = container.get("restartPolicy")
        if policy is not None and policy != "Always":
            errs.append(errors.not_supported(f"{cpath}.restartPolicy", policy, ("Always",)))
        name = as_str(container.get("name"))
        if name in names_seen:
            errs.append(errors.duplicate(f"{cpath}.name", name))
        elif name:
            names_seen.add(name)
        errs.extend(ports.host_port_conflicts([container], f"{path}.initContainers"))
        if policy == "Always":
            errs.extend(probes.validate_probes_and_lifecycle(container, grace, cpath))
        else:
            for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if container.get(key) is not None:
                    errs.append(errors.field_forbidden(f"{cpath}.{key}", _INIT_ONLY))
    return errs


def validate_ephemeral_containers(
    spec: dict[str, Any],
    vols: dict[str, dict[str, Any]],
    claim_names: set[str],
    path: str,
    host_users: bool,
) -> list[FieldError]:
    ephemeral = as_list(spec.get("ephemeralContainers"))
    if not ephemeral:
        return []
    others = {
        as_str(as_dict(c).get("name"))
        for key in ("containers", "initContainers")
        for c in as_list(spec.get(key))
    }
    all_names = set(others)
    errs: list[FieldError] = []
    for i, container in enumerate(ephemeral):
        container = as_dict(container)
        cpath = f"{path}.ephemeralContainers[{i}]"
        errs.extend(
            container_common(
                container, vols, claim_names, cpath, spec.get("restartPolicy"), host_users
            )
        )
        errs.extend(image_whitespace(container, cpath))
        name = as_str(container.get("name"))
        if name in all_names:
            errs.append(errors.duplicate(f"{cpath}.name", name))
        all_names.add(name)
        target = as_str(container.get("targetContainerName"))
        if target and target not in others:
            errs.append(errors.field_not_found(f"{cpath}.targetContainerName", target))
        for key in _EPHEMERAL_FORBIDDEN:
            if container.get(key) not in (None, [], {}):
                errs.append(
                    errors.field_forbidden(
                        f"{cpath}.{key}", "cannot be set for an Ephemeral Container"
                    )
                )
        for j, mount in enumerate(as_list(container.get("volumeMounts"))):
            for key in ("subPath", "subPathExpr"):
                if as_dict(mount).get(key):
                    errs.append(
                        errors.field_forbidden(
                            f"{cpath}.volumeMounts[{j}].{key}",
                            "cannot be set for an Ephemeral Container",
                        )
                    )
    return errs


def image_whitespace(container: dict[str, Any], path: str) -> list[FieldError]:
    image = as_str(container.get("image"))
    if image != image.strip():
        return [
            errors.invalid_value(
                f"{path}.image", image, "must not have leading or trailing whitespace"
            )
        ]
    return []
