"""``kubectl top`` end to end: kubectl → API server (metrics.k8s.io) → node agent → usage.

The agent runs the fake runtime; its stats sources return fixed usage, so the
printed tables are exact. kubectl asks for protobuf first and reads our JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, rest
from pilothouse.controllers import nodeipam
from pilothouse.node import agent as agent_module
from pilothouse.node.runtime import fake, protocol

pytestmark = pytest.mark.kubectl

PODS = resources.DEFAULT.by_path("", "v1", "pods")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
NODES = resources.DEFAULT.by_path("", "v1", "nodes")
assert PODS and NS and NODES
MIB = 1024 * 1024


class FixedUsage:
    """Every container uses 100m and 32Mi, the node 250m and 1Gi; ``tick`` moves time 10 s on."""

    def __init__(self) -> None:
        self.base = time.time() + 100  # later than any sample the agent took on its own
        self.ticks = 0

    def now(self) -> float:
        return self.base + 10 * self.ticks

    async def container(self, container_id: str) -> protocol.ContainerStats:
        return protocol.ContainerStats(
            timestamp=self.now(),
            cpu_usage_ns=100_000_000 * 10 * self.ticks,
            memory_working_set=32 * MIB,
        )

    def node(self) -> protocol.ContainerStats:
        return protocol.ContainerStats(
            timestamp=self.now(),
            cpu_usage_ns=250_000_000 * 10 * self.ticks,
            memory_working_set=1024 * MIB,
        )


@pytest.fixture
async def agent(
    api_server: testing.ServerThread, tmp_path: Path
) -> AsyncIterator[agent_module.Agent]:
    client = rest.Client(config.local_socket(api_server.server.socket_path))
    name = "top-" + uuid.uuid4().hex[:6]
    runtime = fake.FakeRuntime(fake.FakeImageService([fake.FakeImageService.make("busybox:1.36")]))
    node_agent = testing.node_agent(
        api_server, client, name=name, data_dir=tmp_path, runtime=runtime
    )
    try:
        async with testing.running_controllers(client, {"nodeipam": nodeipam.NodeIPAMController}):
            await node_agent.start()
            try:
                yield node_agent
            finally:
                await node_agent.stop()
    finally:
        with contextlib.suppress(errors.StatusError):
            await client.delete(NODES, name)
        await client.close()


async def _running(client: rest.Client, ns: str, name: str) -> bool:
    pod = await client.get(PODS, name, ns)
    return (pod.get("status") or {}).get("phase") == "Running"


def _rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.strip().splitlines()]


async def test_kubectl_top_nodes_and_pods(agent: agent_module.Agent, kubectl: Any) -> None:
    client = agent.client
    ns = "top-" + uuid.uuid4().hex[:8]
    await client.create(NS, {"metadata": {"name": ns}})
    for name in ("web", "db"):
        await client.create(
            PODS,
            {
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {
                    "nodeName": agent.node_name,
                    "containers": [
                        {"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"]}
                    ],
                },
            },
            ns,
        )
    for name in ("web", "db"):
        await testing.eventually(lambda name=name: _running(client, ns, name))

    assert agent.stats is not None
    usage = FixedUsage()
    agent.stats.container_stats = usage.container
    agent.stats.node_stats = usage.node
    await agent.stats.sample()
    usage.ticks += 1
    await agent.stats.sample()

    out = await asyncio.to_thread(kubectl, "top", "node", agent.node_name)
    header, row = _rows(out.stdout)
    assert header == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert row[0] == agent.node_name and row[1] == "250m" and row[3] == "1024Mi"
    assert re.fullmatch(r"\d+%", row[2]) and re.fullmatch(r"\d+%", row[4])

    listed = await asyncio.to_thread(kubectl, "top", "nodes")
    assert [agent.node_name, "250m"] in [r[:2] for r in _rows(listed.stdout)]

    pods = await asyncio.to_thread(kubectl, "top", "pods", "-n", ns)
    assert _rows(pods.stdout) == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"],
        ["db", "100m", "32Mi"],
        ["web", "100m", "32Mi"],
    ]
    one = await asyncio.to_thread(kubectl, "top", "pod", "web", "-n", ns, "--containers")
    assert _rows(one.stdout) == [
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
        ["web", "app", "100m", "32Mi"],
    ]
    selected = await asyncio.to_thread(kubectl, "top", "pods", "-n", ns, "-l", "app=db")
    assert [r[0] for r in _rows(selected.stdout)[1:]] == ["db"]
    json_ = await asyncio.to_thread(
        kubectl, "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/web"
    )
    assert '"cpu":"100m"' in json_.stdout and '"memory":"32Mi"' in json_.stdout


async def test_agent_metrics_are_scraped_with_the_api_servers_certificate(
    agent: agent_module.Agent, api_server: testing.ServerThread
) -> None:
    pki = api_server.server.pki
    assert pki is not None
    trusted = pki.ssl_client_context(
        pki.directory / "kubelet-client.crt", pki.directory / "kubelet-client.key"
    )
    trusted.check_hostname = False
    url = f"https://127.0.0.1:{agent.port}/metrics"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted)) as session:

        async def relists() -> float:
            async with session.get(url) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await resp.text()
            assert "# TYPE kubelet_pod_start_total_duration_seconds histogram" in text
            assert "# TYPE kubelet_running_pods gauge" in text
            match = re.search(r"^kubelet_pleg_relist_duration_seconds_count (\S+)$", text, re.M)
            assert match is not None
            return float(match.group(1))

        first = await relists()
        await testing.eventually(lambda: _more(relists, first))
    anonymous = pki.ssl_client_context()
    anonymous.check_hostname = False
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=anonymous)) as session:
        with pytest.raises(aiohttp.ClientError):  # no client certificate: refused
            async with session.get(url) as resp:
                await resp.read()


async def _more(count: Any, than: float) -> bool:
    return bool(await count() > than)
