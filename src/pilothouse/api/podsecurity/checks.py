"""Every check of the Pod Security Standards, in each version's form (upstream ``policy/``).

A check looks at a pod's metadata and spec (or a template's) and returns None when it
allows them, or a :class:`~pilothouse.api.podsecurity.common.Forbidden` with upstream's
reason and detail (:mod:`baseline`, :mod:`restricted`). Checks that changed over time keep
one function per form, listed here with the version each starts at.
"""

from __future__ import annotations

from dataclasses import dataclass

from pilothouse.api.podsecurity import baseline as b
from pilothouse.api.podsecurity import restricted as r
from pilothouse.api.podsecurity.common import CheckFn
from pilothouse.api.podsecurity.levels import BASELINE, RESTRICTED, Version, version


@dataclass(frozen=True, slots=True)
class VersionedCheck:
    minimum: Version
    check: CheckFn
    # Restricted checks replace these baseline checks at this version.
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    level: str
    versions: tuple[VersionedCheck, ...]


def _v(major: int, minor: int, fn: CheckFn, *overrides: str) -> VersionedCheck:
    return VersionedCheck(version(major, minor), fn, tuple(overrides))


# The checks of the 1.32 library (``policy.DefaultChecks()``).
DEFAULT_CHECKS: tuple[Check, ...] = (
    Check("allowPrivilegeEscalation", RESTRICTED, (
        _v(1, 8, r.allow_privilege_escalation_1_8),
        _v(1, 25, r.allow_privilege_escalation_1_25),
    )),
    Check("appArmorProfile", BASELINE, (_v(1, 0, b.app_armor_profile),)),
    Check("capabilities_baseline", BASELINE, (_v(1, 0, b.capabilities_baseline),)),
    Check("capabilities_restricted", RESTRICTED, (
        _v(1, 22, r.capabilities_restricted_1_22, "capabilities_baseline"),
        _v(1, 25, r.capabilities_restricted_1_25, "capabilities_baseline"),
    )),
    Check("hostNamespaces", BASELINE, (_v(1, 0, b.host_namespaces),)),
    Check("hostPathVolumes", BASELINE, (_v(1, 0, b.host_path_volumes),)),
    Check("hostPorts", BASELINE, (_v(1, 0, b.host_ports),)),
    Check("privileged", BASELINE, (_v(1, 0, b.privileged),)),
    Check("procMount", BASELINE, (_v(1, 0, b.proc_mount),)),
    Check("restrictedVolumes", RESTRICTED, (_v(1, 0, r.restricted_volumes, "hostPathVolumes"),)),
    Check("runAsNonRoot", RESTRICTED, (_v(1, 0, r.run_as_non_root),)),
    Check("runAsUser", RESTRICTED, (_v(1, 23, r.run_as_user),)),
    Check("seLinuxOptions", BASELINE, (
        _v(1, 0, b.selinux(b.SELINUX_1_0)),
        _v(1, 31, b.selinux(b.SELINUX_1_31)),
    )),
    Check("seccompProfile_baseline", BASELINE, (
        _v(1, 0, b.seccomp_baseline_1_0),
        _v(1, 19, b.seccomp_baseline_1_19),
    )),
    Check("seccompProfile_restricted", RESTRICTED, (
        _v(1, 19, r.seccomp_restricted_1_19, "seccompProfile_baseline"),
        _v(1, 25, r.seccomp_restricted_1_25, "seccompProfile_baseline"),
    )),
    Check("sysctls", BASELINE, (
        _v(1, 0, b.sysctls(b.SYSCTLS_1_0)),
        _v(1, 27, b.sysctls(b.SYSCTLS_1_27)),
        _v(1, 29, b.sysctls(b.SYSCTLS_1_29)),
        _v(1, 32, b.sysctls(b.SYSCTLS_1_32)),
    )),
    Check("windowsHostProcess", BASELINE, (_v(1, 0, b.windows_host_process),)),
)  # fmt: skip
