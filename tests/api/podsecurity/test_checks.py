"""The Pod Security Standards checks, with the reasons and details upstream's tests expect."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api.podsecurity import baseline, levels, restricted
from pilothouse.api.podsecurity.common import CheckFn
from pilothouse.api.podsecurity.evaluator import DEFAULT, Evaluator

Obj = dict[str, Any]


def c(name: str, **sc: Any) -> Obj:
    out: Obj = {"name": name, "image": "busybox"}
    if sc:
        out["securityContext"] = sc
    return out


def verdict(fn: CheckFn, spec: Obj, meta: Obj | None = None) -> tuple[str, str] | None:
    got = fn(meta or {}, spec)
    return None if got is None else (got.reason, got.detail)


def test_host_namespaces_and_ports() -> None:
    spec = {"hostNetwork": True, "hostIPC": True, "containers": [c("a")]}
    assert verdict(baseline.host_namespaces, spec) == (
        "host namespaces",
        "hostNetwork=true, hostIPC=true",
    )
    one = {"containers": [c("a"), {**c("b"), "ports": [{"containerPort": 1, "hostPort": 20}]}]}
    assert verdict(baseline.host_ports, one) == ("hostPort", 'container "b" uses hostPort 20')
    many = {
        "containers": [
            c("a"),
            {**c("b"), "ports": [{"hostPort": 10}, {"hostPort": 20}]},
            {**c("c"), "ports": [{"hostPort": 30}]},
        ]
    }
    assert verdict(baseline.host_ports, many) == (
        "hostPort",
        'containers "b", "c" use hostPorts 10, 20, 30',
    )


def test_privileged_and_capabilities() -> None:
    spec = {"initContainers": [c("i", privileged=True)], "containers": [c("a", privileged=False)]}
    assert verdict(baseline.privileged, spec) == (
        "privileged",
        'container "i" must not set securityContext.privileged=true',
    )
    caps = {
        "containers": [
            c("a", capabilities={"add": ["NET_RAW", "CHOWN"]}),
            c("b", capabilities={"add": ["SYS_ADMIN"]}),
        ]
    }
    assert verdict(baseline.capabilities_baseline, caps) == (
        "non-default capabilities",
        'containers "a", "b" must not include "NET_RAW", "SYS_ADMIN" in '
        "securityContext.capabilities.add",
    )
    unrestricted = {
        "containers": [
            c("a"),
            c("b", capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CHOWN"]}),
        ]
    }
    assert verdict(restricted.capabilities_restricted_1_25, unrestricted) == (
        "unrestricted capabilities",
        'container "a" must set securityContext.capabilities.drop=["ALL"]; container "b" must '
        'not include "CHOWN" in securityContext.capabilities.add',
    )
    windows = {**unrestricted, "os": {"name": "windows"}}
    assert verdict(restricted.capabilities_restricted_1_25, windows) is None
    assert verdict(restricted.capabilities_restricted_1_22, windows) is not None


def test_app_armor_annotations_and_fields() -> None:
    meta = {
        "annotations": {
            "container.apparmor.security.beta.kubernetes.io/": "bogus",
            "container.apparmor.security.beta.kubernetes.io/a": "",
            "container.apparmor.security.beta.kubernetes.io/b": "runtime/default",
            "container.apparmor.security.beta.kubernetes.io/d": "localhost/foo",
            "container.apparmor.security.beta.kubernetes.io/e": "unconfined",
            "container.apparmor.security.beta.kubernetes.io/f": "unknown",
        }
    }
    assert verdict(baseline.app_armor_profile, {"containers": []}, meta) == (
        "forbidden AppArmor profiles",
        "annotations must not set AppArmor profile type to "
        '"container.apparmor.security.beta.kubernetes.io/="bogus"", '
        '"container.apparmor.security.beta.kubernetes.io/e="unconfined"", '
        '"container.apparmor.security.beta.kubernetes.io/f="unknown""',
    )
    pod_level = {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": []}
    assert verdict(baseline.app_armor_profile, pod_level) == (
        "forbidden AppArmor profile",
        'pod must not set AppArmor profile type to "Unconfined"',
    )


def test_selinux_options_per_version() -> None:
    spec = {
        "securityContext": {"seLinuxOptions": {"type": "foo", "user": "u", "role": "r"}},
        "containers": [
            c("e", seLinuxOptions={"type": "bar"}),
            c("f", seLinuxOptions={"type": "container_t", "user": "u"}),
            c("g", seLinuxOptions={"role": "r"}),
        ],
    }
    check = baseline.selinux(baseline.SELINUX_1_31)
    assert verdict(check, spec) == (
        "seLinuxOptions",
        'pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: '
        'types "bar", "foo"; user may not be set; role may not be set',
    )
    engine = {"containers": [c("x", seLinuxOptions={"type": "container_engine_t"})]}
    assert verdict(check, engine) is None
    assert verdict(baseline.selinux(baseline.SELINUX_1_0), engine) is not None


def test_restricted_volumes() -> None:
    spec = {
        "volumes": [
            {"name": "ok", "emptyDir": {}},
            {"name": "h", "hostPath": {"path": "/"}},
            {"name": "n", "nfs": {"server": "x", "path": "/"}},
            {"name": "u"},
        ]
    }
    assert verdict(restricted.restricted_volumes, spec) == (
        "restricted volume types",
        'volumes "h", "n", "u" use restricted volume types "hostPath", "nfs", "unknown"',
    )
    assert verdict(baseline.host_path_volumes, spec) == ("hostPath volumes", 'volume "h"')


def test_run_as_non_root_and_user() -> None:
    implicit = {"containers": [c("a"), c("b", runAsNonRoot=True)]}
    assert verdict(restricted.run_as_non_root, implicit) == (
        "runAsNonRoot != true",
        'pod or container "a" must set securityContext.runAsNonRoot=true',
    )
    explicit = {
        "securityContext": {"runAsNonRoot": False},
        "containers": [c("a", runAsNonRoot=False)],
    }
    assert verdict(restricted.run_as_non_root, explicit) == (
        "runAsNonRoot != true",
        'pod and container "a" must not set securityContext.runAsNonRoot=false',
    )
    assert (
        verdict(
            restricted.run_as_non_root,
            {"securityContext": {"runAsNonRoot": True}, "containers": [c("a")]},
        )
        is None
    )
    root = {
        "securityContext": {"runAsUser": 0},
        "containers": [c("a", runAsUser=0), c("b", runAsUser=1000)],
    }
    assert verdict(restricted.run_as_user, root) == (
        "runAsUser=0",
        'pod and container "a" must not set runAsUser=0',
    )


def test_seccomp_baseline_and_restricted() -> None:
    unconfined = {"containers": [c("a", seccompProfile={"type": "Unconfined"}), c("b")]}
    assert verdict(baseline.seccomp_baseline_1_19, unconfined) == (
        "seccompProfile",
        'container "a" must not set securityContext.seccompProfile.type to "Unconfined"',
    )
    assert verdict(restricted.seccomp_restricted_1_19, unconfined) == (
        "seccompProfile",
        'container "a" must not set securityContext.seccompProfile.type to "Unconfined"',
    )
    missing = {"containers": [c("b")]}
    assert verdict(restricted.seccomp_restricted_1_19, missing) == (
        "seccompProfile",
        'pod or container "b" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost"',
    )
    pod_set = {
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [c("b")],
    }
    assert verdict(restricted.seccomp_restricted_1_19, pod_set) is None
    annotations = {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}
    assert verdict(baseline.seccomp_baseline_1_0, {"containers": []}, annotations) == (
        "seccompProfile",
        'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined"',
    )


def test_sysctls_grow_by_version() -> None:
    spec = {
        "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem"}, {"name": "kernel.msgmax"}]}
    }
    assert verdict(baseline.sysctls(baseline.SYSCTLS_1_32), spec) == (
        "forbidden sysctls",
        "kernel.msgmax",
    )
    assert verdict(baseline.sysctls(baseline.SYSCTLS_1_29), spec) == (
        "forbidden sysctls",
        "net.ipv4.tcp_rmem, kernel.msgmax",
    )


def test_proc_mount_and_host_process_and_escalation() -> None:
    spec = {"containers": [c("a", procMount="Unmasked"), c("b", procMount="Default")]}
    assert verdict(baseline.proc_mount, spec) == (
        "procMount",
        'container "a" must not set securityContext.procMount to "Unmasked"',
    )
    host = {
        "securityContext": {"windowsOptions": {"hostProcess": True}},
        "containers": [c("a", windowsOptions={"hostProcess": True})],
    }
    assert verdict(baseline.windows_host_process, host) == (
        "hostProcess",
        'pod and container "a" must not set securityContext.windowsOptions.hostProcess=true',
    )
    escalation = {
        "containers": [
            c("a"),
            c("b", allowPrivilegeEscalation=False),
            c("c", allowPrivilegeEscalation=True),
        ]
    }
    assert verdict(restricted.allow_privilege_escalation_1_8, escalation) == (
        "allowPrivilegeEscalation != false",
        'containers "a", "c" must set securityContext.allowPrivilegeEscalation=false',
    )


RESTRICTED_OK: Obj = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        c("a", allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}),
    ],
}


def lv(level: str, version: str = "latest") -> levels.LevelVersion:
    parsed = levels.parse_version(version)
    assert parsed is not None
    return levels.LevelVersion(level, parsed)


def test_evaluator_orders_baseline_then_restricted_and_overrides() -> None:
    spec = {"hostPID": True, "containers": [c("c", privileged=True)]}
    result = DEFAULT.evaluate(lv("restricted"), {}, spec)
    assert [f.reason for f in result.forbidden] == [
        "host namespaces",
        "privileged",
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        "seccompProfile",
    ]
    assert result.reason() == (
        "host namespaces, privileged, allowPrivilegeEscalation != false, unrestricted "
        "capabilities, runAsNonRoot != true, seccompProfile"
    )
    assert DEFAULT.evaluate(lv("restricted"), {}, RESTRICTED_OK).allowed
    assert DEFAULT.evaluate(lv("privileged"), {}, spec).allowed
    baseline = DEFAULT.evaluate(lv("baseline"), {}, spec)
    assert baseline.detail() == (
        'host namespaces (hostPID=true), privileged (container "c" must not set '
        "securityContext.privileged=true)"
    )


@pytest.mark.parametrize(
    ("version", "allowed"),
    [("v1.21", True), ("v1.22", False), ("v1.30", False), ("latest", False), ("v1.99", False)],
)
def test_versions_pick_the_checks_of_their_time(version: str, allowed: bool) -> None:
    # Restricted capabilities (drop ALL) came with v1.22.
    spec = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [c("a", allowPrivilegeEscalation=False)],
    }
    assert DEFAULT.evaluate(lv("restricted", version), {}, spec).allowed is allowed


def test_evaluator_table_has_every_check_once() -> None:
    ev = Evaluator()
    assert ev.max_minor == 32
    assert len(ev._restricted[32]) == 17 - 3  # three baseline checks overridden


def test_policy_from_labels() -> None:
    policy, errs = levels.policy_to_evaluate(
        {
            "pod-security.kubernetes.io/enforce": "baseline",
            "pod-security.kubernetes.io/enforce-version": "v1.25",
            "pod-security.kubernetes.io/audit": "restricted",
        }
    )
    assert not errs
    assert str(policy.enforce) == "baseline:v1.25"
    assert str(policy.audit) == "restricted:latest"
    assert str(policy.warn) == "baseline:v1.25"  # warn follows enforce when not set
    bad, errs = levels.policy_to_evaluate(
        {"pod-security.kubernetes.io/enforce": "strict", "pod-security.kubernetes.io/warn": "x"}
    )
    assert str(bad.enforce) == "restricted:latest"  # fail closed
    assert str(bad.warn) == "privileged:latest"  # fail open
    assert [e.message() for e in errs] == [
        'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be '
        "one of privileged, baseline, restricted",
        'metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "x": must be one of '
        "privileged, baseline, restricted",
    ]
    _, errs = levels.policy_to_evaluate({"pod-security.kubernetes.io/audit-version": "1.25"})
    assert [e.message() for e in errs] == [
        'metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "1.25": must '
        'be "latest" or "v1.x"'
    ]
