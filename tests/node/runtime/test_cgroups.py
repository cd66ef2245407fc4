"""cgroup layout detection and pod cgroups on a directory tree standing in for cgroupfs."""

from __future__ import annotations

from pathlib import Path

from pilothouse.node.runtime import cgroups

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_detect_hybrid() -> None:
    layout = cgroups.detect(HYBRID)
    assert layout.mode == "hybrid"
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert layout.v1["name=systemd"] == Path("/sys/fs/cgroup/systemd")
    assert layout.unified == Path("/sys/fs/cgroup/unified")
    # one entry per mount, the shared cpu,cpuacct hierarchy once, unified last
    assert layout.hierarchies[-1] == Path("/sys/fs/cgroup/unified")
    assert len(layout.hierarchies) == 6
    assert layout.dirs("/pilothouse/pod1")[0] == Path("/sys/fs/cgroup/cpu,cpuacct/pilothouse/pod1")
    assert layout.controller_dir("memory", "/a") == Path("/sys/fs/cgroup/memory/a")


def test_detect_v2() -> None:
    layout = cgroups.detect(V2)
    assert layout.mode == "v2" and layout.v1 == {} and layout.unified == Path("/sys/fs/cgroup")
    assert layout.memory_is_v2
    assert cgroups.conflicting_v2_controllers(layout) == []


def test_conflicting_controllers_only_matter_on_hybrid() -> None:
    layout = cgroups.Layout(
        mode="hybrid", unified=Path("/u"), v2_controllers=frozenset({"hugetlb"})
    )
    assert cgroups.conflicting_v2_controllers(layout) == ["hugetlb"]


def test_create_and_limits_v1(tmp_path: Path) -> None:
    cpu, cpuset, memory = tmp_path / "cpu", tmp_path / "cpuset", tmp_path / "memory"
    for d in (cpu, cpuset, memory):
        d.mkdir()
    (cpuset / "cpuset.cpus").write_text("0-3\n")
    (cpuset / "cpuset.mems").write_text("0\n")
    layout = cgroups.Layout(mode="v1", v1={"cpu": cpu, "cpuset": cpuset, "memory": memory})
    cgroups.create(layout, "/pilothouse/burstable/podx")
    for d in (cpu, cpuset, memory):
        assert (d / "pilothouse/burstable/podx").is_dir()
    # cpuset levels inherit CPUs and memory nodes, or no task could join them
    assert (cpuset / "pilothouse/burstable/cpuset.cpus").read_text() == "0-3"
    assert (cpuset / "pilothouse/burstable/podx/cpuset.mems").read_text() == "0"
    cgroups.set_limits(
        layout, "/pilothouse/burstable/podx", cpu_shares=204, cpu_quota=50_000, memory_limit=1 << 27
    )
    pod = "pilothouse/burstable/podx"
    assert (cpu / pod / "cpu.shares").read_text() == "204"
    assert (cpu / pod / "cpu.cfs_quota_us").read_text() == "50000"
    assert (cpu / pod / "cpu.cfs_period_us").read_text() == "100000"
    assert (memory / pod / "memory.limit_in_bytes").read_text() == str(1 << 27)
    (memory / pod / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
    )
    assert cgroups.oom_kills(layout, "/" + pod) == 2
    assert cgroups.oom_kills(layout, "/gone") == 0


def test_limits_v2(tmp_path: Path) -> None:
    layout = cgroups.Layout(
        mode="v2", unified=tmp_path, v2_controllers=frozenset({"cpu", "memory", "pids"})
    )
    cgroups.create(layout, "/pilothouse/pod1")
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (tmp_path / "pilothouse" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    cgroups.set_limits(
        layout, "/pilothouse/pod1", cpu_shares=1024, cpu_quota=20_000, memory_limit=4096
    )
    pod = tmp_path / "pilothouse" / "pod1"
    assert (pod / "cpu.max").read_text() == "20000 100000"
    assert (pod / "cpu.weight").read_text() == "39"
    assert (pod / "memory.max").read_text() == "4096"
    (pod / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroups.oom_kills(layout, "/pilothouse/pod1") == 1


def test_shares_to_weight() -> None:
    assert cgroups.shares_to_weight(2) == 1
    assert cgroups.shares_to_weight(262144) == 10000
    assert cgroups.shares_to_weight(0) == 100


def test_remove_reports_nothing_left_for_missing_paths(tmp_path: Path) -> None:
    layout = cgroups.Layout(mode="v1", v1={"cpu": tmp_path})
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert cgroups.remove(layout, "/a", kill=False) == []
    assert not (tmp_path / "a").exists()
    assert cgroups.remove(layout, "/never", kill=False) == []
