"""Reading resource use from cgroup files (v1, hybrid, v2) and /proc, on fake trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilothouse.node.runtime import cgroups, stats

POD = "/pilothouse/burstable/pod1234/c1"
MIB = 1024 * 1024


def _write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def _hybrid(tmp_path: Path) -> cgroups.Layout:
    """This host's layout: v1 controllers (cpu and cpuacct share a mount), cgroup2 unified."""
    cpu, memory = tmp_path / "cpu,cpuacct", tmp_path / "memory"
    return cgroups.Layout(
        mode="hybrid",
        v1={"cpu": cpu, "cpuacct": cpu, "memory": memory},
        unified=tmp_path / "unified",
    )


def test_v1_cpu_time_throttling_and_working_set(tmp_path: Path) -> None:
    layout = _hybrid(tmp_path)
    rel = POD.strip("/")
    _write(
        tmp_path / "cpu,cpuacct" / rel,
        {
            "cpuacct.usage": "123456789\n",
            "cpu.stat": "nr_periods 40\nnr_throttled 3\nthrottled_time 5000\n",
        },
    )
    _write(
        tmp_path / "memory" / rel,
        {
            "memory.usage_in_bytes": f"{100 * MIB}\n",
            # inactive_file is this cgroup's own; total_inactive_file includes children.
            "memory.stat": f"cache 1\ninactive_file {MIB}\ntotal_inactive_file {4 * MIB}\n",
        },
    )
    got = stats.read_cgroup_stats(layout, POD)
    assert got.cpu_usage_ns == 123456789
    assert got.cpu_throttled_periods == 3
    assert got.memory_usage == 100 * MIB
    assert got.memory_working_set == 96 * MIB
    assert got.timestamp > 0


def test_v2_cpu_stat_usage_and_inactive_file(tmp_path: Path) -> None:
    layout = cgroups.Layout(
        mode="v2", unified=tmp_path, v2_controllers=frozenset({"cpu", "memory", "pids"})
    )
    _write(
        tmp_path / POD.strip("/"),
        {
            "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n"
            "nr_periods 9\nnr_throttled 7\nthrottled_usec 10\n",
            "memory.current": f"{50 * MIB}\n",
            "memory.stat": f"anon {40 * MIB}\nfile {10 * MIB}\ninactive_file {8 * MIB}\n",
        },
    )
    got = stats.read_cgroup_stats(layout, POD)
    assert got.cpu_usage_ns == 2_500_000
    assert got.cpu_throttled_periods == 7
    assert got.memory_usage == 50 * MIB
    assert got.memory_working_set == 42 * MIB


def test_working_set_never_goes_negative(tmp_path: Path) -> None:
    layout = cgroups.Layout(mode="v2", unified=tmp_path, v2_controllers=frozenset({"memory"}))
    _write(
        tmp_path / "c",
        {"memory.current": "4096\n", "memory.stat": "inactive_file 8192\n"},
    )
    assert stats.read_cgroup_stats(layout, "/c").memory_working_set == 0


def test_a_cgroup_that_is_gone_reads_as_zeros(tmp_path: Path) -> None:
    got = stats.read_cgroup_stats(_hybrid(tmp_path), "/pilothouse/gone")
    assert (got.cpu_usage_ns, got.memory_usage, got.memory_working_set) == (0, 0, 0)


def test_node_stats_from_proc(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text(
        "cpu  100 20 30 1000 50 5 5 2 40 0\ncpu0 50 10 15 500 25 2 3 1 20 0\nintr 1 2 3\n"
    )
    (tmp_path / "meminfo").write_text(
        "MemTotal:        8000000 kB\nMemFree:         1000000 kB\n"
        "MemAvailable:    5000000 kB\nInactive(file):  2000000 kB\nHugePages_Total:       0\n"
    )
    got = stats.read_node_stats(tmp_path)
    busy_ticks = 100 + 20 + 30 + 5 + 5 + 2  # user nice system irq softirq steal
    assert got.cpu_usage_ns == busy_ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert got.memory_usage == 7000000 * 1024
    assert got.memory_working_set == 5000000 * 1024


def test_node_stats_of_this_machine_are_plausible() -> None:
    got = stats.read_node_stats()
    assert got.cpu_usage_ns > 0
    assert 0 < got.memory_working_set <= got.memory_usage


def test_node_stats_without_proc_are_zero(tmp_path: Path) -> None:
    got = stats.read_node_stats(tmp_path / "missing")
    assert (got.cpu_usage_ns, got.memory_usage, got.memory_working_set) == (0, 0, 0)


def test_the_root_cgroup_of_this_host_reads_as_busy() -> None:
    """Real kernel files: on v1 and hybrid hosts the root cgroup accounts everything."""
    layout = cgroups.detect()
    if "memory" not in layout.v1 or "cpuacct" not in layout.v1:
        pytest.skip("v2 has no memory.current in the root cgroup")
    got = stats.read_cgroup_stats(layout, "/")
    assert got.cpu_usage_ns > 0
    assert 0 < got.memory_working_set <= got.memory_usage
