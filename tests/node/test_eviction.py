"""Node-pressure eviction: upstream's rules (thresholds, grace periods, conditions, ranking,
messages, admission) on a fake clock and made-up summaries, then the agent evicting a
real pod object to Failed/Evicted through the fake runtime."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, events, rest
from pilothouse.controllers import nodeipam
from pilothouse.node import kubeletconfig as kc
from pilothouse.node.eviction import helpers
from pilothouse.node.eviction import manager as evictionmod
from pilothouse.node.eviction import summary as summarymod
from pilothouse.node.runtime import fake, fsstats
from pilothouse.testing import eventually, running_controllers

PODS = resources.DEFAULT.by_path("", "v1", "pods")
PRIORITY_CLASSES = resources.DEFAULT.by_path("scheduling.k8s.io", "v1", "priorityclasses")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
NODES = resources.DEFAULT.by_path("", "v1", "nodes")
EVENTS = resources.DEFAULT.by_path("", "v1", "events")
assert PODS and NS and NODES and EVENTS and PRIORITY_CLASSES
GI = 1 << 30
MI = 1 << 20


def fs(capacity: int, available: int, *, device: int = 1) -> fsstats.FsStats:
    return fsstats.FsStats(capacity, available, 1_000_000, 900_000, device)


def summary(
    *, nodefs_free: int = 50 * GI, memory_used: int = GI, pods: dict[str, Any] | None = None
) -> summarymod.Summary:
    return summarymod.Summary(
        time=0.0,
        memory_capacity=8 * GI,
        memory_working_set=memory_used,
        nodefs=fs(100 * GI, nodefs_free),
        imagefs=fs(100 * GI, nodefs_free),
        pid_max=4096,
        processes=100,
        pods=pods or {},
    )


def pod(
    name: str, *, priority: int = 0, requests: dict[str, str] | None = None, **spec: Any
) -> Any:
    container: dict[str, Any] = {"name": "main", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": name},
        "spec": {"containers": [container], "priority": priority, **spec},
        "status": {"phase": "Running", "qosClass": "Burstable" if requests else "BestEffort"},
    }


def usage(name: str, *, disk: int = 0, memory: int = 0, logs: int = 0) -> summarymod.PodUsage:
    return summarymod.PodUsage(
        uid=name,
        containers=(
            summarymod.ContainerUsage(
                "main", memory_working_set=memory, rootfs_bytes=disk, logs_bytes=logs
            ),
        ),
    )


# --- ranking and messages --------------------------------------------------------------------
def test_disk_ranking_is_exceeds_requests_then_priority_then_usage() -> None:
    pods = [
        pod("high-big", priority=100),
        pod("low-small", priority=0),
        pod("low-big", priority=0),
        pod("within-request", priority=-5, requests={"ephemeral-storage": "1Gi"}),
    ]
    stats = {
        "high-big": usage("high-big", disk=900 * MI),
        "low-small": usage("low-small", disk=10 * MI),
        "low-big": usage("low-big", disk=500 * MI),
        "within-request": usage("within-request", disk=100 * MI),
    }
    ranked = helpers.rank(
        pods, "nodefs.available", lambda p: stats.get(p["metadata"]["uid"]), dedicated_imagefs=False
    )
    assert [p["metadata"]["name"] for p in ranked] == [
        "low-big",
        "low-small",
        "high-big",
        "within-request",  # under its request: last, whatever its priority
    ]


def test_memory_ranking_and_pods_without_stats_first() -> None:
    pods = [pod("a", priority=10), pod("b", priority=10), pod("nostats", priority=1000)]
    stats = {"a": usage("a", memory=100 * MI), "b": usage("b", memory=300 * MI)}
    ranked = helpers.rank(
        pods, "memory.available", lambda p: stats.get(p["metadata"]["uid"]), dedicated_imagefs=False
    )
    assert [p["metadata"]["name"] for p in ranked] == ["nostats", "b", "a"]


def test_eviction_message_is_upstreams() -> None:
    threshold = kc.Threshold("nodefs.available", percentage=0.1)
    observations = helpers.observe(summary(nodefs_free=5 * GI))
    victim = pod("web", requests={"ephemeral-storage": "1Mi"})
    message, annotations = helpers.eviction_message(
        "ephemeral-storage",
        victim,
        lambda p: usage("web", disk=3 * MI, logs=MI),
        [threshold],
        observations,
    )
    assert message == (
        "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: "
        "5Gi. Container main was using 4Mi, request is 1Mi, has larger consumption of "
        "ephemeral-storage. "
    )
    assert annotations == {
        "offending_containers": "main",
        "offending_containers_usage": "4Mi",
        "starved_resource": "ephemeral-storage",
    }


def test_local_storage_breaches() -> None:
    limited = pod("p", volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "10Mi"}}])
    limited["spec"]["containers"][0]["resources"] = {"limits": {"ephemeral-storage": "20Mi"}}
    over_volume = summarymod.PodUsage(
        "p", (summarymod.ContainerUsage("main"),), {"scratch": fsstats.Usage(11 * MI, 3)}
    )
    assert evictionmod._local_storage_breach(limited, over_volume) == (
        'Usage of EmptyDir volume "scratch" exceeds the limit "10Mi". '
    )
    over_limit = usage("p", disk=21 * MI)
    assert evictionmod._local_storage_breach(limited, over_limit) == (
        "Pod ephemeral local storage usage exceeds the total limit of containers 20Mi. "
    )
    two = pod("q")
    two["spec"]["containers"] = [
        {"name": "a", "resources": {"limits": {"ephemeral-storage": "5Mi"}}},
        {"name": "b", "resources": {"limits": {"ephemeral-storage": "100Mi"}}},
    ]
    a_over = summarymod.PodUsage(
        "q",
        (
            summarymod.ContainerUsage("a", rootfs_bytes=4 * MI, logs_bytes=2 * MI),
            summarymod.ContainerUsage("b"),
        ),
    )
    assert evictionmod._local_storage_breach(two, a_over) == (
        'Container a exceeded its local ephemeral storage limit "5Mi". '
    )
    assert evictionmod._local_storage_breach(two, usage("q", disk=MI)) == ""


# --- the manager on a fake clock --------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: Any, type: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((obj["metadata"]["name"], reason, message))


class Fixture:
    def __init__(self, thresholds: tuple[kc.Threshold, ...], **kw: Any) -> None:
        self.clock = Clock()
        self.recorder = Recorder()
        self.current = summary()
        self.pods: list[Any] = []
        self.evictions: list[tuple[str, evictionmod.Eviction]] = []
        self.reclaimed = 0
        self.conditions: list[list[str]] = []

        async def get() -> summarymod.Summary:
            return self.current

        async def evict(p: Any, e: evictionmod.Eviction) -> bool:
            self.evictions.append((p["metadata"]["name"], e))
            self.pods.remove(p)
            return True

        async def reclaim() -> int:
            self.reclaimed += 1
            return 0

        self.manager = evictionmod.EvictionManager(
            thresholds=thresholds,
            summary=get,
            pods=lambda: list(self.pods),
            evict=evict,
            cleaned_up=lambda p: True,
            recorder=self.recorder,  # type: ignore[arg-type]
            node_ref={"metadata": {"name": "node-1"}},
            delete_unused_containers=reclaim,
            delete_unused_images=reclaim,
            clock=self.clock,
            on_conditions=self.conditions.append,
            **kw,
        )


async def test_hard_threshold_reclaims_then_evicts_the_lowest_priority_pod() -> None:
    f = Fixture(
        kc.parse_thresholds({"nodefs.available": "10%"}, {}, {}, {}), pressure_transition_period=30
    )
    f.pods = [pod("important", priority=1000), pod("batch", priority=0)]
    f.current = summary(
        nodefs_free=5 * GI,
        pods={"important": usage("important", disk=GI), "batch": usage("batch", disk=GI)},
    )
    evicted = await f.manager.synchronize()
    assert [p["metadata"]["name"] for p in evicted] == ["batch"]
    assert f.reclaimed == 2, "dead containers and unused images go before any pod"
    name, eviction = f.evictions[0]
    assert name == "batch" and eviction.grace_seconds == 1
    assert eviction.message.startswith(
        "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 5Gi. "
    )
    assert eviction.condition is not None and eviction.condition["reason"] == "TerminationByKubelet"
    assert (
        "node-1",
        "EvictionThresholdMet",
        "Attempting to reclaim ephemeral-storage",
    ) in f.recorder.events
    assert ("batch", "Evicted", eviction.message) in f.recorder.events
    assert f.manager.conditions == ["DiskPressure"] and f.conditions == [["DiskPressure"]]
    # under pressure no new pod is admitted
    assert f.manager.admit(pod("new")) == (
        False,
        "Evicted",
        "The node had condition: [DiskPressure]. ",
    )
    # space comes back: the condition stays for the transition period, then goes
    f.current = summary()
    assert await f.manager.synchronize() == []
    assert f.manager.conditions == ["DiskPressure"]
    f.clock.now += 31
    await f.manager.synchronize()
    assert f.manager.conditions == [] and f.conditions[-1] == []
    assert f.manager.admit(pod("new")) == (True, "", "")


async def test_soft_threshold_waits_for_its_grace_period() -> None:
    f = Fixture(
        kc.parse_thresholds({}, {"memory.available": "2Gi"}, {"memory.available": "1m"}, {}),
        max_pod_grace_period=7,
    )
    f.pods = [pod("a")]
    f.current = summary(memory_used=7 * GI, pods={"a": usage("a", memory=6 * GI)})
    assert await f.manager.synchronize() == []
    assert f.manager.conditions == ["MemoryPressure"], "the condition does not wait"
    f.clock.now += 30
    assert await f.manager.synchronize() == []
    f.clock.now += 31
    assert [p["metadata"]["name"] for p in await f.manager.synchronize()] == ["a"]
    assert f.evictions[0][1].grace_seconds == 7, "soft evictions use evictionMaxPodGracePeriod"
    assert f.evictions[0][1].message.startswith(
        "The node was low on resource: memory. Threshold quantity: 2Gi, available: 1Gi. "
        "Container main was using 6Gi, request is 0, has larger consumption of memory. "
    )


async def test_memory_pressure_admits_all_but_best_effort() -> None:
    f = Fixture(kc.parse_thresholds({"memory.available": "2Gi"}, {}, {}, {}))
    f.current = summary(memory_used=7 * GI)
    await f.manager.synchronize()
    assert f.manager.admit(pod("burstable", requests={"memory": "1Mi"}))[0]
    assert f.manager.admit(pod("besteffort")) == (
        False, "Evicted", "The node had condition: [MemoryPressure]. "
    )  # fmt: skip
    tolerant = pod("tolerant", tolerations=[
        {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}
    ])  # fmt: skip
    assert f.manager.admit(tolerant)[0]
    critical = pod("critical", priority=2_000_001_000)
    assert f.manager.admit(critical)[0]


async def test_min_reclaim_keeps_the_threshold_until_reached() -> None:
    f = Fixture(
        kc.parse_thresholds({"nodefs.available": "10Gi"}, {}, {}, {"nodefs.available": "5Gi"})
    )
    f.pods = [pod("a"), pod("b")]
    f.current = summary(
        nodefs_free=9 * GI, pods={"a": usage("a", disk=GI), "b": usage("b", disk=2 * GI)}
    )
    assert [p["metadata"]["name"] for p in await f.manager.synchronize()] == ["b"]
    f.current = summary(nodefs_free=12 * GI, pods={"a": usage("a", disk=GI)})  # above 10, below 15
    assert [p["metadata"]["name"] for p in await f.manager.synchronize()] == ["a"]


async def test_local_storage_limits_evict_at_once() -> None:
    f = Fixture(())
    breaker = pod("breaker")
    breaker["spec"]["containers"][0]["resources"] = {"limits": {"ephemeral-storage": "1Mi"}}
    f.pods = [breaker, pod("fine")]
    f.current = summary(pods={"breaker": usage("breaker", disk=2 * MI), "fine": usage("fine")})
    evicted = await f.manager.synchronize()
    assert [p["metadata"]["name"] for p in evicted] == ["breaker"]
    assert f.evictions[0][1].message == (
        "Pod ephemeral local storage usage exceeds the total limit of containers 1Mi. "
    )
    assert f.manager.conditions == []


# --- the agent, end to end on the fake runtime --------------------------------------------------
@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


async def test_agent_evicts_a_pod_to_failed_evicted_and_reports_disk_pressure(
    client: rest.Client, api_server: testing.ServerThread, tmp_path: Path
) -> None:
    ns = "ev-" + uuid.uuid4().hex[:6]
    await client.create(NS, {"metadata": {"name": ns}})
    runtime = fake.FakeRuntime(fake.FakeImageService([fake.FakeImageService.make("busybox:1.36")]))
    name = "evict-" + uuid.uuid4().hex[:6]
    agent = testing.node_agent(api_server, client, name=name, data_dir=tmp_path, runtime=runtime)
    agent.config = kc.parse(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "evictionHard: {nodefs.available: 10%}\nevictionPressureTransitionPeriod: 1s\n"
        "nodeStatusUpdateFrequency: 1s\n"
    )
    pressure = {"on": False}
    async with running_controllers(client, {"nodeipam": nodeipam.NodeIPAMController}):
        await agent.start()
        try:
            assert agent.housekeeping is not None
            real = agent.housekeeping.summary.get

            async def fake_summary() -> summarymod.Summary:
                # The node's disk as the test says (the machine's own may be nearly full).
                s = await real()
                free = GI if pressure["on"] else 90 * GI
                return summarymod.Summary(
                    **{**s.__dict__, "nodefs": fs(100 * GI, free, device=s.nodefs.device)}
                )

            agent.housekeeping.eviction.summary = fake_summary

            async def no_pressure() -> bool:  # what the real disk may have set at start
                assert agent.housekeeping is not None
                await agent.housekeeping.eviction.synchronize()
                return agent.housekeeping.eviction.conditions == []

            await eventually(no_pressure, timeout=10)
            spec = {
                "nodeName": name,
                "containers": [
                    {"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}
                ],
            }
            low, high = f"{ns}-low", f"{ns}-high"
            for cls, value in ((low, 0), (high, 100)):
                await client.create(PRIORITY_CLASSES, {"metadata": {"name": cls}, "value": value})
            victim = {"metadata": {"name": "victim"}, "spec": {**spec, "priorityClassName": low}}
            keeper = {"metadata": {"name": "keeper"}, "spec": {**spec, "priorityClassName": high}}
            await client.create(PODS, victim, ns)
            await client.create(PODS, keeper, ns)

            async def running() -> bool:
                phases = [
                    ((await client.get(PODS, n, ns)).get("status") or {}).get("phase")
                    for n in ("victim", "keeper")
                ]
                return phases == ["Running", "Running"]

            await eventually(running, timeout=20)
            pressure["on"] = True
            evicted = await agent.housekeeping.eviction.synchronize()
            assert [p["metadata"]["name"] for p in evicted] == ["victim"]

            async def failed() -> dict[str, Any] | None:
                status = (await client.get(PODS, "victim", ns)).get("status") or {}
                return status if status.get("phase") == "Failed" else None

            status = await eventually(failed, timeout=20)
            assert status["reason"] == "Evicted"
            assert status["message"].startswith(
                "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 1Gi. "
            )
            target = next(c for c in status["conditions"] if c["type"] == "DisruptionTarget")
            assert target["reason"] == "TerminationByKubelet" and target["status"] == "True"
            assert "terminated" in status["containerStatuses"][0]["state"]
            keeper = (await client.get(PODS, "keeper", ns))["status"]
            assert keeper["phase"] == "Running"

            async def disk_pressure() -> bool:
                node = await client.get(NODES, name)
                c = next(c for c in node["status"]["conditions"] if c["type"] == "DiskPressure")
                return c["status"] == "True" and c["reason"] == "KubeletHasDiskPressure"

            await eventually(disk_pressure, timeout=20)
            # a pod arriving now is refused, as upstream's admission does
            await client.create(PODS, {"metadata": {"name": "late"}, "spec": spec}, ns)

            async def rejected() -> dict[str, Any] | None:
                status = (await client.get(PODS, "late", ns)).get("status") or {}
                return status if status.get("phase") == "Failed" else None

            late = await eventually(rejected, timeout=20)
            assert (late["reason"], late["message"]) == (
                "Evicted", "The node had condition: [DiskPressure]. "
            )  # fmt: skip
            # the evicted pod's containers never come back
            await asyncio.sleep(1.5)
            assert (await client.get(PODS, "victim", ns))["status"]["phase"] == "Failed"
            listed = await client.list(
                EVENTS, ns, field_selector="involvedObject.name=victim,reason=Evicted"
            )
            assert listed["items"] and listed["items"][0]["type"] == events.WARNING
            pressure["on"] = False
            await asyncio.sleep(1.2)
            await agent.housekeeping.eviction.synchronize()

            async def no_pressure() -> bool:
                node = await client.get(NODES, name)
                c = next(c for c in node["status"]["conditions"] if c["type"] == "DiskPressure")
                return c["status"] == "False" and c["reason"] == "KubeletHasNoDiskPressure"

            await eventually(no_pressure, timeout=20)
        finally:
            await agent.stop()
            await client.delete(NODES, name)
            for cls in (f"{ns}-low", f"{ns}-high"):
                with contextlib.suppress(errors.StatusError):
                    await client.delete(PRIORITY_CLASSES, cls)
