"""Shared pieces of the Deployment controller tests: resources, objects, a hollow
node, the controllers running, and a watcher that checks rollout invariants.

With ``--import-mode=importlib`` test modules cannot import each other, so the
helpers reach tests through the ``dh`` fixture (this module).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import types
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pilothouse.api import resources
from pilothouse.client import rest
from pilothouse.controllers import deployment, garbagecollector, manager, replicaset
from pilothouse.node import hollow
from pilothouse.testing import running_controllers

Obj = dict[str, Any]


def _r(group: str, plural: str) -> resources.Resource:
    res = resources.DEFAULT.by_path(group, "v1", plural)
    assert res is not None
    return res


DEPLOYMENTS = _r("apps", "deployments")
RS = _r("apps", "replicasets")
PODS = _r("", "pods")
EVENTS = _r("", "events")

FACTORIES: dict[str, manager.Factory] = {
    "replicaset": replicaset.ReplicaSetController,
    "deployment": deployment.DeploymentController,
    "garbagecollector": garbagecollector.GarbageCollector,
}


def deployment_obj(
    name: str,
    replicas: int,
    node_name: str,
    *,
    image: str = "nginx:1.0",
    max_surge: int | str | None = None,
    max_unavailable: int | str | None = None,
    strategy: str = "RollingUpdate",
) -> Obj:
    strat: Obj = {"type": strategy}
    if strategy == "RollingUpdate" and (max_surge is not None or max_unavailable is not None):
        strat["rollingUpdate"] = {
            k: v
            for k, v in (("maxSurge", max_surge), ("maxUnavailable", max_unavailable))
            if v is not None
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strat,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"nodeName": node_name, "containers": [{"name": "web", "image": image}]},
            },
        },
    }


@contextlib.asynccontextmanager
async def hollow_node(
    client: rest.Client, *, pods: int = 110
) -> AsyncIterator[hollow.HollowCluster]:
    sim = hollow.HollowCluster(
        client, count=1, name_prefix=f"d-{uuid.uuid4().hex[:6]}-", heartbeat=60, pods=pods
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop(unregister=True)


@contextlib.asynccontextmanager
async def controllers(client: rest.Client) -> AsyncIterator[None]:
    async with running_controllers(client, FACTORIES):
        yield


async def get_deployment(client: rest.Client, ns: str, name: str) -> Obj:
    return await client.get(DEPLOYMENTS, name, ns)


async def owned_sets(client: rest.Client, ns: str, d: Obj) -> list[Obj]:
    items = (await client.list(RS, ns))["items"]
    uid = d["metadata"]["uid"]
    return [
        rs
        for rs in items
        if any(r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])
    ]


async def rollout_done(client: rest.Client, ns: str, name: str) -> Obj | None:
    """The deployment once `kubectl rollout status` would call it done."""
    d = await get_deployment(client, ns, name)
    st = d.get("status") or {}
    want = d["spec"]["replicas"]
    if st.get("observedGeneration", 0) < d["metadata"]["generation"]:
        return None
    if (
        st.get("updatedReplicas", 0) == want
        and st.get("replicas", 0) == want
        and st.get("availableReplicas", 0) == want
    ):
        return d
    return None


async def events_of(client: rest.Client, ns: str, name: str, kind: str = "Deployment") -> list[Obj]:
    items = (await client.list(EVENTS, ns))["items"]
    return [
        e
        for e in items
        if e["involvedObject"].get("name") == name and e["involvedObject"].get("kind") == kind
    ]


def condition(d: Obj, ctype: str) -> Obj | None:
    for c in (d.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return dict(c)
    return None


@dataclass
class Watcher:
    """Replays every pod and ReplicaSet watch event of a namespace, in order, and
    records the extremes the rollout invariants are about.

    * ``live`` pods: not being deleted and not finished — what the ReplicaSet
      controller counts as its replicas, and what upstream bounds by
      replicas + maxSurge (a pod being deleted no longer counts; with hollow
      nodes it goes within milliseconds, and ``max_with_terminating`` shows it).
    * ``available`` pods: live and Ready (minReadySeconds is 0 here).
    * ``spec_sum``: the sum of the ReplicaSets' spec.replicas — upstream's
      exact guarantee (never above replicas + maxSurge).
    """

    client: rest.Client
    ns: str
    app: str
    pods: dict[str, Obj] = field(default_factory=dict)
    sets: dict[str, Obj] = field(default_factory=dict)
    max_live: int = 0
    max_with_terminating: int = 0
    min_available: int | None = None
    max_spec_sum: int = 0
    events: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    trajectory: list[tuple[int, int, int]] = field(default_factory=list)
    armed: bool = False  # record minimum availability only once the first rollout is done

    def live(self) -> list[Obj]:
        return [
            p
            for p in self.pods.values()
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]

    def available(self) -> int:
        return sum(
            1
            for p in self.live()
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        )

    def _observe(self) -> None:
        self.events += 1
        self.max_live = max(self.max_live, len(self.live()))
        self.max_with_terminating = max(self.max_with_terminating, len(self.pods))
        self.max_spec_sum = max(
            self.max_spec_sum,
            sum(int(rs["spec"].get("replicas") or 0) for rs in self.sets.values()),
        )
        if self.armed:
            avail = self.available()
            self.trajectory.append(
                (
                    len(self.live()),
                    avail,
                    sum(int(rs["spec"].get("replicas") or 0) for rs in self.sets.values()),
                )
            )
            self.min_available = (
                avail if self.min_available is None else min(self.min_available, avail)
            )

    async def _watch(
        self, resource: resources.Resource, store: dict[str, Obj], ready: asyncio.Event
    ) -> None:
        listing = await self.client.list(resource, self.ns, label_selector=f"app={self.app}")
        for item in listing["items"]:
            store[item["metadata"]["name"]] = item
        rv = listing["metadata"]["resourceVersion"]
        ready.set()
        async for event in self.client.watch(
            resource, self.ns, resource_version=rv, label_selector=f"app={self.app}"
        ):
            obj = event["object"]
            if event["type"] == "BOOKMARK":
                continue
            if event["type"] == "ERROR":
                raise AssertionError(f"watch error: {obj}")
            key = obj["metadata"]["name"]
            if event["type"] == "DELETED":
                store.pop(key, None)
            else:
                store[key] = obj
            self._observe()

    async def start(self) -> None:
        ready = [asyncio.Event(), asyncio.Event()]
        self._tasks = [
            asyncio.create_task(self._watch(PODS, self.pods, ready[0])),
            asyncio.create_task(self._watch(RS, self.sets, ready[1])),
        ]
        await asyncio.gather(*(e.wait() for e in ready))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


@pytest.fixture
def dh() -> types.ModuleType:
    """These helpers."""
    return sys.modules[__name__]


@pytest.fixture
async def node(client: rest.Client) -> AsyncIterator[hollow.HollowCluster]:
    async with hollow_node(client) as sim:
        yield sim


@pytest.fixture
def node_name(node: hollow.HollowCluster) -> str:
    return next(iter(node.nodes))


@contextlib.asynccontextmanager
async def binder(client: rest.Client, ns: str, node_name: str) -> AsyncIterator[None]:
    """A stand-in scheduler: bind every unscheduled pod of ``ns`` to ``node_name``
    (so `kubectl create deployment`, which cannot set nodeName, gets running pods)."""

    async def bind(pod: Obj) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod["metadata"]["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        path = rest.resource_path(PODS, ns, pod["metadata"]["name"], "binding")
        with contextlib.suppress(Exception):
            await client.request("POST", path, body=body)

    pending: set[asyncio.Task[None]] = set()

    async def run() -> None:
        listing = await client.list(PODS, ns)
        for pod in listing["items"]:
            if not pod["spec"].get("nodeName"):
                await bind(pod)
        async for event in client.watch(
            PODS, ns, resource_version=listing["metadata"]["resourceVersion"]
        ):
            pod = event["object"]
            if event["type"] == "ADDED" and not (pod.get("spec") or {}).get("nodeName"):
                task = asyncio.create_task(bind(pod))
                pending.add(task)
                task.add_done_callback(pending.discard)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
