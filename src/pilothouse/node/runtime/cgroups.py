"""Control groups: find the host's layout, make pod cgroups, read OOM kills, clean up.

Three layouts exist in the wild and this machine has the awkward one:

* ``v2``: one unified hierarchy at /sys/fs/cgroup (current distributions);
* ``v1``: one hierarchy per controller under /sys/fs/cgroup/<controller>;
* ``hybrid``: v1 controllers plus an (ideally controller-less) cgroup2 at
  /sys/fs/cgroup/unified. crun uses v1 then, and creates the path in the unified
  tree as well, so cleanup must visit every hierarchy.

Paths given here are absolute cgroup paths ("/pilothouse/burstable/pod<uid>"),
the same in every hierarchy. Everything is synchronous file I/O on cgroupfs
(tens of microseconds a call); async callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

_V2_WANTED = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids")


@dataclass(frozen=True)
class Layout:
    """Where each cgroup hierarchy is mounted on this host."""

    mode: str  # "v1" | "hybrid" | "v2"
    v1: dict[str, Path] = field(default_factory=dict)  # controller (or "name=…") -> mount
    unified: Path | None = None
    v2_controllers: frozenset[str] = frozenset()  # enabled-able in the unified hierarchy
    swap_accounting: bool = False

    @property
    def hierarchies(self) -> list[Path]:
        """Every distinct mount, v1 first, the unified tree last."""
        seen: list[Path] = []
        for mnt in self.v1.values():
            if mnt not in seen:
                seen.append(mnt)
        if self.unified is not None:
            seen.append(self.unified)
        return seen

    def dirs(self, path: str) -> list[Path]:
        """The directories of cgroup ``path`` in every hierarchy."""
        rel = path.strip("/")
        return [mnt / rel for mnt in self.hierarchies]

    def controller_dir(self, controller: str, path: str) -> Path | None:
        """Where ``controller``'s files of cgroup ``path`` are (v1 if present, else v2)."""
        rel = path.strip("/")
        if controller in self.v1:
            return self.v1[controller] / rel
        if self.unified is not None and (self.mode == "v2" or controller in self.v2_controllers):
            return self.unified / rel
        return None

    @property
    def memory_is_v2(self) -> bool:
        return "memory" not in self.v1 and self.unified is not None


def _mountinfo(text: str | None) -> list[tuple[Path, str, str]]:
    if text is None:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    out = []
    for line in text.splitlines():
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        if len(fields) < 5:
            continue
        fstype, _source, super_opts = [*post.split(), "", "", ""][:3]
        out.append((Path(fields[4]), fstype, super_opts))
    return out


def detect(mountinfo: str | None = None) -> Layout:
    """The cgroup layout of this host, from /proc/self/mountinfo (or the text given)."""
    v1: dict[str, Path] = {}
    unified: Path | None = None
    for mnt, fstype, opts in _mountinfo(mountinfo):
        if fstype == "cgroup2" and unified is None:
            unified = mnt
        elif fstype == "cgroup":
            for opt in opts.split(","):
                if opt in ("rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec"):
                    continue
                if opt.startswith(("release_agent=", "clone_children", "xattr", "noprefix")):
                    continue
                v1.setdefault(opt, mnt)
    controllers: frozenset[str] = frozenset()
    if unified is not None:
        try:
            controllers = frozenset((unified / "cgroup.controllers").read_text().split())
        except OSError:
            controllers = frozenset()
    if not v1 and unified is not None:
        mode = "v2"
    elif unified is not None:
        mode = "hybrid"
    else:
        mode = "v1"
    if "memory" in v1:
        swap = (v1["memory"] / "memory.memsw.limit_in_bytes").exists()
    else:
        # v2 has memory.swap.max on non-root cgroups when swap accounting is on.
        swap = mode == "v2" and "memory" in controllers and _v2_swap_accounting(unified)
    return Layout(
        mode=mode, v1=v1, unified=unified, v2_controllers=controllers, swap_accounting=swap
    )


def _v2_swap_accounting(unified: Path | None) -> bool:
    if unified is None:
        return False
    for child in unified.iterdir():
        if child.is_dir():
            return (child / "memory.swap.max").exists()
    return True


def conflicting_v2_controllers(layout: Layout) -> list[str]:
    """Hybrid hosts: controllers left on cgroup2 that crun refuses to share (e.g. hugetlb)."""
    if layout.mode != "hybrid":
        return []
    return sorted(layout.v2_controllers)


# --- creating ----------------------------------------------------------------------------
def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _mkdir_v1(root: Path, rel: str, *, cpuset: bool) -> None:
    cur = root
    for part in [p for p in rel.split("/") if p]:
        parent, cur = cur, cur / part
        try:
            cur.mkdir()
        except FileExistsError:
            continue
        if cpuset:
            # New v1 cpuset groups start with no CPUs and no memory nodes: a task
            # cannot join them until both are copied from the parent.
            for name in ("cpuset.cpus", "cpuset.mems"):
                _write(cur / name, (parent / name).read_text().strip() or "\n")


def _mkdir_v2(root: Path, rel: str, controllers: frozenset[str]) -> None:
    cur = root
    enable = " ".join(f"+{c}" for c in _V2_WANTED if c in controllers)
    for part in [p for p in rel.split("/") if p]:
        if enable:
            with contextlib.suppress(OSError):
                _write(cur / "cgroup.subtree_control", enable)
        cur = cur / part
        cur.mkdir(exist_ok=True)


def create(layout: Layout, path: str) -> None:
    """Make cgroup ``path`` (and its parents) in every hierarchy."""
    rel = path.strip("/")
    for mnt in layout.hierarchies:
        if mnt != layout.unified:
            _mkdir_v1(mnt, rel, cpuset=mnt == layout.v1.get("cpuset"))
    if layout.unified is not None:
        if layout.mode == "v2":
            _mkdir_v2(layout.unified, rel, layout.v2_controllers)
        else:
            (layout.unified / rel).mkdir(parents=True, exist_ok=True)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares to v2 cpu.weight, as runc and crun convert."""
    if shares <= 0:
        return 100
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


def set_limits(
    layout: Layout,
    path: str,
    *,
    cpu_shares: int = 0,
    cpu_quota: int = 0,
    cpu_period: int = 100_000,
    memory_limit: int = 0,
) -> None:
    """Write the pod-level CPU and memory limits of cgroup ``path`` (0: unlimited)."""
    rel = path.strip("/")
    if "cpu" in layout.v1:
        d = layout.v1["cpu"] / rel
        if cpu_shares:
            _write(d / "cpu.shares", str(cpu_shares))
        if cpu_quota:
            _write(d / "cpu.cfs_period_us", str(cpu_period))
            _write(d / "cpu.cfs_quota_us", str(cpu_quota))
    elif layout.unified is not None:
        d = layout.unified / rel
        if cpu_shares:
            _write(d / "cpu.weight", str(shares_to_weight(cpu_shares)))
        if cpu_quota:
            _write(d / "cpu.max", f"{cpu_quota} {cpu_period}")
    if memory_limit:
        if "memory" in layout.v1:
            _write(layout.v1["memory"] / rel / "memory.limit_in_bytes", str(memory_limit))
        elif layout.unified is not None:
            _write(layout.unified / rel / "memory.max", str(memory_limit))


# --- reading -------------------------------------------------------------------------------
def _keyed(path: Path) -> dict[str, int]:
    out = {}
    try:
        text = path.read_text()
    except OSError:
        return {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def oom_kills(layout: Layout, path: str) -> int:
    """How many processes the OOM killer killed in cgroup ``path`` (0 if it is gone)."""
    rel = path.strip("/")
    if "memory" in layout.v1:
        return _keyed(layout.v1["memory"] / rel / "memory.oom_control").get("oom_kill", 0)
    if layout.unified is not None:
        return _keyed(layout.unified / rel / "memory.events").get("oom_kill", 0)
    return 0


def cpu_stat(layout: Layout, path: str) -> dict[str, int]:
    """The ``cpu.stat`` counters (v1: nr_periods, nr_throttled, throttled_time; v2: *_usec)."""
    d = layout.controller_dir("cpu", path)
    return _keyed(d / "cpu.stat") if d is not None else {}


def usage(layout: Layout, path: str) -> dict[str, int]:
    """CPU time (ns), memory use and working set (use minus inactive file cache), throttling."""
    rel = path.strip("/")
    out = {"cpu_usage_ns": 0, "memory_usage": 0, "memory_working_set": 0, "nr_throttled": 0}
    if "cpuacct" in layout.v1:
        with contextlib.suppress(OSError, ValueError):
            out["cpu_usage_ns"] = int((layout.v1["cpuacct"] / rel / "cpuacct.usage").read_text())
    cpu = layout.controller_dir("cpu", path)
    if cpu is not None:
        stat = _keyed(cpu / "cpu.stat")
        out["nr_throttled"] = stat.get("nr_throttled", 0)
        if "usage_usec" in stat and not out["cpu_usage_ns"]:
            out["cpu_usage_ns"] = stat["usage_usec"] * 1000
    if "memory" in layout.v1:
        mem = layout.v1["memory"] / rel
        usage_file, inactive_key = mem / "memory.usage_in_bytes", "total_inactive_file"
    elif layout.unified is not None:
        mem = layout.unified / rel
        usage_file, inactive_key = mem / "memory.current", "inactive_file"
    else:
        return out
    with contextlib.suppress(OSError, ValueError):
        out["memory_usage"] = int(usage_file.read_text())
    inactive = _keyed(mem / "memory.stat").get(inactive_key, 0)
    out["memory_working_set"] = max(0, out["memory_usage"] - inactive)
    return out


def procs(layout: Layout, path: str) -> list[int]:
    """Processes in cgroup ``path`` and below (from any hierarchy that has them)."""
    found: set[int] = set()
    for d in layout.dirs(path):
        if not d.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(d):
            try:
                text = (Path(dirpath) / "cgroup.procs").read_text()
            except OSError:
                continue
            found.update(int(p) for p in text.split())
    return sorted(found)


# --- removing ------------------------------------------------------------------------------
def remove(layout: Layout, path: str, *, kill: bool = True, timeout: float = 5.0) -> list[Path]:
    """Remove cgroup ``path`` and everything below it in every hierarchy.

    Leftover processes are SIGKILLed first when ``kill`` is set. Returns the
    directories that could not be removed (empty when all went).
    """
    deadline = time.monotonic() + timeout
    if kill:
        for pid in procs(layout, path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    left: list[Path] = []
    for top in layout.dirs(path):
        if not top.is_dir():
            continue
        subdirs = [Path(dp) for dp, _d, _f in os.walk(top, topdown=False)]
        for d in subdirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        left.append(d)
                        break
                    # Killed processes take a moment to leave their cgroup.
                    time.sleep(0.01)
    return left


def exists(layout: Layout, path: str) -> list[Path]:
    """The hierarchies where cgroup ``path`` still has a directory."""
    return [d for d in layout.dirs(path) if d.is_dir()]
