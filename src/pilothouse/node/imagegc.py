"""Image garbage collection, as upstream's kubelet does it (``images/image_gc_manager.go``).

When the image filesystem is ``imageGCHighThresholdPercent`` (85) % full or more, the
least recently used images are removed until it is back to
``imageGCLowThresholdPercent`` (80) %. An image any container uses — running or
exited, as the runtime lists them — is never removed; nor one that came to the machine
less than ``imageMinimumGCAge`` (2 min) ago, since a pod is probably about to use it.
Images unused for longer than ``imageMaximumGCAge`` (off by default) go whatever the
usage. Unpacked layers no remaining image or container uses go with their images.

When not enough can be freed the node gets a ``FreeDiskSpaceFailed`` event (upstream's
message), and when collection fails twice in a row an ``ImageGCFailed`` one.

Deviation, on purpose: upstream looks every 5 minutes. Here the filesystem is looked at
(one ``statvfs``) every ``check_interval`` (10 s, the eviction manager's pace) and a
collection runs when it is over the threshold, or every 5 minutes for the maximum age
— on a machine fed by ``pilothouse images import`` the disk fills between two of
upstream's passes.

Concurrency: one task (:meth:`run`) on the agent's loop; the eviction manager may call
:meth:`delete_unused_images` in between, so collections are serialised by a lock.
Disk walks (layer sizes, once per layer) run in threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilothouse.client import events
from pilothouse.node.runtime import fsstats, protocol
from pilothouse.node.runtime.images import store as imagestore

log = logging.getLogger(__name__)

Obj = dict[str, Any]
IMAGE_GC_PERIOD = 300.0  # upstream's ImageGCPeriod


class ImageGCError(Exception):
    """Collection could not free what it had to; the message is upstream's."""


@dataclass(frozen=True)
class Policy:
    high_threshold_percent: int = 85
    low_threshold_percent: int = 80
    min_age: float = 120.0
    max_age: float = 0.0  # 0: no maximum


@dataclass
class _Record:
    first_detected: float
    last_used: float = 0.0  # 0: never used by a container since the agent started


class ImageGCManager:
    """Frees the image filesystem of images nothing uses, least recently used first."""

    def __init__(
        self,
        *,
        images: imagestore.ImageStore,
        runtime: protocol.Runtime,
        policy: Policy,
        recorder: events.EventRecorder,
        node_ref: Obj,
        clock: Callable[[], float] = time.time,
        check_interval: float = 10.0,
        fs_stats: Callable[[Path], fsstats.FsStats] = fsstats.fs_stats,
    ) -> None:
        self.images = images
        self.runtime = runtime
        self.policy = policy
        self.recorder = recorder
        self.node_ref = node_ref
        self.clock = clock
        self.check_interval = check_interval
        self.fs_stats = fs_stats
        self.records: dict[str, _Record] = {}
        self._lock = asyncio.Lock()
        self._last_full_pass = 0.0
        self.removed: list[str] = []  # ids removed, oldest first (for tests and logs)

    # --- what is there and what is in use ------------------------------------------------------
    async def _detect(self, now: float) -> list[protocol.Image]:
        """Every image, with first-seen and last-used times brought up to date."""
        images = self.images.list()
        in_use = {c.image_id for c in await self.runtime.list_containers()}
        current = {i.id for i in images}
        for image in images:
            record = self.records.get(image.id)
            if record is None:
                # When the image came to this machine, if the store knows; else now.
                first = image.pulled_at if 0 < image.pulled_at <= now else now
                record = self.records[image.id] = _Record(first_detected=first)
            if image.id in in_use:
                record.last_used = now
        for gone in set(self.records) - current:
            del self.records[gone]
        return images

    def note_used(self, image_id: str) -> None:
        """A container was just made from this image (it counts as used from now)."""
        record = self.records.get(image_id)
        if record is not None:
            record.last_used = self.clock()

    # --- collection ------------------------------------------------------------------------
    async def garbage_collect(self) -> None:
        """One pass: maximum age, then the thresholds. ImageGCError when it falls short."""
        async with self._lock:
            now = self.clock()
            images = await self._detect(now)
            if self.policy.max_age > 0:
                await self._remove_old(images, now)
                images = await self._detect(now)
            stats = await asyncio.to_thread(self.fs_stats, self.images.root)
            if stats.capacity <= 0:
                raise ImageGCError(
                    f"invalid capacity {stats.capacity} on image filesystem {self.images.root}"
                )
            usage = 100 - int(stats.available * 100 / stats.capacity)
            if usage < self.policy.high_threshold_percent:
                return
            to_free = (
                stats.capacity * (100 - self.policy.low_threshold_percent) // 100 - stats.available
            )
            log.info(
                "Disk usage on image filesystem is over the high threshold, trying to free bytes "
                "down to the low threshold (usage %d%%, high %d%%, to free %d bytes, low %d%%)",
                usage,
                self.policy.high_threshold_percent,
                to_free,
                self.policy.low_threshold_percent,
            )
            freed = await self._free_space(to_free, now, images)
            if freed < to_free:
                message = (
                    "Failed to garbage collect required amount of images. Attempted to free "
                    f"{to_free} bytes, but only found {freed} bytes eligible to free."
                )
                self.recorder.event(self.node_ref, events.WARNING, "FreeDiskSpaceFailed", message)
                raise ImageGCError(message)

    async def delete_unused_images(self) -> int:
        """Every image nothing uses, whatever the thresholds (the eviction manager's reclaim)."""
        async with self._lock:
            now = self.clock()
            images = await self._detect(now)
            return await self._free_space(1 << 62, now, images)

    async def _remove_old(self, images: list[protocol.Image], now: float) -> None:
        for image in images:
            record = self.records[image.id]
            if record.last_used >= now:
                continue  # in use
            since = record.last_used or record.first_detected
            if now - since > self.policy.max_age:
                log.info(
                    "Removing image %s to free bytes: unused for %.0fs, longer than "
                    "imageMaximumGCAge %.0fs",
                    image.id,
                    now - since,
                    self.policy.max_age,
                )
                await self._remove(image)

    async def _free_space(self, to_free: int, now: float, images: list[protocol.Image]) -> int:
        """Remove unused images, least recently used first, until ``to_free`` bytes went."""
        candidates = sorted(
            images,
            key=lambda i: (self.records[i.id].last_used, self.records[i.id].first_detected),
        )
        freed = 0
        errors: list[str] = []
        for image in candidates:
            record = self.records[image.id]
            if record.last_used >= now:
                continue  # used by a container now (a newer lastUsed than this pass)
            if now - record.first_detected < self.policy.min_age:
                continue  # just arrived: probably about to be used
            size = await self._unique_bytes(image, images)
            log.info("Removing image %s to free %d bytes", image.id, size)
            try:
                await self._remove(image)
            except (OSError, protocol.RuntimeError_) as exc:
                errors.append(str(exc))
                continue
            images = [i for i in images if i.id != image.id]
            freed += size
            if freed >= to_free:
                break
        if errors:
            raise ImageGCError(
                f"wanted to free {to_free} bytes, but freed {freed} bytes space with errors in "
                f"image deletion: [{', '.join(errors)}]"
            )
        return freed

    async def _unique_bytes(self, image: protocol.Image, images: list[protocol.Image]) -> int:
        """What removing ``image`` gives back: its layers no other image shares."""
        shared = {p for other in images if other.id != image.id for p in other.layers}
        own = [p for p in image.layers if p not in shared]
        layers = self.images.layers
        return sum(
            [
                await asyncio.to_thread(layers.disk_usage, "sha256:" + p.name)
                for p in own
                if p.is_dir()
            ]
        )

    async def _remove(self, image: protocol.Image) -> None:
        await self.images.remove(image.id)
        self.records.pop(image.id, None)
        self.removed.append(image.id)

    # --- the loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Collect whenever the image filesystem is over the threshold; every 5 min anyway."""
        failed_before = False
        while True:
            await asyncio.sleep(self.check_interval)
            now = self.clock()
            try:
                due = now - self._last_full_pass >= IMAGE_GC_PERIOD
                if due or await self._over_threshold():
                    self._last_full_pass = now
                    await self.garbage_collect()
            except (ImageGCError, OSError, protocol.RuntimeError_) as exc:
                if failed_before:
                    log.error("Image garbage collection failed multiple times in a row: %s", exc)
                    self.recorder.event(self.node_ref, events.WARNING, "ImageGCFailed", str(exc))
                else:
                    log.warning("Image garbage collection failed once: %s", exc)
                failed_before = True
            else:
                failed_before = False

    async def _over_threshold(self) -> bool:
        stats = await asyncio.to_thread(self.fs_stats, self.images.root)
        if stats.capacity <= 0:
            return False
        usage = 100 - int(stats.available * 100 / stats.capacity)
        return usage >= self.policy.high_threshold_percent
