"""Host preparation checks (unit, on a fake /proc/sys; and on this machine as root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilothouse.node import host
from pilothouse.node.runtime import cgroups


@pytest.fixture
def fake_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    sysdir = tmp_path / "sys"
    (sysdir / "net" / "ipv4").mkdir(parents=True)
    (sysdir / "net" / "bridge").mkdir(parents=True)
    (sysdir / "net" / "ipv4" / "ip_forward").write_text("0\n")
    (sysdir / "net" / "bridge" / "bridge-nf-call-iptables").write_text("1\n")
    monkeypatch.setattr(host, "PROC_SYS", sysdir)
    monkeypatch.setattr(host, "_modprobe", lambda module: False)
    v2 = cgroups.Layout(
        mode="v2", unified=tmp_path, v2_controllers=frozenset({"cpu", "memory", "pids"})
    )
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    monkeypatch.setattr(cgroups, "detect", lambda mountinfo=None: v2)
    return sysdir


def by_name(report: host.HostReport) -> dict[str, host.Check]:
    return {c.name: c for c in report.checks}


def test_ip_forward_is_reported_then_fixed(fake_sys: Path) -> None:
    report = host.prepare_host(fix=False)
    fwd = by_name(report)["ip-forward"]
    assert not fwd.ok and "sysctl -w net.ipv4.ip_forward=1" in fwd.remedy
    assert (fake_sys / "net/ipv4/ip_forward").read_text() == "0\n"
    report = host.prepare_host(fix=True)
    fwd = by_name(report)["ip-forward"]
    assert fwd.ok and fwd.fixed
    assert (fake_sys / "net/ipv4/ip_forward").read_text() == "1"
    again = by_name(host.prepare_host(fix=True))["ip-forward"]
    assert again.ok and not again.fixed  # idempotent
    assert by_name(report)["cgroups"].ok


def test_missing_binaries_say_what_to_install(
    fake_sys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host.shutil, "which", lambda name: None)
    monkeypatch.setattr(host.cni, "find_plugin", lambda name, dirs=(): None)
    checks = by_name(host.prepare_host(fix=False))
    assert not checks["conmon"].ok
    assert (
        checks["conmon"].remedy
        == "install the Debian package conmon: apt-get install conmon, or run `make install`"
    )
    assert "apt-get install crun" in checks["crun"].remedy
    assert "containernetworking-plugins" in checks["cni-plugins"].remedy
    assert "bridge, host-local, loopback" in checks["cni-plugins"].message
    report = host.prepare_host(runtime="runc", fix=False)
    assert "apt-get install runc" in by_name(report)["runc"].remedy
    assert not report.ok and report.problems


def test_bridge_netfilter_missing(fake_sys: Path) -> None:
    (fake_sys / "net/bridge/bridge-nf-call-iptables").unlink()
    check = by_name(host.prepare_host(fix=True))["bridge-netfilter"]
    assert not check.ok and "modprobe br_netfilter" in check.remedy


def test_hybrid_with_stuck_controllers(monkeypatch: pytest.MonkeyPatch, fake_sys: Path) -> None:
    stuck = cgroups.Layout(
        mode="hybrid", v1={"memory": Path("/nonexistent/cg/memory")},
        unified=Path("/nonexistent/cg/unified"), v2_controllers=frozenset({"hugetlb"}),
    )  # fmt: skip
    monkeypatch.setattr(cgroups, "detect", lambda mountinfo=None: stuck)
    check = by_name(host.prepare_host(fix=False))["cgroups"]
    assert not check.ok
    assert "mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb" in check.remedy


def test_report_text(fake_sys: Path) -> None:
    text = str(host.prepare_host(fix=False))
    assert "FAIL  ip-forward" in text and "cgroups: v2" in text


@pytest.mark.root
def test_this_machine_is_ready() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    report = host.prepare_host(fix=True)
    assert report.ok, str(report)
    assert report.cgroups.mode in ("v1", "hybrid", "v2")
    assert cgroups.conflicting_v2_controllers(report.cgroups) == []
    # a second run changes nothing
    assert not any(c.fixed for c in host.prepare_host(fix=True).checks)
