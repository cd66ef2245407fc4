"""Seccomp profiles: the ``RuntimeDefault`` profile and ``Localhost`` profile files.

Upstream's RuntimeDefault is containerd's (the same as Docker's): an allowlist
of ~350 system calls, plus calls that open up when the container holds the
matching capability. We keep its semantics for the calls that matter and
express them as a denylist, which stays correct across architectures and
kernel versions without a table per architecture: the calls the Docker
profile refuses to an unprivileged container fail with EPERM (``clone3`` with
ENOSYS, so libc falls back to ``clone``, whose namespace flags are checked).
Calls gated on a capability are refused only when the container lacks it.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

EPERM = 1
ENOSYS = 38

_ARCHES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "armv7l": ["SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
    "riscv64": ["SCMP_ARCH_RISCV64"],
}

# Refused to every container that is not privileged.
_ALWAYS = (
    "add_key",
    "keyctl",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "nfsservctl",
    "_sysctl",
    "sysfs",
    "uselib",
    "ustat",
    "vm86",
    "vm86old",
    "create_module",
    "get_kernel_syms",
    "query_module",
)

# Refused unless the container holds the capability.
_BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": (
        "mount",
        "umount",
        "umount2",
        "unshare",
        "setns",
        "pivot_root",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
        "quotactl",
        "quotactl_fd",
        "lookup_dcookie",
        "fanotify_init",
        "swapon",
        "swapoff",
        "name_to_handle_at",
    ),
    "CAP_SYS_BOOT": ("reboot", "kexec_load", "kexec_file_load"),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_TIME": (
        "settimeofday",
        "stime",
        "clock_settime",
        "clock_settime64",
        "clock_adjtime",
        "clock_adjtime64",
    ),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_PTRACE": ("kcmp", "userfaultfd"),
    "CAP_SYS_NICE": ("get_mempolicy", "set_mempolicy", "mbind", "move_pages"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET (Docker's 0x7E020000).
_CLONE_NS_FLAGS = (
    0x00020000,
    0x02000000,
    0x04000000,
    0x08000000,
    0x10000000,
    0x20000000,
    0x40000000,
)


def architectures() -> list[str]:
    return _ARCHES.get(platform.machine(), [])


def default_profile(capabilities: set[str]) -> dict[str, Any]:
    """The RuntimeDefault profile for a container holding ``capabilities`` ("CAP_…")."""
    denied = list(_ALWAYS)
    for cap, calls in _BY_CAPABILITY.items():
        held = cap in capabilities
        # Newer capabilities split off CAP_SYS_ADMIN; it still grants them.
        if cap in ("CAP_BPF", "CAP_PERFMON", "CAP_SYSLOG") and "CAP_SYS_ADMIN" in capabilities:
            held = True
        if not held:
            denied.extend(calls)
    rules: list[dict[str, Any]] = [
        {"names": sorted(denied), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}
    ]
    if "CAP_SYS_ADMIN" not in capabilities:
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
        for flag in _CLONE_NS_FLAGS:
            rules.append(
                {
                    "names": ["clone"],
                    "action": "SCMP_ACT_ERRNO",
                    "errnoRet": EPERM,
                    # On s390 the flags are the second argument; elsewhere the first.
                    "args": [
                        {
                            "index": 1 if platform.machine().startswith("s390") else 0,
                            "value": flag,
                            "valueTwo": flag,
                            "op": "SCMP_CMP_MASKED_EQ",
                        }
                    ],
                }
            )
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures(),
        "syscalls": rules,
    }


def load_profile(path: Path, capabilities: set[str]) -> dict[str, Any]:
    """A ``Localhost`` profile: OCI seccomp JSON, or Docker's format (archMap, includes)."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"seccomp profile {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ValueError(f"seccomp profile {path}: not JSON ({exc})") from exc
    if not isinstance(raw, dict) or "defaultAction" not in raw:
        raise ValueError(f"seccomp profile {path}: no defaultAction")
    out: dict[str, Any] = {"defaultAction": raw["defaultAction"]}
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if key in raw:
            out[key] = raw[key]
    if "architectures" in raw:
        out["architectures"] = raw["architectures"]
    elif "archMap" in raw:
        mine = set(architectures())
        arches = []
        for entry in raw["archMap"]:
            if entry.get("architecture") in mine:
                arches.append(entry["architecture"])
                arches.extend(entry.get("subArchitectures") or [])
        out["architectures"] = arches
    rules = []
    for rule in raw.get("syscalls") or []:
        if not _applies(rule, capabilities):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names:
            continue
        converted: dict[str, Any] = {"names": names, "action": rule.get("action", "SCMP_ACT_ALLOW")}
        for key in ("args", "errnoRet"):
            if rule.get(key):
                converted[key] = rule[key]
        rules.append(converted)
    out["syscalls"] = rules
    return out


def _applies(rule: dict[str, Any], capabilities: set[str]) -> bool:
    arch = platform.machine()
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("caps") and not set(inc["caps"]) <= capabilities:
        return False
    if exc.get("caps") and set(exc["caps"]) & capabilities:
        return False
    arches = set(architectures()) | {arch, "amd64" if arch == "x86_64" else arch}
    if inc.get("arches") and not set(inc["arches"]) & arches:
        return False
    return not (exc.get("arches") and set(exc["arches"]) & arches)
