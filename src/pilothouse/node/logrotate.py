"""Container log rotation by size (upstream's containerLogMaxSize / MaxFiles).

Every ``interval`` seconds the rotator looks at each running container's log
file; one over ``max_size`` is renamed to ``<name>.<timestamp>`` and the
runtime told to reopen (conmon starts a new file; no line is lost, since
conmon writes to whatever file it has open until it reopens). The oldest
rotated files beyond ``max_files - 1`` are deleted. The log reader reads
rotated files before the current one, so ``kubectl logs`` still sees them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from pilothouse.node.runtime import protocol

log = logging.getLogger(__name__)

MAX_SIZE = 10 * 1024 * 1024
MAX_FILES = 5


class LogRotator:
    def __init__(
        self,
        runtime: protocol.Runtime,
        *,
        max_size: int = MAX_SIZE,
        max_files: int = MAX_FILES,
        interval: float = 10.0,
    ) -> None:
        self.runtime = runtime
        self.max_size = max_size
        self.max_files = max_files
        self.interval = interval
        self.rotations = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.rotate_once()
            except protocol.RuntimeError_ as exc:
                log.debug("log rotation: %s", exc.message)

    async def rotate_once(self) -> None:
        for status in await self.runtime.list_containers():
            if status.state != "running" or not status.log_path:
                continue
            if not _rename_if_over(Path(status.log_path), self.max_size):
                continue
            await self.runtime.reopen_log(status.id)
            self.rotations += 1
            _prune(Path(status.log_path), self.max_files - 1)


def _rename_if_over(path: Path, max_size: int) -> bool:
    """Rename ``path`` aside when it is over ``max_size``; True if it was.

    Synchronous on purpose: a stat and a rename in one directory are
    metadata operations that do not wait on the disk the way reads do.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= max_size:
        return False
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}.{time.time_ns() % 10**9:09d}"
    path.rename(path.with_name(f"{path.name}.{stamp}"))
    return True


def _prune(path: Path, keep: int) -> None:
    """Delete the oldest rotated siblings of ``path`` beyond ``keep``."""
    old = sorted(path.parent.glob(path.name + ".*"))
    for stale in old[: max(0, len(old) - keep)]:
        stale.unlink(missing_ok=True)
