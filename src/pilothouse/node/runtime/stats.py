"""Resource use read from the kernel: one cgroup (a container, a pod) or the whole node.

What upstream's cAdvisor reports, from the same files:

* CPU: cumulative CPU time in nanoseconds — v1 ``cpuacct.usage``, v2 ``cpu.stat``
  ``usage_usec``; throttled periods from ``cpu.stat`` ``nr_throttled`` (both).
* Memory working set: usage minus the inactive file cache (the part the kernel
  can drop without swapping) — v1 ``memory.usage_in_bytes`` minus
  ``total_inactive_file`` of ``memory.stat``, v2 ``memory.current`` minus
  ``inactive_file``. This is what ``kubectl top`` shows and what evictions use.

Paths are absolute cgroup paths, resolved in each controller's hierarchy by the
:class:`~pilothouse.node.runtime.cgroups.Layout` (v1, hybrid or v2). Reads are
synchronous file I/O of a few tens of microseconds; async callers run them in a
thread. A cgroup that is gone reads as zeros rather than failing, as a container
may exit between listing and reading.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pilothouse.node.runtime import cgroups, protocol


def read_cgroup_stats(layout: cgroups.Layout, cgroup_path: str) -> protocol.ContainerStats:
    """CPU time, memory use and working set, and throttling of cgroup ``cgroup_path``."""
    use = cgroups.usage(layout, cgroup_path)
    return protocol.ContainerStats(
        timestamp=time.time(),
        cpu_usage_ns=use["cpu_usage_ns"],
        memory_working_set=use["memory_working_set"],
        memory_usage=use["memory_usage"],
        cpu_throttled_periods=use["nr_throttled"],
    )


def _meminfo(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            scale = 1024 if len(fields) > 1 and fields[1] == "kB" else 1
            out[key.strip()] = int(fields[0]) * scale
    return out


def _busy_ticks(stat_text: str) -> int:
    """Clock ticks the CPUs spent busy, from the aggregate ``cpu`` line of /proc/stat."""
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:]]
            # user nice system idle iowait irq softirq steal [guest guest_nice]:
            # guest time is already counted in user and nice, idle and iowait are not busy.
            values += [0] * (8 - len(values))
            user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
            return user + nice + system + irq + softirq + steal
    return 0


def read_node_stats(proc: Path = Path("/proc")) -> protocol.ContainerStats:
    """The whole machine's CPU time and memory, from ``/proc/stat`` and ``/proc/meminfo``.

    /proc works the same on every cgroup layout (the root cgroup has no
    ``memory.current`` on v2). The working set follows the root cgroup's
    definition: memory in use (total minus free, page cache included) minus the
    inactive file cache.
    """
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        stat = ""
    try:
        info = _meminfo((proc / "meminfo").read_text())
    except OSError:
        info = {}
    ticks_per_second = os.sysconf("SC_CLK_TCK") or 100
    used = max(0, info.get("MemTotal", 0) - info.get("MemFree", 0))
    return protocol.ContainerStats(
        timestamp=time.time(),
        cpu_usage_ns=_busy_ticks(stat) * 1_000_000_000 // ticks_per_second,
        memory_working_set=max(0, used - info.get("Inactive(file)", 0)),
        memory_usage=used,
    )
