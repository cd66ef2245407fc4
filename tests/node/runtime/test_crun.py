"""Real pods with crun and conmon: lifecycle, limits, logs, restarts, cleanup (root)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest

from pilothouse.node.runtime import cgroups, conmon, logs, protocol

from .conftest import RuntimeEnv
from .pods import exists, mounts, read, rules, start, wait_exited, wait_for_log

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.usefixtures("host_ready"),
]

CRI_LINE = re.compile(
    rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) [FP] "
)


async def test_memory_limit_ends_in_oomkilled(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    # tmpfs pages cannot be reclaimed (no swap): 64 MiB into /dev/shm must hit 16 MiB.
    cid = await start(
        rt, sb.id, busybox_image,
        ("dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=64"),
        memory_limit=16 << 20,
    )  # fmt: skip
    st = await wait_exited(rt, cid)
    assert st.state == "exited"
    assert st.reason == "OOMKilled", st
    assert st.exit_code == 137
    # conmon, started in the bundle, left its own OOM witness there (not in our cwd)
    assert exists(runtime_env.state_dir / "containers" / cid / "oom")
    assert not exists("oom")


async def test_resource_limits_reach_the_cgroups(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    config = runtime_env.sandbox_config(cpu_shares=512, cpu_quota=50_000, memory_limit=256 << 20)
    sb = await rt.run_pod_sandbox(config)
    cid = await start(
        rt, sb.id, busybox_image, ("sh", "-c", "while :; do :; done"),
        cpu_shares=256, cpu_quota=20_000, memory_limit=64 << 20, pids_limit=50,
    )  # fmt: skip
    layout = rt.layout
    pod_cpu = layout.controller_dir("cpu", config.cgroup_parent)
    assert pod_cpu is not None
    if layout.mode == "v2":
        assert (pod_cpu / "cpu.max").read_text().split() == ["50000", "100000"]
    else:
        assert (pod_cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (pod_cpu / "cpu.shares").read_text().strip() == "512"
        mem = layout.controller_dir("memory", config.cgroup_parent)
        assert mem is not None
        assert int((mem / "memory.limit_in_bytes").read_text()) == 256 << 20
    ctr = f"{config.cgroup_parent}/{cid}"
    cdir = layout.controller_dir("cpu", ctr)
    assert cdir is not None
    if layout.mode != "v2":
        assert (cdir / "cpu.cfs_quota_us").read_text().strip() == "20000"
        mdir = layout.controller_dir("memory", ctr)
        pdir = layout.controller_dir("pids", ctr)
        assert mdir is not None and pdir is not None
        assert int((mdir / "memory.limit_in_bytes").read_text()) == 64 << 20
        assert (pdir / "pids.max").read_text().strip() == "50"
    before = cgroups.cpu_stat(layout, ctr)
    await asyncio.sleep(1.0)
    after = cgroups.cpu_stat(layout, ctr)
    throttled = "nr_throttled"
    assert after[throttled] > before.get(throttled, 0), (before, after)


async def test_logs_are_cri_lines_and_rotation_keeps_every_line(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    log = runtime_env.log_path("talker")
    script = "i=0; while [ $i -lt 150 ]; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 0.01; done; printf tail"
    cid = await start(rt, sb.id, busybox_image, ("sh", "-c", script), log_path=log)
    assert Path(log).parent.is_dir()
    await asyncio.sleep(0.6)
    rotated = Path(log + ".1")
    os.rename(log, rotated)
    await rt.reopen_log(cid)
    assert exists(log)
    st = await wait_exited(rt, cid)
    assert (st.state, st.exit_code, st.reason) == ("exited", 0, "Completed")
    raw = read(rotated).splitlines() + read(log).splitlines()
    assert raw and all(CRI_LINE.match(line) for line in raw), raw[:3]
    assert read(log) and read(rotated)
    stdout = logs.messages(rotated, stream="stdout") + logs.messages(Path(log), stream="stdout")
    assert stdout == [f"line {i}".encode() for i in range(150)] + [b"tail"]
    stderr = logs.messages(rotated, stream="stderr") + logs.messages(Path(log), stream="stderr")
    assert stderr == [f"err {i}".encode() for i in range(150)]
    assert any(line.endswith(b" stdout P tail") for line in raw)


async def test_stop_kills_a_process_that_ignores_sigterm(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    # A shell that is PID 1 ignores a SIGTERM it has no trap for: stop only once each
    # has set its trap and said so in its log.
    stubborn = await start(
        rt,
        sb.id,
        busybox_image,
        ("sh", "-c", "trap '' TERM; echo armed; while :; do sleep 0.1; done"),
        name="stubborn",
        log_path=runtime_env.log_path("stubborn"),
    )
    polite = await start(
        rt,
        sb.id,
        busybox_image,
        ("sh", "-c", "trap 'exit 0' TERM; echo armed; while :; do sleep 0.1; done"),
        name="polite",
        log_path=runtime_env.log_path("polite"),
    )
    for name in ("stubborn", "polite"):
        await wait_for_log(Path(runtime_env.log_path(name)), b"armed")
    t0 = time.monotonic()
    await rt.stop_container(polite, timeout=5)
    assert time.monotonic() - t0 < 2
    st = await rt.container_status(polite)
    assert (st.state, st.exit_code, st.reason) == ("exited", 0, "Completed")
    t0 = time.monotonic()
    await rt.stop_container(stubborn, timeout=1)
    elapsed = time.monotonic() - t0
    assert 1 <= elapsed < 5
    st = await rt.container_status(stubborn)
    assert (st.state, st.exit_code, st.reason) == ("exited", 137, "Error")
    assert st.finished_at >= st.started_at > 0
    await rt.stop_container(stubborn, timeout=1)  # idempotent


async def test_agent_restart_readopts_containers(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    first = await runtime_env.started()
    sb = await first.run_pod_sandbox(runtime_env.sandbox_config())
    log = runtime_env.log_path("short")
    long = await start(first, sb.id, busybox_image, ("sleep", "300"), name="long")
    short = await start(
        first, sb.id, busybox_image, ("sh", "-c", "sleep 0.5; echo goodbye; exit 7"),
        name="short", log_path=log,
    )  # fmt: skip
    del first  # the agent dies: no close, no cleanup

    await asyncio.sleep(1.2)  # the short container exits while no agent is watching
    second = await runtime_env.started()
    [found] = await second.list_sandboxes()
    assert (found.id, found.ip, found.state) == (sb.id, sb.ip, "ready")
    by_id = {c.id: c for c in await second.list_containers(sb.id)}
    assert by_id[long].state == "running" and by_id[long].pid > 0
    assert (by_id[short].state, by_id[short].exit_code, by_id[short].reason) == (
        "exited",
        7,
        "Error",
    )
    assert by_id[short].finished_at > by_id[short].started_at
    assert logs.messages(Path(log)) == [b"goodbye"]
    code, out, _ = await second.exec_sync(long, ["echo", "still here"], timeout=5)
    assert (code, out) == (0, b"still here\n")
    await second.stop_container(long, timeout=0)
    assert (await second.container_status(long)).exit_code == 137
    await second.remove_pod_sandbox(sb.id)
    assert await second.list_sandboxes() == []


async def test_failed_create_leaves_nothing(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    with pytest.raises(protocol.RuntimeError_) as err:
        await rt.create_container(
            sb.id,
            protocol.ContainerConfig(name="bad", image=busybox_image, command=("/no/such/binary",)),
        )
    assert err.value.reason == "CreateContainerError"
    assert "/no/such/binary" in err.value.message
    assert await rt.list_containers() == []
    assert list((runtime_env.state_dir / "containers").iterdir()) == []
    assert not [m for m in mounts() if m.startswith(str(runtime_env.state_dir / "containers"))]


async def test_remove_releases_everything(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    config = runtime_env.sandbox_config(memory_limit=128 << 20)
    sb = await rt.run_pod_sandbox(config)
    record = rt._sb().records[sb.id]
    veth = record.host_interface
    assert veth and exists(f"/sys/class/net/{veth}")
    cid = await start(rt, sb.id, busybox_image, ("sleep", "300"))
    conmon_pid = rt._containers[cid].conmon_pid
    lease = runtime_env.state_dir / "cni" / "pilothouse" / sb.ip
    assert lease.exists()

    await rt.remove_pod_sandbox(sb.id)

    assert await rt.list_sandboxes() == [] and await rt.list_containers() == []
    mine = (str(runtime_env.state_dir), str(runtime_env.run_dir), sb.netns_path)
    assert not [m for m in mounts() if m.startswith(mine)]
    assert not exists(sb.netns_path)
    assert not exists(f"/sys/class/net/{veth}")
    assert not lease.exists()
    assert cgroups.exists(rt.layout, config.cgroup_parent) == []
    assert conmon.process_start_time(conmon_pid) is None  # gone (a zombie at most)
    assert list((runtime_env.run_dir / "crun").iterdir()) == []
    assert list((runtime_env.state_dir / "containers").iterdir()) == []
    assert list((runtime_env.state_dir / "sandboxes").iterdir()) == []
    assert list((runtime_env.state_dir / "exits").iterdir()) == []
    ruleset = await rules()
    assert sb.ip not in ruleset and sb.id[:12] not in ruleset
    await rt.network.teardown(remove_bridge=True)
    assert rt.network.nft_table not in await rules()


async def test_failed_sandbox_leaves_nothing(runtime_env: RuntimeEnv, tmp_path: Path) -> None:
    rt = await runtime_env.started()
    rt.network.plugin_dirs = (tmp_path / "no-plugins",)
    config = runtime_env.sandbox_config()
    with pytest.raises(protocol.RuntimeError_) as err:
        await rt.run_pod_sandbox(config)
    assert err.value.reason == "CreatePodSandboxError"
    assert "containernetworking-plugins" in err.value.message
    assert await rt.list_sandboxes() == []
    assert list((runtime_env.state_dir / "sandboxes").iterdir()) == []
    assert cgroups.exists(rt.layout, config.cgroup_parent) == []
    assert not [m for m in mounts() if m.startswith(str(runtime_env.state_dir))]


async def test_created_but_never_started_is_removed(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    cid = await rt.create_container(
        sb.id, protocol.ContainerConfig(name="idle", image=busybox_image, command=("sleep", "300"))
    )
    assert (await rt.container_status(cid)).state == "created"
    with pytest.raises(protocol.RuntimeError_):
        await rt.create_container(
            sb.id, protocol.ContainerConfig(name="idle", image=busybox_image, command=("true",))
        )
    await rt.remove_container(cid)
    assert await rt.list_containers() == []
    assert list((runtime_env.run_dir / "crun").iterdir()) == []


async def test_replacement_sandbox_keeps_the_pod_cgroup(
    runtime_env: RuntimeEnv, busybox_image: protocol.Image
) -> None:
    rt = await runtime_env.started()
    config = runtime_env.sandbox_config()
    old = await rt.run_pod_sandbox(config)
    await rt.stop_pod_sandbox(old.id)
    new = await rt.run_pod_sandbox(config)
    cid = await start(rt, new.id, busybox_image, ("sleep", "300"))
    await rt.remove_pod_sandbox(old.id)
    assert (await rt.container_status(cid)).state == "running"
    assert cgroups.exists(rt.layout, config.cgroup_parent)
    await rt.remove_pod_sandbox(new.id)
    assert cgroups.exists(rt.layout, config.cgroup_parent) == []


async def test_container_stats(runtime_env: RuntimeEnv, busybox_image: protocol.Image) -> None:
    rt = await runtime_env.started()
    sb = await rt.run_pod_sandbox(runtime_env.sandbox_config())
    cid = await start(
        rt, sb.id, busybox_image, ("sh", "-c", "while :; do :; done"), cpu_quota=10_000
    )
    await asyncio.sleep(0.5)
    stats = await rt.container_stats(cid)
    assert stats.cpu_usage_ns > 10_000_000
    assert stats.memory_usage > 0 and 0 < stats.memory_working_set <= stats.memory_usage
    assert stats.cpu_throttled_periods > 0
