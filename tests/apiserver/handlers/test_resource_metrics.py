"""``metrics.k8s.io/v1beta1`` against a real API server and fake node agents.

Each fake agent is a small HTTPS server with a serving certificate from the
cluster CA that demands a client certificate, as the real agent does, and
answers ``/stats/summary`` with numbers the test chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.apiserver.auth import certs
from pilothouse.apiserver.handlers import resource_metrics as rm
from pilothouse.client import config, rest
from pilothouse.node import server as agent_server
from pilothouse.node import status

NODES = resources.DEFAULT.by_path("", "v1", "nodes")
PODS = resources.DEFAULT.by_path("", "v1", "pods")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
assert NODES and PODS and NS
BASE = "/apis/metrics.k8s.io/v1beta1"
KI = 1024


# --- formatting ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("nano", "text"),
    [
        (123456789, "123456789n"),
        (250_000_000, "250m"),
        (2_000_000_000, "2"),
        (0, "0"),
        (1500, "1500n"),
    ],
)
def test_cpu_is_written_in_nanocores_as_metrics_server_does(nano: int, text: str) -> None:
    assert rm.cpu_quantity(nano) == text


@pytest.mark.parametrize(
    ("num", "text"), [(12345 * KI, "12345Ki"), (1024 * KI * KI, "1Gi"), (1000, "1k"), (0, "0")]
)
def test_memory_is_a_binary_quantity(num: int, text: str) -> None:
    assert rm.memory_quantity(num) == text


def test_pods_with_a_container_lacking_a_rate_are_left_out() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}}}
    full = {
        "name": "a",
        "cpu": {"time": "T", "usageNanoCores": 5},
        "memory": {"workingSetBytes": 4096},
    }
    partial = {"name": "b", "cpu": {"time": "T"}, "memory": {"workingSetBytes": 4096}}
    assert rm.pod_metrics(pod, {"containers": [full, partial]}, now="N") is None
    assert rm.pod_metrics(pod, {"containers": []}, now="N") is None
    got = rm.pod_metrics(pod, {"containers": [full]}, now="N")
    assert got == {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "creationTimestamp": "N",
            "labels": {"a": "b"},
        },
        "timestamp": "T",
        "window": "10s",
        "containers": [{"name": "a", "usage": {"cpu": "5n", "memory": "4Ki"}}],
    }


def test_agent_url_prefers_the_internal_ip() -> None:
    node: dict[str, Any] = {
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "h"},
                {"type": "InternalIP", "address": "fd00::1"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 1234}},
        }
    }
    assert rm.agent_url(node) == "https://[fd00::1]:1234"
    assert rm.agent_url({"status": {}}) is None


def test_hollow_nodes_have_no_agent_to_ask() -> None:
    # Their addresses are made up (10.250.x.x): never connect to them.
    node = status.node_object(
        "hollow-0", capacity={"cpu": "1"}, address="10.250.0.0", runtime="hollow"
    )
    assert rm.agent_url(node) is None


# --- the API ---------------------------------------------------------------------------------
class FakeAgent:
    """One node's agent: serves a summary, counts requests, checks the caller's certificate."""

    def __init__(self, summary: dict[str, Any]) -> None:
        self.summary = summary
        self.requests = 0
        self.callers: list[Any] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _summary(self, request: web.Request) -> web.Response:
        self.requests += 1
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        self.callers.append(agent_server.is_apiserver(ssl_obj))
        return web.json_response(self.summary)

    async def start(self, tls: agent_server.AgentTLS) -> None:
        app = web.Application()
        app.router.add_get("/stats/summary", self._summary)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=tls.server_context())
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def summary(
    node_cpu: int | None, node_memory: int, pods: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    cpu: dict[str, Any] = {"time": "2025-01-01T00:00:10Z", "usageCoreNanoSeconds": 10**12}
    if node_cpu is not None:
        cpu["usageNanoCores"] = node_cpu
    return {
        "node": {"nodeName": "x", "cpu": cpu, "memory": {"workingSetBytes": node_memory}},
        "pods": pods or [],
    }


def pod_entry(pod: dict[str, Any], containers: dict[str, tuple[int | None, int]]) -> dict[str, Any]:
    md = pod["metadata"]
    out = []
    for name, (cpu, memory) in containers.items():
        c: dict[str, Any] = {
            "name": name,
            "cpu": {"time": "2025-01-01T00:00:10Z"},
            "memory": {"workingSetBytes": memory},
        }
        if cpu is not None:
            c["cpu"]["usageNanoCores"] = cpu
        out.append(c)
    return {
        "podRef": {"name": md["name"], "namespace": md["namespace"], "uid": md["uid"]},
        "containers": out,
    }


class Cluster:
    """Nodes (each with a fake agent or none) and pods on them, in the shared API server."""

    def __init__(self, client: rest.Client, server: testing.ServerThread) -> None:
        self.client = client
        self.server = server
        self.id = uuid.uuid4().hex[:8]
        self.namespace = f"m-{self.id}"
        self.agents: dict[str, FakeAgent] = {}
        self.nodes: list[str] = []
        pki = server.server.pki
        assert pki is not None
        cert, key = certs.issue_serving_cert(
            pki, common_name="agent", hostnames=[], ips=["127.0.0.1"]
        )
        self.tls = agent_server.AgentTLS(cert, key, pki.ca_cert.read_bytes())

    def name(self, short: str) -> str:
        return f"{short}-{self.id}"

    async def node(
        self,
        short: str,
        *,
        agent: FakeAgent | None,
        ready: bool = True,
        labels: dict[str, str] | None = None,
    ) -> str:
        name = self.name(short)
        if agent is not None:
            await agent.start(self.tls)
            self.agents[name] = agent
        port = agent.port if agent is not None else _closed_port()
        await self.client.create(
            NODES,
            {"metadata": {"name": name, "labels": {"metrics-test": self.id, **(labels or {})}}},
        )
        self.nodes.append(name)
        status = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady",
                    "message": "",
                    "lastHeartbeatTime": "2025-01-01T00:00:00Z",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }
        await self.client.patch(NODES, name, {"status": status}, subresource="status")
        return name

    async def pod(
        self, name: str, node: str, *, labels: dict[str, str] | None = None, phase: str = "Running"
    ) -> dict[str, Any]:
        pod = await self.client.create(
            PODS,
            {
                "metadata": {"name": name, "labels": labels or {}},
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]},
            },
            self.namespace,
        )
        await self.client.patch(
            PODS, name, {"status": {"phase": phase}}, self.namespace, subresource="status"
        )
        return pod

    async def close(self) -> None:
        for agent in self.agents.values():
            await agent.stop()
        for name in self.nodes:
            with contextlib.suppress(errors.StatusError):
                await self.client.delete(NODES, name)


def _closed_port() -> int:
    return testing.free_port()


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


@pytest.fixture
async def cluster(client: rest.Client, api_server: testing.ServerThread) -> AsyncIterator[Cluster]:
    c = Cluster(client, api_server)
    await client.create(NS, {"metadata": {"name": c.namespace}})
    yield c
    await c.close()


async def test_discovery_lists_the_group_and_no_store_is_made(
    client: rest.Client, api_server: testing.ServerThread
) -> None:
    groups = await client.request("GET", "/apis")
    group = next(g for g in groups["groups"] if g["name"] == "metrics.k8s.io")
    assert group["preferredVersion"]["version"] == "v1beta1"
    legacy = await client.request("GET", BASE)
    by_name = {r["name"]: r for r in legacy["resources"]}
    assert by_name["nodes"]["kind"] == "NodeMetrics" and not by_name["nodes"]["namespaced"]
    assert by_name["pods"]["kind"] == "PodMetrics" and by_name["pods"]["namespaced"]
    assert by_name["pods"]["verbs"] == ["get", "list"]
    assert "storageVersionHash" not in by_name["pods"]
    aggregated = await client.request(
        "GET",
        "/apis",
        accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    )
    item = next(i for i in aggregated["items"] if i["metadata"]["name"] == "metrics.k8s.io")
    kinds = {r["resource"]: r["responseKind"]["kind"] for r in item["versions"][0]["resources"]}
    assert kinds == {"nodes": "NodeMetrics", "pods": "PodMetrics"}
    assert not [r for r in api_server.server.stores if r.group == "metrics.k8s.io"]


async def test_node_metrics_from_ready_nodes_that_answer(
    cluster: Cluster, client: rest.Client
) -> None:
    a = FakeAgent(summary(123456789, 12345 * KI))
    half = FakeAgent(summary(None, 4096))  # one sample so far: no rate yet
    unready = FakeAgent(summary(1, 4096))
    await cluster.node("a", agent=a, labels={"tier": "gold"})
    await cluster.node("mute", agent=None)  # nothing listens: skipped
    await cluster.node("half", agent=half)
    await cluster.node("unready", agent=unready, ready=False)
    got = await client.request(
        "GET", f"{BASE}/nodes", params={"labelSelector": f"metrics-test={cluster.id}"}
    )
    assert got["kind"] == "NodeMetricsList" and got["apiVersion"] == "metrics.k8s.io/v1beta1"
    (item,) = got["items"]
    assert item["metadata"]["name"] == cluster.name("a")
    assert item["metadata"]["labels"] == {"metrics-test": cluster.id, "tier": "gold"}
    assert item["usage"] == {"cpu": "123456789n", "memory": "12345Ki"}
    assert item["window"] == "10s" and item["timestamp"] == "2025-01-01T00:00:10Z"
    assert unready.requests == 0  # not Ready: not asked
    assert a.callers == [True]  # the API server's kubelet-client certificate

    gold = await client.request("GET", f"{BASE}/nodes", params={"labelSelector": "tier=gold"})
    assert [i["metadata"]["name"] for i in gold["items"]] == [cluster.name("a")]

    one = await client.request(
        "GET",
        f"{BASE}/nodes/{cluster.name('a')}",
        accept="application/vnd.kubernetes.protobuf, */*",
    )
    assert one["kind"] == "NodeMetrics" and one["usage"]["cpu"] == "123456789n"
    for missing in (cluster.name("mute"), "no-such-node"):
        with pytest.raises(errors.StatusError) as exc:
            await client.request("GET", f"{BASE}/nodes/{missing}")
        assert exc.value.code == 404
        assert exc.value.message == f'nodemetrics.metrics.k8s.io "{missing}" not found'


async def test_pod_metrics_by_namespace_selector_and_name(
    cluster: Cluster, client: rest.Client
) -> None:
    a, b = FakeAgent(summary(1, 4096)), FakeAgent(summary(1, 4096))
    node_a = await cluster.node("a", agent=a)
    node_b = await cluster.node("b", agent=b)
    node_mute = await cluster.node("mute", agent=None)
    web1 = await cluster.pod("web-1", node_a, labels={"app": "web"})
    web2 = await cluster.pod("web-2", node_b, labels={"app": "web"})
    db = await cluster.pod("db", node_a, labels={"app": "db"})
    half = await cluster.pod("half", node_b)
    await cluster.pod("lost", node_mute)
    await cluster.pod("pending", node_a, phase="Pending")
    a.summary["pods"] = [
        pod_entry(web1, {"app": (250_000_000, 64 * KI * KI), "sidecar": (1_000, 8 * KI)}),
        pod_entry(db, {"app": (2_000_000_000, 1024 * KI * KI)}),
    ]
    b.summary["pods"] = [
        pod_entry(web2, {"app": (5, 4 * KI)}),
        pod_entry(half, {"app": (None, 4 * KI)}),
    ]
    ns = cluster.namespace
    got = await client.request("GET", f"{BASE}/namespaces/{ns}/pods")
    assert got["kind"] == "PodMetricsList"
    assert [i["metadata"]["name"] for i in got["items"]] == ["db", "web-1", "web-2"]
    web = {i["metadata"]["name"]: i for i in got["items"]}["web-1"]
    assert web["metadata"]["namespace"] == ns and web["metadata"]["labels"] == {"app": "web"}
    assert web["containers"] == [
        {"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
        {"name": "sidecar", "usage": {"cpu": "1u", "memory": "8Ki"}},
    ]
    selected = await client.request(
        "GET", f"{BASE}/namespaces/{ns}/pods", params={"labelSelector": "app=web"}
    )
    assert [i["metadata"]["name"] for i in selected["items"]] == ["web-1", "web-2"]
    by_field = await client.request(
        "GET", f"{BASE}/namespaces/{ns}/pods", params={"fieldSelector": "metadata.name=db"}
    )
    assert [i["metadata"]["name"] for i in by_field["items"]] == ["db"]
    everywhere = await client.request("GET", f"{BASE}/pods", params={"labelSelector": "app=db"})
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere["items"]] == [
        (ns, "db")
    ]

    one = await client.request("GET", f"{BASE}/namespaces/{ns}/pods/db")
    assert one["kind"] == "PodMetrics" and one["containers"][0]["usage"]["cpu"] == "2"
    for missing in ("half", "lost", "pending", "nope"):
        with pytest.raises(errors.StatusError) as exc:
            await client.request("GET", f"{BASE}/namespaces/{ns}/pods/{missing}")
        assert exc.value.code == 404
        assert exc.value.message == f'podmetrics.metrics.k8s.io "{ns}/{missing}" not found'


async def test_watch_and_writes_are_not_allowed(cluster: Cluster, client: rest.Client) -> None:
    for method, path, params in (
        ("GET", f"{BASE}/nodes", {"watch": "true"}),
        ("GET", f"{BASE}/watch/nodes", {}),
        ("POST", f"{BASE}/namespaces/{cluster.namespace}/pods", {}),
        ("DELETE", f"{BASE}/nodes/x", {}),
    ):
        with pytest.raises(errors.StatusError) as exc:
            await client.request(method, path, params=params, body={} if method != "GET" else None)
        assert exc.value.code == 405, (method, path)


async def test_a_slow_agent_is_skipped_after_the_timeout(cluster: Cluster) -> None:
    class Slow(FakeAgent):
        async def _summary(self, request: web.Request) -> web.Response:
            await asyncio.sleep(1.5)
            return await super()._summary(request)

    slow = Slow(summary(1, 4096))
    name = await cluster.node("slow", agent=slow)
    pki = cluster.server.server.pki
    assert pki is not None
    kubelet_cert = pki.directory / "kubelet-client.crt"
    ctx = pki.ssl_client_context(kubelet_cert, pki.directory / "kubelet-client.key")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        api = rm.ResourceMetricsAPI(nodes=None, pods=None, session=lambda: session, timeout=0.2)  # type: ignore[arg-type]
        node = await cluster.client.get(NODES, name)
        started = asyncio.get_running_loop().time()
        assert await api.summary(node) is None
        assert asyncio.get_running_loop().time() - started < 2
        fast = FakeAgent(summary(7, 4096))
        await fast.start(cluster.tls)
        cluster.agents["fast"] = fast
        node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] = fast.port
        got = await api.summary(node)
        assert got is not None and got["node"]["cpu"]["usageNanoCores"] == 7
