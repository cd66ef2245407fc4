"""Scheduler integration fixtures: a dedicated API server (no embedded scheduler), hollow
nodes of chosen sizes, and a scheduler run on the test's loop.

The scheduler tests get a server of their own so that "0/3 nodes are available"
means exactly their three nodes; each test also uses its own schedulerName and
removes its nodes when done.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import supervisor as supervision
from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.node import hollow
from pilothouse.scheduler import config as scheduler_config
from pilothouse.scheduler import scheduler

Obj = dict[str, Any]
PODS = resources.Resource("", "v1", "Pod", "pods", True)
NAMESPACES = resources.Resource("", "v1", "Namespace", "namespaces", False)


@pytest.fixture(scope="session")
def sched_server() -> Iterator[testing.ServerThread]:
    with tempfile.TemporaryDirectory(prefix="pilothouse-sched-") as tmp:
        srv = testing.ServerThread(Path(tmp) / "data")
        srv.cluster.options.scheduler = False  # the tests run their own
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture
async def client(sched_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(sched_server.server.socket_path))
    yield c
    await c.close()


@pytest.fixture
async def ns(client: rest.Client) -> str:
    name = "s-" + uuid.uuid4().hex[:8]
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:6]


# Three sizes, the same memory per cpu, so BalancedAllocation does not take sides.
SIZES = {"small": ("2", "4Gi"), "medium": ("4", "8Gi"), "large": ("8", "16Gi")}


@contextlib.asynccontextmanager
async def three_nodes(
    client: rest.Client,
    prefix: str,
    *,
    labels: dict[str, dict[str, str]] | None = None,
    taints: dict[str, list[Obj]] | None = None,
    run_pods: bool = True,
) -> AsyncIterator[dict[str, str]]:
    """Hollow nodes small/medium/large; yields size → node name."""
    clusters = []
    names = {}
    try:
        for size, (cpu, memory) in SIZES.items():
            hc = hollow.HollowCluster(
                client,
                count=1,
                name_prefix=f"{prefix}-{size}-",
                cpu=cpu,
                memory=memory,
                labels=(labels or {}).get(size),
                taints=(taints or {}).get(size),
                heartbeat=30.0,
                run_pods=run_pods,
                workers=2,
            )
            await hc.start()
            clusters.append(hc)
            names[size] = next(iter(hc.nodes))
        yield names
    finally:
        for hc in clusters:
            await hc.stop(unregister=True)


@contextlib.asynccontextmanager
async def running_scheduler(
    client: rest.Client,
    name: str,
    configuration: scheduler_config.Configuration | None = None,
) -> AsyncIterator[scheduler.Scheduler]:
    configuration = configuration or scheduler_config.Configuration(
        profiles=[scheduler_config.Profile(scheduler_name=name)]
    )
    sup = supervision.Supervisor(f"scheduler {name}")
    sched = scheduler.Scheduler(client, supervisor=sup, configuration=configuration)
    sup.start("main", sched.run)
    try:
        await asyncio.wait_for(sched.ready.wait(), 20)
        yield sched
    finally:
        await sup.stop()


def pod(
    name: str, scheduler_name: str, *, cpu: str = "500m", memory: str = "1Gi", **spec: Any
) -> Obj:
    labels = spec.pop("labels", None) or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "schedulerName": scheduler_name,
            "containers": [
                {
                    "name": "c",
                    "image": "pause",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ],
            **spec,
        },
    }


async def create_pods(client: rest.Client, ns: str, pods: list[Obj]) -> None:
    for p in pods:
        await client.create(PODS, p, ns)


async def wait_bound(
    client: rest.Client, ns: str, names: list[str], timeout: float = 20.0
) -> dict[str, str]:
    """Wait until every named pod has a node; returns name → node."""

    async def check() -> dict[str, str] | None:
        items = (await client.list(PODS, ns))["items"]
        placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in items}
        if all(placed.get(n) for n in names):
            return {n: str(placed[n]) for n in names}
        return None

    result: dict[str, str] = await testing.eventually(check, timeout=timeout)
    return result


async def scheduled_condition(
    client: rest.Client, ns: str, name: str, timeout: float = 20.0
) -> Obj:
    """Wait for the pod's PodScheduled=False condition and return it."""

    async def check() -> Obj | None:
        p = await client.get(PODS, name, ns)
        for c in (p.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                return dict(c)
        return None

    result: Obj = await testing.eventually(check, timeout=timeout)
    return result
