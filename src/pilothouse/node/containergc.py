"""Container garbage collection, as upstream's kubelet keeps dead containers
(``kuberuntime/kuberuntime_gc.go`` with its default policy).

Every minute: of each pod's containers of one name, the newest exited one stays (it is
what ``kubectl logs --previous`` reads; ``MaxPerPodContainer`` 1) and older exited
ones go, with their log files; containers whose sandbox is gone (their pod was
deleted) go entirely; log directories of pods that no longer exist go. Running and
just-created containers are never touched. Under disk pressure the eviction manager
asks for :meth:`collect` with ``terminated_pods`` too: then finished pods (Succeeded or
Failed) lose their exited containers as well, as upstream's ``DeleteAllUnusedContainers``.

Removing a container removes its log file and the file's rotated predecessors, as
upstream's ``removeContainerLog``.

Concurrency: one task on the agent's loop; the pod workers also remove containers (a
restart prunes the older attempts through :func:`remove_container`), and removing one
twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pilothouse.node.runtime import protocol

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CONTAINER_GC_PERIOD = 60.0  # upstream's ContainerGCPeriod
MAX_PER_POD_CONTAINER = 1


async def remove_container(runtime: protocol.Runtime, status: protocol.ContainerStatus) -> None:
    """Remove a container and its logs (the file and its rotated predecessors)."""
    await runtime.remove_container(status.id)
    if status.log_path:
        await asyncio.to_thread(_remove_log, Path(status.log_path))


def _remove_log(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    for rotated in path.parent.glob(path.name + ".*"):
        rotated.unlink(missing_ok=True)


class ContainerGC:
    """Removes exited containers beyond each container's latest, and what deleted pods left."""

    def __init__(
        self,
        *,
        runtime: protocol.Runtime,
        sandboxes: Mapping[str, protocol.Sandbox],
        pods: Callable[[], list[Obj]],
        log_dir: Path,
        min_age: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runtime = runtime
        self.sandboxes = sandboxes  # pod uid → sandbox (the syncer's)
        self.pods = pods  # this node's pods, from the informer
        self.log_dir = log_dir
        self.min_age = min_age  # upstream's MinAge (--minimum-container-ttl-duration, 0)
        self.clock = clock
        self._lock = asyncio.Lock()
        self.removed = 0

    async def collect(self, *, terminated_pods: bool = False) -> int:
        """One pass; how many containers it removed."""
        async with self._lock:
            now = self.clock()
            live_sandboxes = {s.id: uid for uid, s in self.sandboxes.items()}
            finished = set()
            if terminated_pods:
                finished = {
                    p["metadata"]["uid"]
                    for p in self.pods()
                    if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                }
            groups: dict[tuple[str, str], list[protocol.ContainerStatus]] = {}
            for status in await self.runtime.list_containers():
                groups.setdefault((status.sandbox_id, status.name), []).append(status)
            removed = 0
            for (sandbox_id, _), statuses in groups.items():
                statuses.sort(key=lambda s: (s.attempt, s.created_at), reverse=True)
                uid = live_sandboxes.get(sandbox_id)
                keep = 0 if uid is None or uid in finished else MAX_PER_POD_CONTAINER
                evictable = [
                    s
                    for s in statuses
                    if s.state == "exited" and now - (s.created_at or now) >= self.min_age
                ]
                # The newest exited ones stay, unless a newer attempt runs (then the newest
                # exited is the "previous" one and still stays: keep counts exited only).
                for status in evictable[keep:]:
                    try:
                        await remove_container(self.runtime, status)
                    except protocol.RuntimeError_ as exc:
                        log.warning("removing exited container %s: %s", status.id[:12], exc.message)
                        continue
                    removed += 1
            await asyncio.to_thread(self._pod_log_dirs)
            self.removed += removed
            return removed

    def _pod_log_dirs(self) -> None:
        """Log directories (``<ns>_<name>_<uid>``) of pods that are gone from this node."""
        live = {p["metadata"]["uid"] for p in self.pods()} | set(self.sandboxes)
        try:
            entries = list(os.scandir(self.log_dir))
        except FileNotFoundError:
            return
        for entry in entries:
            uid = entry.name.rpartition("_")[2]
            if entry.is_dir(follow_symlinks=False) and uid and uid not in live:
                shutil.rmtree(entry.path, ignore_errors=True)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CONTAINER_GC_PERIOD)
            try:
                await self.collect()
            except protocol.RuntimeError_ as exc:
                log.warning("container garbage collection failed: %s", exc.message)
