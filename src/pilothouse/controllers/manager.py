"""The controller manager: builds the controllers, shares informers, elects a leader.

Every controller gets a :class:`Context` with the shared client, the shared
informer factory (one watch per resource for all controllers), an event
recorder and the clock. The list of controllers is explicit. With
``leader_elect`` (several servers on one etcd), only the holder of the
``pilothouse-controller-manager`` Lease runs them; a single SQLite server
skips the election.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pilothouse.api import resources
from pilothouse.client import events, informer, leaderelection, rest
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock
from pilothouse.controllers import base

log = logging.getLogger(__name__)

LEASE_NAME = "pilothouse-controller-manager"


@dataclass
class Context:
    client: rest.Client
    informers: informer.InformerFactory
    clock: Clock = DEFAULT_CLOCK
    registry: resources.Registry = resources.DEFAULT
    _recorders: dict[str, events.EventRecorder] = field(default_factory=dict)

    def resource(self, group: str, version: str, plural: str) -> resources.Resource:
        r = self.registry.by_path(group, version, plural)
        if r is None:
            raise KeyError(f"{group}/{version}/{plural}")
        return r

    def recorder(self, component: str) -> events.EventRecorder:
        rec = self._recorders.get(component)
        if rec is None:
            rec = self._recorders[component] = events.EventRecorder(
                self.client, component=component, clock=self.clock
            )
            rec.start()
        return rec

    async def close(self) -> None:
        for rec in self._recorders.values():
            await rec.stop()


Factory = Callable[[Context], base.Controller]


def default_controllers() -> dict[str, Factory]:
    # Imported here: each controller module pulls in only what it needs, and
    # the list stays the one place that names them all.
    from pilothouse.controllers import (
        cronjob,
        daemonset,
        deployment,
        disruption,
        garbagecollector,
        job,
        namespace,
        nodeipam,
        nodelifecycle,
        podautoscaler,
        podgc,
        replicaset,
        statefulset,
        ttlafterfinished,
    )

    return {
        "replicaset": replicaset.ReplicaSetController,
        "deployment": deployment.DeploymentController,
        "job": job.JobController,
        "ttl-after-finished": ttlafterfinished.TTLAfterFinishedController,
        "cronjob": cronjob.CronJobController,
        "horizontalpodautoscaling": podautoscaler.HorizontalPodAutoscalerController,
        "garbagecollector": garbagecollector.GarbageCollector,
        "namespace": namespace.NamespaceController,
        "disruption": disruption.DisruptionController,
        "podgc": podgc.PodGCController,
        "nodeipam": nodeipam.NodeIPAMController,
        "nodelifecycle": nodelifecycle.NodeLifecycleController,
        "statefulset": statefulset.StatefulSetController,
        "daemonset": daemonset.DaemonSetController,
    }


class ControllerManager:
    def __init__(
        self,
        client: rest.Client,
        *,
        enabled: list[str] | None = None,
        leader_elect: bool = False,
        clock: Clock = DEFAULT_CLOCK,
        factories: dict[str, Factory] | None = None,
    ) -> None:
        self.client = client
        self.factories = factories or default_controllers()
        unknown = set(enabled or []) - set(self.factories)
        if unknown:
            raise ValueError(
                f"unknown controllers: {', '.join(sorted(unknown))}; known: {', '.join(self.factories)}"
            )
        self.enabled = enabled or list(self.factories)
        self.leader_elect = leader_elect
        self.clock = clock
        self.controllers: dict[str, base.Controller] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Run until cancelled."""
        if self.leader_elect:
            elector = leaderelection.LeaderElector(self.client, name=LEASE_NAME, clock=self.clock)
            while True:
                await elector.run(self._run_controllers)
                log.warning("controller manager lost leadership; campaigning again")
        else:
            await self._run_controllers()

    async def _run_controllers(self) -> None:
        ctx = Context(
            client=self.client, informers=informer.InformerFactory(self.client), clock=self.clock
        )
        self.controllers = {name: self.factories[name](ctx) for name in self.enabled}
        ctx.informers.start()
        tasks = [
            asyncio.get_running_loop().create_task(c.run(), name=f"controller-{name}")
            for name, c in self.controllers.items()
        ]
        try:
            await ctx.informers.wait_synced()
            self.ready.set()
            log.info("controllers running: %s", ", ".join(self.controllers))
            await asyncio.gather(*tasks)
        finally:
            self.ready.clear()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await ctx.informers.stop()
            await ctx.close()
