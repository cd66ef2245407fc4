"""The real kubectl 1.32 driving a DaemonSet on hollow nodes: one pod per node, placed by
the scheduler; nodes joining, tainted and leaving; a rollout one node at a time; rollout
status, history, undo and restart.

The API server (with the scheduler, the DaemonSet controller, the garbage and pod
collectors) runs in a thread of its own for this module, so "every node" means
exactly this test's nodes; the hollow nodes and a watcher run on the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.controllers.daemonset import util
from pilothouse.node import hollow

pytestmark = pytest.mark.kubectl

PODS = resources.DEFAULT.by_path("", "v1", "pods")
DAEMONSETS = resources.DEFAULT.by_path("apps", "v1", "daemonsets")
assert PODS is not None and DAEMONSETS is not None

MANIFEST = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: busybox:1.36
"""


@pytest.fixture(scope="module")
def server() -> Iterator[testing.ServerThread]:
    with tempfile.TemporaryDirectory(prefix="pilothouse-ds-") as tmp:
        srv = testing.ServerThread(Path(tmp) / "data", controllers=True)
        srv.cluster.options.enabled_controllers = ["daemonset", "garbagecollector", "podgc"]
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture
async def client(server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(server.server.socket_path))
    yield c
    await c.close()


@dataclass
class Watcher:
    """Replays the namespace's pod events and keeps, at every step, how many of the
    given nodes had no available pod (ready, not being deleted)."""

    client: rest.Client
    ns: str
    nodes: set[str]
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_nodes_without_pod: int = 0
    max_pods_on_a_node: int = 0
    task: asyncio.Task[None] | None = None

    def _observe(self) -> None:
        serving: dict[str, int] = {}
        live: dict[str, int] = {}
        for pod in self.pods.values():
            node = util.target_node_name(pod) or ""
            if pod["metadata"].get("deletionTimestamp"):
                continue
            live[node] = live.get(node, 0) + 1
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or []
            )
            if ready:
                serving[node] = serving.get(node, 0) + 1
        self.max_nodes_without_pod = max(
            self.max_nodes_without_pod, sum(1 for n in self.nodes if not serving.get(n))
        )
        self.max_pods_on_a_node = max(self.max_pods_on_a_node, max(live.values(), default=0))

    async def _run(self, rv: str) -> None:
        async for event in self.client.watch(PODS, self.ns, resource_version=rv):  # type: ignore[arg-type]
            if event["type"] in ("BOOKMARK", "ERROR"):
                continue
            obj = event["object"]
            if event["type"] == "DELETED":
                self.pods.pop(obj["metadata"]["name"], None)
            else:
                self.pods[obj["metadata"]["name"]] = obj
            self._observe()

    async def start(self) -> None:
        listing = await self.client.list(PODS, self.ns)  # type: ignore[arg-type]
        for pod in listing["items"]:
            self.pods[pod["metadata"]["name"]] = pod
        self._observe()
        self.task = asyncio.create_task(self._run(listing["metadata"]["resourceVersion"]))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


async def test_daemonset_on_hollow_nodes(server: testing.ServerThread, client: rest.Client) -> None:
    ns = "ds-kubectl"

    async def k(*args: str, stdin: str | None = None) -> str:
        return (await testing.run_kubectl(server.kubeconfig, "-n", ns, *args, stdin=stdin))[1]

    async def pods_by_node() -> dict[str, list[str]]:
        items = (await client.list(PODS, ns))["items"]  # type: ignore[arg-type]
        out: dict[str, list[str]] = {}
        for p in items:
            if not p["metadata"].get("deletionTimestamp"):
                out.setdefault(p["spec"].get("nodeName") or "", []).append(p["metadata"]["name"])
        return out

    async def ds_row() -> list[str]:
        return rows(await k("get", "ds", "agent"))[1]

    five = hollow.HollowCluster(client, count=5, name_prefix="ds-a-", heartbeat=5)
    sixth = hollow.HollowCluster(client, count=1, name_prefix="ds-b-", heartbeat=5)
    tainted = hollow.HollowCluster(
        client,
        count=1,
        name_prefix="ds-t-",
        heartbeat=5,
        taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
    )
    await five.start()
    try:
        await k("create", "namespace", ns)
        assert (
            await k("create", "-f", "-", stdin=MANIFEST)
        ).strip() == "daemonset.apps/agent created"
        out = await k("rollout", "status", "ds/agent", "--timeout=60s")
        assert 'daemon set "agent" successfully rolled out' in out
        placed = await pods_by_node()
        assert sorted(placed) == sorted(five.nodes) and all(len(v) == 1 for v in placed.values())
        table = rows(await k("get", "ds", "agent", "-o", "wide"))
        assert table[0] == [
            "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
            "SELECTOR", "AGE", "CONTAINERS", "IMAGES", "SELECTOR",
        ]  # fmt: skip
        assert table[1][1:6] == ["5", "5", "5", "5", "5"] and table[1][6] == "<none>"

        # A sixth node joins: it gets a pod; a tainted one gets none.
        await sixth.start()
        await tainted.start()

        async def six() -> bool:
            return (await ds_row())[1:6] == ["6", "6", "6", "6", "6"]

        await testing.eventually(six, timeout=30)
        placed = await pods_by_node()
        assert set(placed) == set(five.nodes) | set(sixth.nodes)

        # Tainted NoExecute, a node loses its daemon pod; untainted, it gets one back.
        victim = sorted(five.nodes)[0]
        await testing.run_kubectl(
            server.kubeconfig, "taint", "nodes", victim, "maintenance=now:NoExecute"
        )

        async def five_again() -> bool:
            return (await ds_row())[1:6] == ["5", "5", "5", "5", "5"] and victim not in (
                await pods_by_node()
            )

        await testing.eventually(five_again, timeout=30)
        await testing.run_kubectl(server.kubeconfig, "taint", "nodes", victim, "maintenance-")
        await testing.eventually(six, timeout=30)

        # A rolling update replaces one node's pod at a time (maxUnavailable 1).
        watcher = Watcher(client, ns, set(five.nodes) | set(sixth.nodes))
        await watcher.start()
        await k("set", "image", "ds/agent", "agent=busybox:1.37")
        out = await k("rollout", "status", "ds/agent", "--timeout=90s")
        assert 'daemon set "agent" successfully rolled out' in out
        await asyncio.sleep(0.3)
        await watcher.stop()
        assert watcher.max_nodes_without_pod == 1, watcher.max_nodes_without_pod
        assert watcher.max_pods_on_a_node == 1
        images = await k(
            "get", "pods", "-o", "jsonpath={range .items[*]}{.spec.containers[0].image} {end}"
        )
        assert images.split() == ["busybox:1.37"] * 6

        history = rows(await k("rollout", "history", "ds/agent"))
        assert history[1:] == [["REVISION", "CHANGE-CAUSE"], ["1", "<none>"], ["2", "<none>"]]
        assert (
            await k("rollout", "undo", "ds/agent")
        ).strip() == "daemonset.apps/agent rolled back"
        await k("rollout", "status", "ds/agent", "--timeout=90s")
        images = await k(
            "get", "pods", "-o", "jsonpath={range .items[*]}{.spec.containers[0].image} {end}"
        )
        assert images.split() == ["busybox:1.36"] * 6
        out = await k("rollout", "undo", "ds/agent", "--to-revision=3")
        assert "skipped rollback (current template already matches revision 3)" in out
        assert (
            await k("rollout", "restart", "ds/agent")
        ).strip() == "daemonset.apps/agent restarted"
        await k("rollout", "status", "ds/agent", "--timeout=90s")
        history = rows(await k("rollout", "history", "ds/agent"))
        assert [r[0] for r in history[2:]] == ["2", "3", "4"]
        revisions_table = rows(await k("get", "controllerrevisions"))
        assert revisions_table[0] == ["NAME", "CONTROLLER", "REVISION", "AGE"]
        assert {r[1] for r in revisions_table[1:]} == {"daemonset.apps/agent"}

        # The sixth node leaves: the set no longer counts it.
        await sixth.stop(unregister=True)

        async def desired_five() -> bool:
            return (await ds_row())[1] == "5"

        await testing.eventually(desired_five, timeout=30)

        await asyncio.sleep(1.0)  # events are written in the background
        described = await k("describe", "ds", "agent")
        assert re.search(r"^Desired Number of Nodes Scheduled: 5$", described, re.M)
        assert re.search(r"^Number of Nodes Misscheduled: 0$", described, re.M)
        assert re.search(
            r"Normal\s+SuccessfulCreate\s+.*daemonset-controller\s+Created pod: agent-", described
        )
        await k("delete", "ds", "agent")
    finally:
        await sixth.stop(unregister=True)
        await tainted.stop(unregister=True)
        await five.stop(unregister=True)
