"""The baseline level's checks (upstream ``policy/check_*.go``), one function per form."""

from __future__ import annotations

from typing import Any

from pilothouse.api.podsecurity.common import (
    CheckFn,
    Forbidden,
    Obj,
    containers,
    containers_phrase,
    plural,
    quote,
    sc,
)


def host_namespaces(meta: Obj, spec: Obj) -> Forbidden | None:
    found = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    return Forbidden("host namespaces", ", ".join(found)) if found else None


def privileged(meta: Obj, spec: Obj) -> Forbidden | None:
    bad = [c.get("name", "") for c in containers(spec) if (sc(c) or {}).get("privileged") is True]
    if bad:
        return Forbidden(
            "privileged", f"{containers_phrase(bad)} must not set securityContext.privileged=true"
        )
    return None


_DEFAULT_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def capabilities_baseline(meta: Obj, spec: Obj) -> Forbidden | None:
    bad: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        capabilities = (sc(c) or {}).get("capabilities")
        if not isinstance(capabilities, dict):
            continue
        extra = [str(x) for x in capabilities.get("add") or [] if x not in _DEFAULT_CAPABILITIES]
        if extra:
            bad.append(c.get("name", ""))
            caps.update(extra)
    if bad:
        return Forbidden(
            "non-default capabilities",
            f"{containers_phrase(bad)} must not include {quote(sorted(caps))} in "
            "securityContext.capabilities.add",
        )
    return None


def host_path_volumes(meta: Obj, spec: Obj) -> Forbidden | None:
    bad = [
        v.get("name", "")
        for v in spec.get("volumes") or []
        if isinstance(v, dict) and v.get("hostPath") is not None
    ]
    if bad:
        return Forbidden(
            "hostPath volumes", f"{plural('volume', 'volumes', len(bad))} {quote(bad)}"
        )
    return None


def host_ports(meta: Obj, spec: Obj) -> Forbidden | None:
    bad: list[str] = []
    ports: set[str] = set()
    for c in containers(spec):
        used = [p.get("hostPort") for p in c.get("ports") or [] if isinstance(p, dict)]
        used = [p for p in used if p]
        if used:
            bad.append(c.get("name", ""))
            ports.update(str(p) for p in used)
    if bad:
        return Forbidden(
            "hostPort",
            f"{containers_phrase(bad)} {plural('uses', 'use', len(bad))} "
            f"{plural('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}",
        )
    return None


def _apparmor_type_allowed(kind: Any) -> bool:
    return kind in ("RuntimeDefault", "Localhost")


def _apparmor_annotation_allowed(value: str) -> bool:
    return not value or value == "runtime/default" or value.startswith("localhost/")


_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def app_armor_profile(meta: Obj, spec: Obj) -> Forbidden | None:
    setters: list[str] = []
    values: set[str] = set()
    pod_profile = (sc(spec) or {}).get("appArmorProfile")
    if isinstance(pod_profile, dict) and not _apparmor_type_allowed(pod_profile.get("type")):
        setters.append("pod")
        values.add(str(pod_profile.get("type") or ""))
    bad: list[str] = []
    for c in containers(spec):
        profile = (sc(c) or {}).get("appArmorProfile")
        if isinstance(profile, dict) and not _apparmor_type_allowed(profile.get("type")):
            bad.append(c.get("name", ""))
            values.add(str(profile.get("type") or ""))
    if bad:
        setters.append(containers_phrase(bad))
    shown = sorted(values)
    annotations = sorted(
        f'{k}="{v}"'
        for k, v in ((meta.get("annotations") or {}).items())
        if k.startswith(_APPARMOR_ANNOTATION_PREFIX) and not _apparmor_annotation_allowed(str(v))
    )
    if annotations:
        shown += annotations
        setters.append(plural("annotation", "annotations", len(annotations)))
    if setters:
        return Forbidden(
            plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(shown)),
            f"{' and '.join(setters)} must not set AppArmor profile type to {quote(shown)}",
        )
    return None


def selinux(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Forbidden | None:
        setters: list[str] = []
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(opts: Obj) -> bool:
            ok = True
            kind = str(opts.get("type") or "")
            if kind not in allowed:
                ok = False
                bad_types.add(kind)
            for key in ("user", "role"):
                if opts.get(key):
                    ok = False
                    flags[key] = True
            return ok

        pod_opts = (sc(spec) or {}).get("seLinuxOptions")
        if isinstance(pod_opts, dict) and not valid(pod_opts):
            setters.append("pod")
        bad: list[str] = []
        for c in containers(spec):
            opts = (sc(c) or {}).get("seLinuxOptions")
            if isinstance(opts, dict) and not valid(opts):
                bad.append(c.get("name", ""))
        if bad:
            setters.append(containers_phrase(bad))
        if not setters:
            return None
        data: list[str] = []
        if bad_types:
            types = sorted(bad_types)
            data.append(f"{plural('type', 'types', len(types))} {quote(types)}")
        if flags["user"]:
            data.append("user may not be set")
        if flags["role"]:
            data.append("role may not be set")
        return Forbidden(
            "seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
            f"{'; '.join(data)}",
        )

    return check


SELINUX_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_1_31 = SELINUX_1_0 | {"container_engine_t"}


def proc_mount(meta: Obj, spec: Obj) -> Forbidden | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for c in containers(spec):
        mount = (sc(c) or {}).get("procMount")
        if mount is not None and mount != "Default":
            bad.append(c.get("name", ""))
            kinds.add(str(mount))
    if bad:
        return Forbidden(
            "procMount",
            f"{containers_phrase(bad)} must not set securityContext.procMount to "
            f"{quote(sorted(kinds))}",
        )
    return None


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_annotation_allowed(value: str) -> bool:
    return value in ("runtime/default", "docker/default") or value.startswith("localhost/")


def seccomp_baseline_1_0(meta: Obj, spec: Obj) -> Forbidden | None:
    annotations = meta.get("annotations") or {}
    bad: set[str] = set()
    if _SECCOMP_POD_ANNOTATION in annotations and not _seccomp_annotation_allowed(
        str(annotations[_SECCOMP_POD_ANNOTATION])
    ):
        bad.add(f'{_SECCOMP_POD_ANNOTATION}="{annotations[_SECCOMP_POD_ANNOTATION]}"')
    for c in containers(spec):
        key = _SECCOMP_CONTAINER_PREFIX + str(c.get("name", ""))
        if key in annotations and not _seccomp_annotation_allowed(str(annotations[key])):
            bad.add(f'{key}="{annotations[key]}"')
    if bad:
        return Forbidden(
            "seccompProfile",
            f"forbidden {plural('annotation', 'annotations', len(bad))} {', '.join(sorted(bad))}",
        )
    return None


def seccomp_valid(profile: Obj) -> bool:
    return profile.get("type") in ("Localhost", "RuntimeDefault")


def seccomp_baseline_1_19(meta: Obj, spec: Obj) -> Forbidden | None:
    setters: list[str] = []
    values: set[str] = set()
    pod_profile = (sc(spec) or {}).get("seccompProfile")
    if isinstance(pod_profile, dict) and not seccomp_valid(pod_profile):
        setters.append("pod")
        values.add(str(pod_profile.get("type") or ""))
    bad: list[str] = []
    for c in containers(spec):
        profile = (sc(c) or {}).get("seccompProfile")
        if isinstance(profile, dict) and not seccomp_valid(profile):
            bad.append(c.get("name", ""))
            values.add(str(profile.get("type") or ""))
    if bad:
        setters.append(containers_phrase(bad))
    if setters:
        return Forbidden(
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{quote(sorted(values))}",
        )
    return None


SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Forbidden | None:
        sysctls = (sc(spec) or {}).get("sysctls") or []
        bad = [
            str(s.get("name", ""))
            for s in sysctls
            if isinstance(s, dict) and s.get("name") not in allowed
        ]
        return Forbidden("forbidden sysctls", ", ".join(bad)) if bad else None

    return check


def windows_host_process(meta: Obj, spec: Obj) -> Forbidden | None:
    def host_process(obj: Obj) -> bool:
        return ((sc(obj) or {}).get("windowsOptions") or {}).get("hostProcess") is True

    bad = [c.get("name", "") for c in containers(spec) if host_process(c)]
    setters = ["pod"] if host_process(spec) else []
    if bad:
        setters.append(containers_phrase(bad))
    if setters:
        return Forbidden(
            "hostProcess",
            f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
        )
    return None
