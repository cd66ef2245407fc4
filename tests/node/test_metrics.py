"""The agent's resource usage summary and its Prometheus metrics, on the fake runtime."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils

from pilothouse.api import meta
from pilothouse.node import metrics
from pilothouse.node.runtime import fake, protocol
from pilothouse.node.server import AgentServer

T0 = 1_700_000_000.0
MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FixedUsage:
    """Containers that each use a fixed number of nanocores and bytes."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.rates: dict[str, int] = {}  # container id → nanocores
        self.memory: dict[str, int] = {}
        self.offset: dict[str, int] = {}  # subtracted from the CPU counter (to reset it)
        self.failing: set[str] = set()

    async def __call__(self, container_id: str) -> protocol.ContainerStats:
        if container_id in self.failing:
            raise protocol.RuntimeError_("NotFound", f"container {container_id} is gone")
        elapsed = self.clock() - T0
        return protocol.ContainerStats(
            timestamp=self.clock(),
            cpu_usage_ns=round(self.rates.get(container_id, 0) * elapsed)
            - self.offset.get(container_id, 0),
            memory_working_set=self.memory.get(container_id, 0),
            memory_usage=self.memory.get(container_id, 0) + MIB,
        )

    def node(self) -> protocol.ContainerStats:
        elapsed = self.clock() - T0
        return protocol.ContainerStats(
            timestamp=self.clock(),
            cpu_usage_ns=round(1_500_000_000 * elapsed),
            memory_working_set=2048 * MIB,
            memory_usage=3072 * MIB,
        )


def _pod(uid: str, namespace: str, name: str) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "namespace": namespace, "name": name},
        "status": {"startTime": "2024-01-01T00:00:00Z"},
    }


class Node:
    """A fake runtime with pods on it, and a StatsProvider over it."""

    def __init__(self) -> None:
        self.runtime = fake.FakeRuntime()
        self.image = fake.FakeImageService.make("app:1")
        self.sandboxes: dict[str, protocol.Sandbox] = {}
        self.pods: list[dict[str, Any]] = []
        self.clock = Clock()
        self.usage = FixedUsage(self.clock)
        self.provider = metrics.StatsProvider(
            runtime=self.runtime,
            pods=lambda: self.pods,
            sandboxes=self.sandboxes,
            node_name="node-a",
            container_stats=self.usage,
            node_stats=self.usage.node,
        )

    async def pod(
        self, uid: str, name: str, containers: dict[str, tuple[int, int]], *, listed: bool = True
    ) -> dict[str, str]:
        """A running pod; ``containers`` maps names to (nanocores, bytes)."""
        sb = await self.runtime.run_pod_sandbox(
            protocol.SandboxConfig(uid=uid, namespace="ns", name=name, hostname=name)
        )
        self.sandboxes[uid] = sb
        if listed:
            self.pods.append(_pod(uid, "ns", name))
        ids = {}
        for cname, (cpu, memory) in containers.items():
            cid = await self.runtime.create_container(
                sb.id, protocol.ContainerConfig(name=cname, image=self.image, command=("x",))
            )
            await self.runtime.start_container(cid)
            self.usage.rates[cid], self.usage.memory[cid] = cpu, memory
            ids[cname] = cid
        return ids

    async def sample_twice(self, seconds: float = 10.0) -> None:
        await self.provider.sample()
        self.clock.now += seconds
        await self.provider.sample()


@pytest.fixture
def node() -> Node:
    return Node()


def _pods(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["podRef"]["name"]: p for p in summary["pods"]}


async def test_first_sample_has_totals_but_no_rates(node: Node) -> None:
    await node.pod("u1", "web", {"app": (250_000_000, 32 * MIB)})
    await node.provider.sample()
    summary = node.provider.summary()
    assert summary["node"]["nodeName"] == "node-a"
    assert "usageNanoCores" not in summary["node"]["cpu"]
    assert summary["node"]["memory"]["workingSetBytes"] == 2048 * MIB
    (container,) = _pods(summary)["web"]["containers"]
    assert container["name"] == "app" and "usageNanoCores" not in container["cpu"]
    assert container["memory"]["workingSetBytes"] == 32 * MIB
    assert "usageNanoCores" not in _pods(summary)["web"]["cpu"]


async def test_rates_pods_and_containers_after_two_samples(node: Node) -> None:
    await node.pod("u1", "web", {"app": (250_000_000, 32 * MIB), "proxy": (50_000_000, 8 * MIB)})
    await node.pod("u2", "db", {"main": (1_000_000_000, 512 * MIB)})
    await node.pod("u3", "gone", {"main": (7, 7)}, listed=False)  # deleted from the API
    exited = (await node.pod("u4", "job", {"main": (7, 7)}))["main"]
    node.runtime.exit(exited, 0)
    await node.sample_twice()
    summary = node.provider.summary()

    cpu = summary["node"]["cpu"]
    assert cpu["usageNanoCores"] == 1_500_000_000
    assert cpu["usageCoreNanoSeconds"] == 15_000_000_000
    assert cpu["time"] == meta.format_time(T0 + 10)
    pods = _pods(summary)
    assert list(pods) == ["db", "web"]  # sorted; no deleted pod, no pod without running containers
    web = pods["web"]
    assert web["podRef"] == {"name": "web", "namespace": "ns", "uid": "u1"}
    assert web["startTime"] == "2024-01-01T00:00:00Z"
    assert [c["name"] for c in web["containers"]] == ["app", "proxy"]
    app = web["containers"][0]
    assert app["cpu"]["usageNanoCores"] == 250_000_000
    assert app["memory"] == {
        "time": meta.format_time(T0 + 10),
        "workingSetBytes": 32 * MIB,
        "usageBytes": 33 * MIB,
    }
    assert web["cpu"]["usageNanoCores"] == 300_000_000
    assert web["memory"]["workingSetBytes"] == 40 * MIB
    assert pods["db"]["containers"][0]["cpu"]["usageNanoCores"] == 1_000_000_000


async def test_a_container_that_cannot_be_read_drops_out(node: Node) -> None:
    ids = await node.pod("u1", "web", {"app": (10, MIB), "proxy": (10, MIB)})
    await node.provider.sample()
    node.usage.failing.add(ids["proxy"])
    node.clock.now += 10
    await node.provider.sample()
    (web,) = node.provider.summary()["pods"]
    assert [c["name"] for c in web["containers"]] == ["app"]


async def test_a_counter_that_went_back_gives_no_rate(node: Node) -> None:
    ids = await node.pod("u1", "web", {"app": (100, MIB)})
    await node.provider.sample()
    node.clock.now += 10
    node.usage.offset[ids["app"]] = 10_000
    await node.provider.sample()
    (web,) = node.provider.summary()["pods"]
    assert "usageNanoCores" not in web["containers"][0]["cpu"]
    node.clock.now += 10
    await node.provider.sample()
    (web,) = node.provider.summary()["pods"]
    assert web["containers"][0]["cpu"]["usageNanoCores"] == 100


async def test_rounds_run_one_at_a_time_so_a_slow_one_drops_nothing(node: Node) -> None:
    """A round that lists, then waits on a slow reading, must not end after a newer round
    and replace its containers with the fewer it listed."""
    first = (await node.pod("u1", "web", {"app": (250_000_000, 32 * MIB)}))["app"]
    read, slow, calls = node.usage, asyncio.Event(), []

    async def stuck_on_web(container_id: str) -> protocol.ContainerStats:
        calls.append(container_id)
        if calls == [first]:  # the older round's one reading
            await slow.wait()
        return await read(container_id)

    node.provider.container_stats = stuck_on_web
    older = asyncio.create_task(node.provider.sample())  # lists web only, then waits
    await asyncio.sleep(0.01)
    await node.pod("u2", "db", {"main": (1_000_000_000, 512 * MIB)})
    newer = asyncio.create_task(node.provider.sample())
    await asyncio.sleep(0.01)
    slow.set()
    await asyncio.gather(older, newer)
    assert set(_pods(node.provider.summary())) == {"web", "db"}


async def test_the_sampler_runs_every_interval() -> None:
    runtime = fake.FakeRuntime()
    provider = metrics.StatsProvider(
        runtime=runtime, pods=list, sandboxes={}, node_name="n", interval=0.01
    )
    task = asyncio.create_task(provider.run())
    try:
        for _ in range(500):
            await asyncio.sleep(0.01)
            if "usageNanoCores" in provider.summary()["node"].get("cpu", {}):
                break
        assert provider.summary()["node"]["cpu"]["usageNanoCores"] >= 0  # real /proc/stat
    finally:
        task.cancel()


async def test_a_started_container_has_a_rate_within_a_second_not_a_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "FIRST_RATE_DELAY", 0.02)
    node = Node()
    node.provider.interval = 60.0  # a window the test would never live to see
    task = asyncio.create_task(node.provider.run())
    try:
        await asyncio.sleep(0.05)  # the first round: nothing runs yet
        await node.pod("u1", "web", {"app": (250, 8 * MIB)})
        node.provider.poke()  # what the agent's relist does when a container starts
        cpu: dict[str, Any] = {}
        for _ in range(200):
            node.clock.now += 1
            await asyncio.sleep(0.01)
            pods = node.provider.summary()["pods"]
            cpu = pods[0]["containers"][0]["cpu"] if pods else {}
            if "usageNanoCores" in cpu:
                break
        assert cpu.get("usageNanoCores") == 250
    finally:
        task.cancel()


# --- Prometheus ------------------------------------------------------------------------------
@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def agent_metrics(clock: Clock) -> metrics.AgentMetrics:
    return metrics.AgentMetrics(clock=clock)


def _value(m: metrics.AgentMetrics, name: str, **labels: str) -> float:
    value = m.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _versions(uid: str, created: float) -> Iterator[dict[str, Any]]:
    md = {
        "uid": uid,
        "name": "web",
        "namespace": "ns",
        "creationTimestamp": meta.format_time(created),
    }
    for phase in ("Pending", "Pending", "Running", "Running"):
        yield {"metadata": md, "status": {"phase": phase}}


def test_pod_start_latency_from_creation_and_from_first_sight(
    agent_metrics: metrics.AgentMetrics, clock: Clock
) -> None:
    versions = _versions("u1", created=T0 - 1)
    agent_metrics.pod_updated(next(versions))  # first seen at T0
    clock.now += 0.2
    agent_metrics.pod_updated(next(versions))
    clock.now += 0.3
    agent_metrics.pod_updated(next(versions))  # Running at T0 + 0.5
    agent_metrics.pod_updated(next(versions))  # seen again: counted once
    assert _value(agent_metrics, "kubelet_pod_start_duration_seconds_count") == 1
    assert _value(agent_metrics, "kubelet_pod_start_duration_seconds_sum") == pytest.approx(0.5)
    assert _value(agent_metrics, "kubelet_pod_start_total_duration_seconds_sum") == pytest.approx(
        1.5
    )
    assert _value(agent_metrics, "kubelet_pod_start_total_duration_seconds_bucket", le="0.5") == 0
    assert _value(agent_metrics, "kubelet_pod_start_total_duration_seconds_bucket", le="2.0") == 1


def test_pods_already_running_when_first_seen_are_not_starts(
    agent_metrics: metrics.AgentMetrics,
) -> None:
    running = list(_versions("u2", created=T0 - 3600))[-1]
    agent_metrics.pod_updated(running)  # an agent restart adopting a running pod
    assert _value(agent_metrics, "kubelet_pod_start_duration_seconds_count") == 0
    pending = next(_versions("u3", created=T0))
    agent_metrics.pod_updated(pending)
    agent_metrics.pod_deleted(pending)  # deleted before it ran: nothing is kept for it
    assert agent_metrics._pending == {} and agent_metrics._started == {"u2"}


def test_probe_results_are_counted(agent_metrics: metrics.AgentMetrics) -> None:
    pod = {"metadata": {"uid": "u1", "name": "web", "namespace": "ns"}}
    container = {"name": "app"}
    for ok in (True, True, False):
        agent_metrics.probe_result("readiness", pod, container, ok)
    agent_metrics.probe_result("liveness", pod, container, True)
    labels = {"container": "app", "pod": "web", "namespace": "ns", "pod_uid": "u1"}
    total = "prober_probe_total"
    assert _value(agent_metrics, total, probe_type="Readiness", result="successful", **labels) == 2
    assert _value(agent_metrics, total, probe_type="Readiness", result="failed", **labels) == 1
    assert _value(agent_metrics, total, probe_type="Liveness", result="successful", **labels) == 1


def _container(cid: str, state: str) -> protocol.ContainerStatus:
    return protocol.ContainerStatus(
        id=cid, sandbox_id="s", name=cid, attempt=0, image_id="", image_ref="", state=state
    )


def _sandbox(sid: str, state: str) -> protocol.Sandbox:
    return protocol.Sandbox(
        id=sid, uid=sid, namespace="ns", name=sid, ip="", netns_path="", state=state, created_at=0
    )


def test_relists_set_running_gauges_and_time_the_relist(
    agent_metrics: metrics.AgentMetrics,
) -> None:
    containers = [_container("a", "running"), _container("b", "running"), _container("c", "exited")]
    sandboxes = [_sandbox("s1", "ready"), _sandbox("s2", "notready")]
    agent_metrics.relisted(0.003, containers, sandboxes)
    assert _value(agent_metrics, "kubelet_running_containers", container_state="running") == 2
    assert _value(agent_metrics, "kubelet_running_containers", container_state="exited") == 1
    assert _value(agent_metrics, "kubelet_running_containers", container_state="created") == 0
    assert _value(agent_metrics, "kubelet_running_pods") == 1
    assert _value(agent_metrics, "kubelet_pleg_relist_duration_seconds_count") == 1
    agent_metrics.relisted(0.002, [], [])
    assert _value(agent_metrics, "kubelet_running_containers", container_state="running") == 0
    assert _value(agent_metrics, "kubelet_pleg_relist_duration_seconds_count") == 2
    text = agent_metrics.render().decode()
    assert "# TYPE kubelet_pleg_relist_duration_seconds histogram" in text
    assert 'kubelet_running_containers{container_state="exited"} 0.0' in text


# --- the agent server's routes ---------------------------------------------------------------
async def test_agent_server_serves_summary_and_metrics_to_the_api_server_only(
    tmp_path: Path,
) -> None:
    allowed = True
    agent_metrics = metrics.AgentMetrics()
    agent_metrics.relisted(0.001, [_container("a", "running")], [])
    server = AgentServer(
        locate_log=lambda *_: None,
        authorized=lambda _ssl: allowed,
        stats=lambda: {"node": {"nodeName": "n"}, "pods": []},
        metrics=agent_metrics.render,
    )
    async with test_utils.TestClient(test_utils.TestServer(server.app())) as http:
        resp = await http.get("/stats/summary")
        assert resp.status == 200 and resp.content_type == "application/json"
        assert await resp.json() == {"node": {"nodeName": "n"}, "pods": []}
        resp = await http.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == metrics.CONTENT_TYPE
        assert 'kubelet_running_containers{container_state="running"} 1.0' in await resp.text()
        allowed = False
        assert (await http.get("/stats/summary")).status == 403
        assert (await http.get("/metrics")).status == 403
    bare = AgentServer(locate_log=lambda *_: None, authorized=lambda _ssl: True)
    async with test_utils.TestClient(test_utils.TestServer(bare.app())) as http:
        assert (await http.get("/stats/summary")).status == 404
