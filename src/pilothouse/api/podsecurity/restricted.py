"""The restricted level's checks (upstream ``policy/check_*.go``), one function per form."""

from __future__ import annotations

from pilothouse.api.podsecurity.baseline import seccomp_valid
from pilothouse.api.podsecurity.common import (
    Forbidden,
    Obj,
    containers,
    containers_phrase,
    plural,
    quote,
    sc,
    windows,
)

_RESTRICTED_VOLUME_SOURCES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)
_ALLOWED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def restricted_volumes(meta: Obj, spec: Obj) -> Forbidden | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if any(v.get(k) is not None for k in _ALLOWED_VOLUME_SOURCES):
            continue
        bad.append(str(v.get("name", "")))
        kind = next((k for k in _RESTRICTED_VOLUME_SOURCES if v.get(k) is not None), "unknown")
        kinds.add(kind)
    if bad:
        types = sorted(kinds)
        return Forbidden(
            "restricted volume types",
            f"{plural('volume', 'volumes', len(bad))} {quote(bad)} "
            f"{plural('uses', 'use', len(bad))} "
            f"{plural('restricted volume type', 'restricted volume types', len(types))} "
            f"{quote(types)}",
        )
    return None


def allow_privilege_escalation_1_8(meta: Obj, spec: Obj) -> Forbidden | None:
    bad = [
        c.get("name", "")
        for c in containers(spec)
        if (sc(c) or {}).get("allowPrivilegeEscalation") is not False
    ]
    if bad:
        return Forbidden(
            "allowPrivilegeEscalation != false",
            f"{containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
        )
    return None


def allow_privilege_escalation_1_25(meta: Obj, spec: Obj) -> Forbidden | None:
    return None if windows(spec) else allow_privilege_escalation_1_8(meta, spec)


def run_as_non_root(meta: Obj, spec: Obj) -> Forbidden | None:
    setters: list[str] = []
    pod_non_root = False
    pod_value = (sc(spec) or {}).get("runAsNonRoot")
    if pod_value is not None:
        if pod_value is False:
            setters.append("pod")
        else:
            pod_non_root = True
    explicit: list[str] = []
    implicit: list[str] = []
    for c in containers(spec):
        value = (sc(c) or {}).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(c.get("name", ""))
        elif not pod_non_root:
            implicit.append(c.get("name", ""))
    if explicit:
        setters.append(containers_phrase(explicit))
    if setters:
        return Forbidden(
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return Forbidden(
            "runAsNonRoot != true",
            f"pod or {containers_phrase(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def run_as_user(meta: Obj, spec: Obj) -> Forbidden | None:
    setters = ["pod"] if (sc(spec) or {}).get("runAsUser") == 0 else []
    bad = [c.get("name", "") for c in containers(spec) if (sc(c) or {}).get("runAsUser") == 0]
    if bad:
        setters.append(containers_phrase(bad))
    if setters:
        return Forbidden("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")
    return None


def seccomp_restricted_1_19(meta: Obj, spec: Obj) -> Forbidden | None:
    setters: list[str] = []
    values: set[str] = set()
    pod_set = False
    pod_profile = (sc(spec) or {}).get("seccompProfile")
    if isinstance(pod_profile, dict):
        if not seccomp_valid(pod_profile):
            setters.append("pod")
            values.add(str(pod_profile.get("type") or ""))
        else:
            pod_set = True
    explicit: list[str] = []
    implicit: list[str] = []
    for c in containers(spec):
        profile = (sc(c) or {}).get("seccompProfile")
        if isinstance(profile, dict):
            if not seccomp_valid(profile):
                explicit.append(c.get("name", ""))
                values.add(str(profile.get("type") or ""))
        elif not pod_set:
            implicit.append(c.get("name", ""))
    if explicit:
        setters.append(containers_phrase(explicit))
    if setters:
        return Forbidden(
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{quote(sorted(values))}",
        )
    if implicit:
        return Forbidden(
            "seccompProfile",
            f"pod or {containers_phrase(implicit)} must set securityContext.seccompProfile.type "
            'to "RuntimeDefault" or "Localhost"',
        )
    return None


def seccomp_restricted_1_25(meta: Obj, spec: Obj) -> Forbidden | None:
    return None if windows(spec) else seccomp_restricted_1_19(meta, spec)


def capabilities_restricted_1_22(meta: Obj, spec: Obj) -> Forbidden | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    forbidden_caps: set[str] = set()
    for c in containers(spec):
        capabilities = (sc(c) or {}).get("capabilities")
        if not isinstance(capabilities, dict):
            missing_drop.append(c.get("name", ""))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(c.get("name", ""))
        extra = [str(x) for x in capabilities.get("add") or [] if x != "NET_BIND_SERVICE"]
        if extra:
            adding.append(c.get("name", ""))
            forbidden_caps.update(extra)
    details: list[str] = []
    if missing_drop:
        details.append(
            f'{containers_phrase(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{containers_phrase(adding)} must not include {quote(sorted(forbidden_caps))} in "
            "securityContext.capabilities.add"
        )
    return Forbidden("unrestricted capabilities", "; ".join(details)) if details else None


def capabilities_restricted_1_25(meta: Obj, spec: Obj) -> Forbidden | None:
    return None if windows(spec) else capabilities_restricted_1_22(meta, spec)
