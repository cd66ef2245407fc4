"""Host preparation: is this machine able to run pods, and fix what can be fixed.

Checked, in order: root; the OCI runtime (crun, or runc); conmon; the CNI
plugins (bridge, host-local, loopback); the cgroup layout, and on hybrid hosts
that no controller is left on cgroup2 (crun refuses "hybrid mode" otherwise:
such controllers — typically hugetlb — are mounted as v1 hierarchies); on
pure v2 hosts that the controllers are enabled for children; overlayfs; IPv4
forwarding; bridge netfilter (so Service rules see bridged pod traffic).

Each problem says what to do. With ``fix=True`` the fixable ones are fixed
(idempotently: running it twice changes nothing the second time). It is
synchronous (file checks, a mount, at most a ``modprobe``): call it once at
agent start, in a thread if a loop is running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pilothouse.node import cni
from pilothouse.node.runtime import cgroups, linux

PROC_SYS = Path("/proc/sys")


@dataclass
class Check:
    """One thing looked at: fine, fixed, or a problem with what to do about it."""

    name: str
    ok: bool
    message: str = ""
    remedy: str = ""
    fixed: bool = False

    def __str__(self) -> str:
        if self.ok:
            return f"ok    {self.name}" + (f" (fixed: {self.message})" if self.fixed else "")
        return f"FAIL  {self.name}: {self.message}" + (
            f"\n      -> {self.remedy}" if self.remedy else ""
        )


@dataclass
class HostReport:
    """The outcome of :func:`prepare_host`."""

    checks: list[Check] = field(default_factory=list)
    cgroups: cgroups.Layout = field(default_factory=lambda: cgroups.Layout(mode="v1"))
    runtime_path: str = ""
    conmon_path: str = ""
    cni_dir: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def __str__(self) -> str:
        lines = [str(c) for c in self.checks]
        lines.append(
            f"cgroups: {self.cgroups.mode}"
            + (f", unified at {self.cgroups.unified}" if self.cgroups.unified else "")
        )
        return "\n".join(lines)


def _apt(package: str) -> str:
    return f"install the Debian package {package}: apt-get install {package}, or run `make install`"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _write_sysctl(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
    except OSError:
        return False
    return _read(path) == value


def _modprobe(module: str) -> bool:
    exe = shutil.which("modprobe")
    if exe is None:
        return False
    return subprocess.run([exe, module], capture_output=True, check=False).returncode == 0


def _check_binary(report: HostReport, name: str, package: str) -> str:
    path = shutil.which(name) or ""
    if path:
        report.checks.append(Check(name, True, path))
    else:
        report.checks.append(Check(name, False, f"{name} not found on PATH", _apt(package)))
    return path


def _check_cni(report: HostReport) -> None:
    missing = [p for p in cni.REQUIRED_PLUGINS if cni.find_plugin(p) is None]
    where = ", ".join(str(d) for d in cni.DEFAULT_PLUGIN_DIRS)
    if missing:
        report.checks.append(Check(
            "cni-plugins", False,
            f"CNI plugins missing from {where}: {', '.join(missing)}",
            _apt("containernetworking-plugins"),
        ))  # fmt: skip
        return
    found = cni.find_plugin("bridge")
    report.cni_dir = str(found.parent) if found else ""
    report.checks.append(Check("cni-plugins", True, report.cni_dir))


def _check_cgroups(report: HostReport, fix: bool) -> None:
    layout = cgroups.detect()
    if not layout.v1 and layout.unified is None:
        report.checks.append(
            Check(
                "cgroups",
                False,
                "no cgroup filesystem is mounted",
                "mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)",
            )
        )
        report.cgroups = layout
        return
    if layout.mode == "hybrid":
        stuck = cgroups.conflicting_v2_controllers(layout)
        fixed = []
        if stuck and fix:
            base = next(iter(layout.v1.values())).parent
            for controller in stuck:
                target = base / controller
                try:
                    target.mkdir(exist_ok=True)
                    linux.mount("cgroup", target, "cgroup", 0, controller)
                    fixed.append(controller)
                except OSError:
                    pass
            layout = cgroups.detect()
            stuck = cgroups.conflicting_v2_controllers(layout)
        if stuck:
            cmds = "; ".join(
                f"mkdir -p /sys/fs/cgroup/{c} && mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}"
                for c in stuck
            )
            report.checks.append(Check(
                "cgroups", False,
                f"hybrid cgroups with controllers on cgroup2 ({', '.join(stuck)}): crun refuses "
                "'cgroups in hybrid mode'",
                f"mount them as v1 hierarchies (once per boot): {cmds}",
            ))  # fmt: skip
        else:
            msg = f"hybrid, v1 controllers: {', '.join(sorted(layout.v1))}"
            report.checks.append(
                Check(
                    "cgroups",
                    True,
                    (f"mounted {', '.join(fixed)} as v1; " if fixed else "") + msg,
                    fixed=bool(fixed),
                )
            )
    elif layout.mode == "v2":
        assert layout.unified is not None
        wanted = {"cpu", "memory", "pids"}
        missing = sorted(wanted - layout.v2_controllers)
        enabled = set((_read(layout.unified / "cgroup.subtree_control") or "").split())
        off = sorted((wanted & layout.v2_controllers) - enabled)
        fixed_now = False
        if off and fix:
            try:
                (layout.unified / "cgroup.subtree_control").write_text(
                    " ".join("+" + c for c in off)
                )
                fixed_now = True
                off = []
            except OSError:
                pass
        if missing:
            report.checks.append(
                Check(
                    "cgroups",
                    False,
                    f"cgroup v2 lacks controllers: {', '.join(missing)}",
                    "boot a kernel with them enabled (cgroup_enable=memory)",
                )
            )
        elif off:
            report.checks.append(Check("cgroups", False, f"cgroup v2 controllers not enabled for children: {', '.join(off)}",
                                       f"echo '{' '.join('+' + c for c in off)}' > {layout.unified}/cgroup.subtree_control"))  # fmt: skip
        else:
            report.checks.append(Check("cgroups", True, "unified (v2)", fixed=fixed_now))
    else:
        missing = sorted({"cpu", "memory", "pids"} - set(layout.v1))
        if missing:
            report.checks.append(
                Check(
                    "cgroups",
                    False,
                    f"cgroup v1 controllers not mounted: {', '.join(missing)}",
                    "mount them under /sys/fs/cgroup/<controller>",
                )
            )
        else:
            report.checks.append(Check("cgroups", True, "v1"))
    report.cgroups = cgroups.detect()


def _filesystems() -> set[str]:
    try:
        return {
            line.split()[-1]
            for line in Path("/proc/filesystems").read_text().splitlines()
            if line.strip()
        }
    except OSError:
        return set()


def _check_overlay(report: HostReport, fix: bool) -> None:
    if "overlay" in _filesystems():
        report.checks.append(Check("overlayfs", True))
        return
    if fix and _modprobe("overlay") and "overlay" in _filesystems():
        report.checks.append(Check("overlayfs", True, "loaded the overlay module", fixed=True))
        return
    report.checks.append(
        Check(
            "overlayfs",
            False,
            "the kernel has no overlay filesystem",
            "modprobe overlay (and add 'overlay' to /etc/modules-load.d/)",
        )
    )


def _check_sysctl(report: HostReport, fix: bool, name: str, rel: str, module: str = "") -> None:
    path = PROC_SYS / rel
    if not path.exists() and module and fix:
        _modprobe(module)
    if not path.exists():
        hint = f"modprobe {module}, then " if module else ""
        report.checks.append(
            Check(
                name, False, f"{path} does not exist", f"{hint}sysctl -w {rel.replace('/', '.')}=1"
            )
        )
        return
    if _read(path) == "1":
        report.checks.append(Check(name, True))
        return
    if fix and _write_sysctl(path, "1"):
        report.checks.append(Check(name, True, f"set {rel.replace('/', '.')}=1", fixed=True))
        return
    report.checks.append(Check(
        name, False, f"{rel.replace('/', '.')} is {_read(path)}",
        f"sysctl -w {rel.replace('/', '.')}=1 (and persist it in /etc/sysctl.d/)",
    ))  # fmt: skip


def prepare_host(*, runtime: str = "crun", fix: bool = True) -> HostReport:
    """Check (and with ``fix``, repair) what running pods needs on this host."""
    report = HostReport()
    if os.geteuid() == 0:
        report.checks.append(Check("root", True))
    else:
        report.checks.append(
            Check(
                "root",
                False,
                "the node agent must run as root",
                "run it with sudo, or as a systemd service",
            )
        )
    if runtime not in ("crun", "runc") and not os.path.isabs(runtime):
        report.checks.append(
            Check("runtime", False, f"unknown runtime {runtime!r}", "use crun (default) or runc")
        )
    else:
        report.runtime_path = _check_binary(report, runtime, Path(runtime).name)
    report.conmon_path = _check_binary(report, "conmon", "conmon")
    _check_cni(report)
    _check_cgroups(report, fix)
    _check_overlay(report, fix)
    _check_sysctl(report, fix, "ip-forward", "net/ipv4/ip_forward")
    _check_sysctl(
        report, fix, "bridge-netfilter", "net/bridge/bridge-nf-call-iptables", module="br_netfilter"
    )
    if shutil.which("nft") is None:
        report.checks.append(
            Check("nft", False, "nft not found (pod masquerade rules)", _apt("nftables"))
        )
    else:
        report.checks.append(Check("nft", True))
    if fix:
        cni.NETNS_DIR.mkdir(parents=True, exist_ok=True)
    return report
