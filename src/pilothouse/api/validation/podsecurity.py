"""Security settings of pods and containers: user and group ids, seccomp, AppArmor, sysctls."""

from __future__ import annotations

import re
from typing import Any

from pilothouse.api import errors
from pilothouse.api.errors import FieldError
from pilothouse.api.validation import names, volumes
from pilothouse.api.validation.fields import as_dict, as_list, as_str, is_int

_SYSCTL_SEGMENT = "[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SYSCTL_FMT = "(" + _SYSCTL_SEGMENT + "[\\./])*" + _SYSCTL_SEGMENT
_SYSCTL_RE = re.compile("^" + _SYSCTL_FMT + r"\Z")
_SYSCTL_MAX = 253
# Namespaced sysctl prefixes (k8s.io/component-helpers/node/util/sysctl).
_NET_SYSCTLS = ("net.",)
_IPC_SYSCTLS = ("kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")


def seccomp_profile(profile: Any, path: str) -> list[FieldError]:
    if not isinstance(profile, dict):
        return []
    kind = as_str(profile.get("type"))
    errs: list[FieldError] = []
    if not kind:
        errs.append(errors.required(f"{path}.type", "type is required when seccompProfile is set"))
    elif kind not in ("Localhost", "RuntimeDefault", "Unconfined"):
        errs.append(
            errors.not_supported(
                f"{path}.type", kind, ("Localhost", "RuntimeDefault", "Unconfined")
            )
        )
    localhost = profile.get("localhostProfile")
    if kind == "Localhost":
        if localhost is None:
            errs.append(
                errors.required(
                    f"{path}.localhostProfile", "must be set when seccomp type is Localhost"
                )
            )
        else:
            errs.extend(
                volumes.local_descending_path(as_str(localhost), f"{path}.localhostProfile")
            )
    elif localhost is not None:
        errs.append(
            errors.invalid_value(
                f"{path}.localhostProfile",
                errors.GoValue(repr(profile)),
                "can only be set when seccomp type is Localhost",
            )
        )
    return errs


def app_armor_profile(profile: Any, path: str) -> list[FieldError]:
    if not isinstance(profile, dict):
        return []
    kind = as_str(profile.get("type"))
    localhost = profile.get("localhostProfile")
    errs: list[FieldError] = []
    if kind == "Localhost":
        if localhost is None:
            errs.append(
                errors.required(
                    f"{path}.localhostProfile", "must be set when AppArmor type is Localhost"
                )
            )
        else:
            text = as_str(localhost)
            if text.strip() != text:
                errs.append(
                    errors.invalid_value(
                        f"{path}.localhostProfile", text, "must not be padded with whitespace"
                    )
                )
            elif not text:
                errs.append(
                    errors.required(
                        f"{path}.localhostProfile", "must be set when AppArmor type is Localhost"
                    )
                )
            if len(text) > 4095:
                errs.append(errors.too_long(f"{path}.localhostProfile", 4095))
    elif kind in ("RuntimeDefault", "Unconfined"):
        if localhost is not None:
            errs.append(
                errors.invalid_value(
                    f"{path}.localhostProfile",
                    localhost,
                    "can only be set when AppArmor type is Localhost",
                )
            )
    elif not kind:
        errs.append(errors.required(f"{path}.type", "type is required when appArmorProfile is set"))
    else:
        errs.append(
            errors.not_supported(
                f"{path}.type", kind, ("Localhost", "RuntimeDefault", "Unconfined")
            )
        )
    return errs


def _sysctls(spec: dict[str, Any], sysctls: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, entry in enumerate(sysctls):
        name = as_str(as_dict(entry).get("name"))
        npath = f"{path}[{i}].name"
        if not name:
            errs.append(errors.required(npath))
        elif len(name) > _SYSCTL_MAX or not _SYSCTL_RE.match(name):
            errs.append(
                errors.invalid_value(
                    npath,
                    name,
                    f"must have at most {_SYSCTL_MAX} characters and match regex ^{_SYSCTL_FMT}$",
                )
            )
        elif name in seen:
            errs.append(errors.duplicate(npath, name))
        dotted = name.replace("/", ".")
        if spec.get("hostNetwork") is True and dotted.startswith(_NET_SYSCTLS):
            errs.append(
                errors.invalid_value(npath, name, "may not be specified when 'hostNetwork' is true")
            )
        elif spec.get("hostIPC") is True and dotted.startswith(_IPC_SYSCTLS):
            errs.append(
                errors.invalid_value(npath, name, "may not be specified when 'hostIPC' is true")
            )
        seen.add(name)
    return errs


def pod_security_context(spec: dict[str, Any], path: str) -> list[FieldError]:
    sc = spec.get("securityContext")
    if not isinstance(sc, dict):
        return []
    errs: list[FieldError] = []
    for key, check in (
        ("fsGroup", names.is_valid_group_id),
        ("runAsUser", names.is_valid_user_id),
        ("runAsGroup", names.is_valid_group_id),
    ):
        value = sc.get(key)
        if is_int(value):
            errs.extend(errors.invalid_value(f"{path}.{key}", value, m) for m in check(value))
    for i, gid in enumerate(as_list(sc.get("supplementalGroups"))):
        if is_int(gid):
            errs.extend(
                errors.invalid_value(f"{path}.supplementalGroups[{i}]", gid, m)
                for m in names.is_valid_group_id(gid)
            )
    if spec.get("shareProcessNamespace") is True and spec.get("hostPID") is True:
        errs.append(
            errors.invalid_value(
                f"{path}.shareProcessNamespace",
                True,
                "ShareProcessNamespace and HostPID cannot both be enabled",
            )
        )
    sysctls = as_list(sc.get("sysctls"))
    if sysctls:
        errs.extend(_sysctls(spec, sysctls, f"{path}.sysctls"))
    policy = sc.get("fsGroupChangePolicy")
    if policy is not None and policy not in ("Always", "OnRootMismatch"):
        errs.append(
            errors.not_supported(
                f"{path}.fsGroupChangePolicy", policy, ("Always", "OnRootMismatch")
            )
        )
    errs.extend(seccomp_profile(sc.get("seccompProfile"), f"{path}.seccompProfile"))
    errs.extend(app_armor_profile(sc.get("appArmorProfile"), f"{path}.appArmorProfile"))
    groups_policy = sc.get("supplementalGroupsPolicy")
    if groups_policy is not None and groups_policy not in ("Merge", "Strict"):
        errs.append(
            errors.not_supported(
                f"{path}.supplementalGroupsPolicy", groups_policy, ("Merge", "Strict")
            )
        )
    change_policy = sc.get("seLinuxChangePolicy")
    if change_policy is not None and change_policy not in ("MountOption", "Recursive"):
        errs.append(
            errors.not_supported(
                f"{path}.seLinuxChangePolicy", change_policy, ("MountOption", "Recursive")
            )
        )
    return errs


def host_users(spec: dict[str, Any], path: str) -> list[FieldError]:
    if spec.get("hostUsers") is not False:
        return []
    errs: list[FieldError] = []
    for key, shown in (
        ("hostNetwork", "hostNetwork"),
        ("hostPID", "HostPID"),
        ("hostIPC", "HostIPC"),
    ):
        if spec.get(key) is True:
            errs.append(
                errors.field_forbidden(f"{path}.{shown}", "when `pod.Spec.HostUsers` is false")
            )
    return errs


def os_specific(spec: dict[str, Any], path: str) -> list[FieldError]:
    """spec.os: only linux and windows; windows pods may not carry linux-only settings."""
    os_field = spec.get("os")
    if not isinstance(os_field, dict):
        return []
    name = as_str(os_field.get("name"))
    if not name:
        return [errors.required(f"{path}.os.name", "cannot be empty")]
    if name not in ("linux", "windows"):
        return [errors.not_supported(f"{path}.os", name, ("linux", "windows"))]
    errs: list[FieldError] = []
    sc = as_dict(spec.get("securityContext"))
    containers = [
        (f"{path}.{key}[{i}]", as_dict(c))
        for key in ("initContainers", "containers", "ephemeralContainers")
        for i, c in enumerate(as_list(spec.get(key)))
    ]
    if name == "linux":
        if sc.get("windowsOptions") is not None:
            errs.append(
                errors.field_forbidden(
                    f"{path}.securityContext.windowsOptions",
                    "windows options cannot be set for a linux pod",
                )
            )
        for cpath, container in containers:
            if as_dict(container.get("securityContext")).get("windowsOptions") is not None:
                errs.append(
                    errors.field_forbidden(
                        f"{cpath}.securityContext.windowsOptions",
                        "windows options cannot be set for a linux pod",
                    )
                )
        return errs
    for key in (
        "appArmorProfile",
        "seLinuxOptions",
        "seccompProfile",
        "fsGroup",
        "fsGroupChangePolicy",
        "runAsUser",
        "runAsGroup",
        "supplementalGroups",
        "supplementalGroupsPolicy",
        "seLinuxChangePolicy",
    ):
        if sc.get(key) is not None:
            errs.append(
                errors.field_forbidden(
                    f"{path}.securityContext.{key}", "cannot be set for a windows pod"
                )
            )
    if as_list(sc.get("sysctls")):
        errs.append(
            errors.field_forbidden(
                f"{path}.securityContext.sysctls", "cannot be set for a windows pod"
            )
        )
    for key in ("hostUsers", "shareProcessNamespace"):
        if spec.get(key) is not None:
            errs.append(errors.field_forbidden(f"{path}.{key}", "cannot be set for a windows pod"))
    for key in ("hostPID", "hostIPC"):
        if spec.get(key) is True:
            errs.append(errors.field_forbidden(f"{path}.{key}", "cannot be set for a windows pod"))
    for cpath, container in containers:
        csc = as_dict(container.get("securityContext"))
        for key in (
            "appArmorProfile",
            "seLinuxOptions",
            "seccompProfile",
            "capabilities",
            "readOnlyRootFilesystem",
            "privileged",
            "allowPrivilegeEscalation",
            "procMount",
            "runAsUser",
            "runAsGroup",
        ):
            if csc.get(key) is not None:
                errs.append(
                    errors.field_forbidden(
                        f"{cpath}.securityContext.{key}", "cannot be set for a windows pod"
                    )
                )
    return errs
