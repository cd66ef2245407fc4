"""What the eviction manager looks at: the node's memory, filesystems and PIDs, and each
pod's use of memory and local storage — the fields of upstream's stats Summary that
eviction reads.

:class:`SummaryProvider` gathers one :class:`Summary`: ``/proc`` for memory and PIDs,
``statvfs`` for the node filesystem (the agent's data directory) and the image
filesystem (the image store; the same filesystem unless mounted apart), the runtime for
containers' working sets and writable layers, and directory walks for logs and emptyDir
volumes. The walks run in threads; nothing here writes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.node.runtime import fsstats, protocol, stats

Obj = dict[str, Any]


@dataclass(frozen=True)
class ContainerUsage:
    name: str
    memory_working_set: int = 0
    rootfs_bytes: int = 0  # the writable layer
    rootfs_inodes: int = 0
    logs_bytes: int = 0
    logs_inodes: int = 0


@dataclass(frozen=True)
class PodUsage:
    uid: str
    containers: tuple[ContainerUsage, ...] = ()
    volumes: Mapping[str, fsstats.Usage] = field(default_factory=dict)  # local (emptyDir) ones

    @property
    def memory_working_set(self) -> int:
        return sum(c.memory_working_set for c in self.containers)

    def disk(self, *, rootfs: bool = True, logs: bool = True, volumes: bool = True) -> int:
        out = 0
        for c in self.containers:
            out += (c.rootfs_bytes if rootfs else 0) + (c.logs_bytes if logs else 0)
        if volumes:
            out += sum(v.bytes for v in self.volumes.values())
        return out

    def inodes(self, *, rootfs: bool = True, logs: bool = True, volumes: bool = True) -> int:
        out = 0
        for c in self.containers:
            out += (c.rootfs_inodes if rootfs else 0) + (c.logs_inodes if logs else 0)
        if volumes:
            out += sum(v.inodes for v in self.volumes.values())
        return out


@dataclass(frozen=True)
class Summary:
    time: float
    memory_capacity: int
    memory_working_set: int
    nodefs: fsstats.FsStats
    imagefs: fsstats.FsStats
    pid_max: int
    processes: int
    pods: Mapping[str, PodUsage] = field(default_factory=dict)

    @property
    def dedicated_imagefs(self) -> bool:
        return self.imagefs.device != self.nodefs.device


def read_pids(proc: Path = Path("/proc")) -> tuple[int, int]:
    """(the most PIDs the kernel hands out, how many tasks exist now)."""
    try:
        pid_max = int((proc / "sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 32768
    try:
        threads_max = int((proc / "sys/kernel/threads-max").read_text())
        pid_max = min(pid_max, threads_max)
    except (OSError, ValueError):
        pass
    try:
        # The fourth field of loadavg is "running/total" scheduling entities.
        total = int((proc / "loadavg").read_text().split()[3].partition("/")[2])
    except (OSError, ValueError, IndexError):
        total = 0
    return pid_max, total


def _memory_capacity(proc: Path = Path("/proc")) -> int:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _log_usage(directory: Path) -> fsstats.Usage:
    """The container's log files (every attempt, rotated ones too)."""
    total = inodes = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return fsstats.Usage(0, 0)
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        total += st.st_blocks * 512
        inodes += 1
    return fsstats.Usage(total, inodes)


def local_volumes(pod: Obj) -> list[str]:
    """Volumes on the node's disk that count as the pod's ephemeral storage: disk-backed
    emptyDirs (memory-backed ones are tmpfs, counted as memory)."""
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        empty = vol.get("emptyDir")
        if empty is not None and (empty or {}).get("medium") != "Memory":
            out.append(str(vol["name"]))
    return out


class SummaryProvider:
    """Gathers a :class:`Summary` for the eviction manager."""

    def __init__(
        self,
        *,
        runtime: protocol.Runtime,
        sandboxes: Mapping[str, protocol.Sandbox],
        pods: Callable[[], list[Obj]],
        nodefs_path: Path,
        imagefs_path: Path,
        pods_dir: Path,
        log_dir: Path,
    ) -> None:
        self.runtime = runtime
        self.sandboxes = sandboxes
        self.pods = pods
        self.nodefs_path = nodefs_path
        self.imagefs_path = imagefs_path
        self.pods_dir = pods_dir
        self.log_dir = log_dir

    async def get(self) -> Summary:
        node = await asyncio.to_thread(self._node)
        by_uid = {p["metadata"]["uid"]: p for p in self.pods()}
        sandbox_uid = {s.id: uid for uid, s in self.sandboxes.items()}
        containers: dict[str, list[protocol.ContainerStatus]] = {}
        for status in await self.runtime.list_containers():
            uid = sandbox_uid.get(status.sandbox_id)
            if uid is not None and status.state in ("running", "created"):
                containers.setdefault(uid, []).append(status)
        pods: dict[str, PodUsage] = {}
        for uid, pod in by_uid.items():
            if uid not in self.sandboxes:
                continue
            pods[uid] = await self._pod(pod, containers.get(uid, []))
        return Summary(pods=pods, **node)

    def _node(self) -> dict[str, Any]:
        node_stats = stats.read_node_stats()
        pid_max, processes = read_pids()
        return {
            "time": time.time(),
            "memory_capacity": _memory_capacity(),
            "memory_working_set": node_stats.memory_working_set,
            "nodefs": fsstats.fs_stats(self.nodefs_path),
            "imagefs": fsstats.fs_stats(self.imagefs_path),
            "pid_max": pid_max,
            "processes": processes,
        }

    async def _pod(self, pod: Obj, statuses: list[protocol.ContainerStatus]) -> PodUsage:
        md = pod["metadata"]
        uid = md["uid"]
        pod_logs = self.log_dir / f"{md.get('namespace')}_{md['name']}_{uid}"
        out: list[ContainerUsage] = []
        for status in statuses:
            try:
                memory = (await self.runtime.container_stats(status.id)).memory_working_set
                rootfs = await self.runtime.container_fs_usage(status.id)
            except (protocol.RuntimeError_, OSError):
                continue  # it went away between listing and reading
            logs = await asyncio.to_thread(_log_usage, pod_logs / status.name)
            out.append(
                ContainerUsage(
                    name=status.name,
                    memory_working_set=memory,
                    rootfs_bytes=rootfs[0],
                    rootfs_inodes=rootfs[1],
                    logs_bytes=logs.bytes,
                    logs_inodes=logs.inodes,
                )
            )
        volumes = {}
        base = self.pods_dir / uid / "volumes"
        for name in local_volumes(pod):
            volumes[name] = await asyncio.to_thread(fsstats.disk_usage, base / name)
        return PodUsage(uid=uid, containers=tuple(out), volumes=volumes)
