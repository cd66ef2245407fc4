"""The RuntimeDefault profile and Localhost profile loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilothouse.node.runtime import ocispec, seccomp


def denied(profile: dict[str, object]) -> set[str]:
    out: set[str] = set()
    for rule in profile["syscalls"]:  # type: ignore[attr-defined]
        if rule["action"] == "SCMP_ACT_ERRNO" and "args" not in rule:
            out.update(rule["names"])
    return out


def test_default_profile_blocks_dangerous_calls() -> None:
    profile = seccomp.default_profile(set(ocispec.DEFAULT_CAPABILITIES))
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    blocked = denied(profile)
    for call in (
        "mount",
        "unshare",
        "setns",
        "bpf",
        "keyctl",
        "kexec_load",
        "init_module",
        "reboot",
        "kcmp",
        "io_uring_setup",
        "perf_event_open",
    ):
        assert call in blocked, call
    for call in ("read", "write", "clone", "chown", "socket", "ptrace"):
        assert call not in blocked, call
    clone_rules = [r for r in profile["syscalls"] if r["names"] == ["clone"]]
    assert len(clone_rules) == 7 and all(
        r["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" for r in clone_rules
    )
    clone3 = next(r for r in profile["syscalls"] if r["names"] == ["clone3"])
    assert clone3["errnoRet"] == seccomp.ENOSYS


def test_capabilities_open_their_calls() -> None:
    caps = set(ocispec.DEFAULT_CAPABILITIES) | {"CAP_SYS_ADMIN", "CAP_SYS_TIME"}
    profile = seccomp.default_profile(caps)
    blocked = denied(profile)
    assert not {"mount", "unshare", "setns", "bpf", "perf_event_open", "settimeofday"} & blocked
    assert "keyctl" in blocked and "reboot" in blocked
    assert not [r for r in profile["syscalls"] if r["names"] in (["clone"], ["clone3"])]


def test_load_docker_format(tmp_path: Path) -> None:
    path = tmp_path / "docker.json"
    path.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["chown"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
        ],
    }))  # fmt: skip
    profile = seccomp.load_profile(path, {"CAP_CHOWN"})
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert [r["names"] for r in profile["syscalls"]] == [["read", "write"]]
    assert set(profile["architectures"]) <= {
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
    }
    assert seccomp.load_profile(path, {"CAP_SYS_ADMIN"})["syscalls"][1]["names"] == ["mount"]


def test_bad_profiles(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        seccomp.load_profile(tmp_path / "bad.json", set())
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ValueError, match="defaultAction"):
        seccomp.load_profile(tmp_path / "empty.json", set())
