"""What keeps a node healthy for months: image and container garbage collection, container
log limits, and node-pressure eviction — put together from the agent's configuration.

:class:`Housekeeping` builds the four from a :class:`~pilothouse.node.kubeletconfig.KubeletConfig`
and the agent's parts, connects the eviction manager to the pod workers (it evicts
through them and decides their admission) and to the node's conditions, and runs each
as a supervised child of the agent: ``image-gc``, ``container-gc``, ``log-rotation``,
``eviction-manager``. They share the agent's event loop; each serialises its own work.
"""

from __future__ import annotations

import decimal
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilothouse import supervisor
from pilothouse.api import quantity
from pilothouse.client import events
from pilothouse.node import containergc, imagegc, logrotate
from pilothouse.node.eviction import manager as evictionmod
from pilothouse.node.eviction import summary as summarymod
from pilothouse.node.kubeletconfig import KubeletConfig
from pilothouse.node.pod_workers import PodWorkers
from pilothouse.node.podsync import PodSyncer
from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import store as imagestore

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def node_ref(name: str) -> Obj:
    """The object node events are about (upstream's nodeRef: the name doubles as uid)."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": name}}


def allocatable(capacity: dict[str, str], config: KubeletConfig) -> dict[str, str]:
    """Upstream's node allocatable: capacity less kube- and system-reserved, less the hard
    eviction thresholds of memory and of the node filesystem."""
    out = dict(capacity)
    for resource in ("cpu", "memory", "ephemeral-storage", "pid"):
        if resource not in out:
            continue
        total = quantity.parse_quantity(out[resource])
        for reserved in (config.kube_reserved, config.system_reserved):
            if resource in reserved:
                total -= quantity.parse_quantity(reserved[resource])
        signal = {"memory": "memory.available", "ephemeral-storage": "nodefs.available"}.get(
            resource
        )
        for t in config.thresholds:
            if t.hard and t.signal == signal:
                cap = quantity.to_int(quantity.parse_quantity(capacity[resource]))
                total -= t.value(cap)
        total = max(total, decimal.Decimal(0))
        fmt = quantity.DECIMAL_SI if resource == "cpu" else quantity.BINARY_SI
        out[resource] = quantity.format_quantity(total, fmt)
    return out


class Housekeeping:
    def __init__(
        self,
        *,
        config: KubeletConfig,
        runtime: protocol.Runtime,
        syncer: PodSyncer,
        workers: PodWorkers,
        pods: Callable[[], list[Obj]],
        recorder: events.EventRecorder,
        node_name: str,
        data_dir: Path,
        on_conditions: Callable[[list[str]], None],
    ) -> None:
        self.config = config
        ref = node_ref(node_name)
        self.image_gc: imagegc.ImageGCManager | None = None
        images = runtime.images
        if isinstance(images, imagestore.ImageStore):
            self.image_gc = imagegc.ImageGCManager(
                images=images,
                runtime=runtime,
                policy=imagegc.Policy(
                    high_threshold_percent=config.image_gc_high_threshold_percent,
                    low_threshold_percent=config.image_gc_low_threshold_percent,
                    min_age=config.image_minimum_gc_age,
                    max_age=config.image_maximum_gc_age,
                ),
                recorder=recorder,
                node_ref=ref,
            )
            syncer.image_used = self.image_gc.note_used
        self.container_gc = containergc.ContainerGC(
            runtime=runtime,
            sandboxes=syncer.sandboxes,
            pods=pods,
            log_dir=data_dir / "logs",
        )
        self.log_rotator = logrotate.LogRotator(
            runtime,
            max_size=config.container_log_max_size,
            max_files=config.container_log_max_files,
            interval=config.container_log_monitor_interval,
        )
        self.summary = summarymod.SummaryProvider(
            runtime=runtime,
            sandboxes=syncer.sandboxes,
            pods=pods,
            nodefs_path=data_dir,
            imagefs_path=images.root if isinstance(images, imagestore.ImageStore) else data_dir,
            pods_dir=data_dir / "pods",
            log_dir=data_dir / "logs",
        )
        self.eviction = evictionmod.EvictionManager(
            thresholds=config.thresholds,
            summary=self.summary.get,
            pods=pods,
            evict=workers.evict,
            cleaned_up=workers.cleaned_up,
            recorder=recorder,
            node_ref=ref,
            delete_unused_containers=self._delete_unused_containers,
            delete_unused_images=self._delete_unused_images,
            pressure_transition_period=config.eviction_pressure_transition_period,
            max_pod_grace_period=config.eviction_max_pod_grace_period,
            local_storage_isolation=config.local_storage_capacity_isolation,
            on_conditions=on_conditions,
        )
        syncer.admit = self.eviction.admit

    async def _delete_unused_containers(self) -> int:
        return await self.container_gc.collect(terminated_pods=True)

    async def _delete_unused_images(self) -> int:
        if self.image_gc is None:
            return 0
        return await self.image_gc.delete_unused_images()

    def start(self, tasks: supervisor.Supervisor) -> list[str]:
        """Start each as a child of ``tasks``; their names (for stopping them in order)."""
        loops = {
            "image-gc": self.image_gc.run if self.image_gc is not None else None,
            "container-gc": self.container_gc.run,
            "log-rotation": self.log_rotator.run,
            "eviction-manager": self.eviction.run,
        }
        started = []
        for name, run in loops.items():
            if run is not None:
                tasks.start(name, run)
                started.append(name)
        return started
