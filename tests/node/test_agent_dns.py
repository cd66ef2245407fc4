"""What the agent hands the runtime for a pod's DNS: resolv.conf settings, hostname and
FQDN — and the event when they cannot be made. Fake runtime, real API server, no root."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.controllers import nodeipam
from pilothouse.node import agent as agent_module
from pilothouse.node import dns as node_dns
from pilothouse.node.runtime import fake, protocol
from pilothouse.testing import eventually, running_controllers

PODS = resources.DEFAULT.by_path("", "v1", "pods")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
EVENTS = resources.DEFAULT.by_path("", "v1", "events")
NODES = resources.DEFAULT.by_path("", "v1", "nodes")
assert PODS and NS and EVENTS and NODES


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


@pytest.fixture
async def node(
    client: rest.Client, api_server: testing.ServerThread, tmp_path: Path
) -> AsyncIterator[tuple[agent_module.Agent, fake.FakeRuntime]]:
    runtime = fake.FakeRuntime(fake.FakeImageService([fake.FakeImageService.make("busybox:1.36")]))
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.53\nsearch corp.example\n")
    agent = testing.node_agent(
        api_server, client, name="dns-" + uuid.uuid4().hex[:6], data_dir=tmp_path, runtime=runtime
    )
    agent.dns_settings = node_dns.Settings(resolv_conf=host)  # as --resolv-conf would
    async with running_controllers(client, {"nodeipam": nodeipam.NodeIPAMController}):
        await agent.start()
        try:
            yield agent, runtime
        finally:
            await agent.stop()
    await client.delete(NODES, agent.node_name)


def pod(node: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "1"]}],
            **spec,
        },
    }


async def test_sandbox_gets_cluster_dns_and_the_fqdn(
    node: tuple[agent_module.Agent, fake.FakeRuntime], client: rest.Client
) -> None:
    agent, runtime = node
    ns = "d-" + uuid.uuid4().hex[:8]
    await client.create(NS, {"metadata": {"name": ns}})
    spec = {"hostname": "db-0", "subdomain": "db", "setHostnameAsFQDN": True,
            "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}}  # fmt: skip
    await client.create(PODS, pod(agent.node_name, "db-0", **spec), ns)

    async def sandbox() -> protocol.SandboxConfig | None:
        found = [c for c in runtime.sandbox_configs.values() if c.namespace == ns]
        return found[0] if found else None

    cfg = await eventually(sandbox)
    assert cfg.dns == protocol.DNSConfig(
        ("10.43.0.10",),
        (f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"),
        ("ndots:2",),
    )
    assert (cfg.hostname, cfg.domain) == ("db-0", f"db.{ns}.svc.cluster.local")
    assert cfg.kernel_hostname == f"db-0.db.{ns}.svc.cluster.local"


async def test_an_fqdn_too_long_is_reported_not_run(
    node: tuple[agent_module.Agent, fake.FakeRuntime], client: rest.Client
) -> None:
    agent, runtime = node
    ns = "d-" + uuid.uuid4().hex[:8]
    await client.create(NS, {"metadata": {"name": ns}})
    spec = {"hostname": "h" * 40, "subdomain": "s" * 20, "setHostnameAsFQDN": True}
    await client.create(PODS, pod(agent.node_name, "long", **spec), ns)

    async def reported() -> list[str]:
        return [
            e["message"]
            for e in (await client.list(EVENTS, ns))["items"]
            if e["reason"] == "FailedCreatePodSandBox"
        ]

    messages = await eventually(reported)
    assert messages[0].startswith(
        "Failed to create pod sandbox: failed to construct FQDN from pod hostname and cluster "
        "domain, FQDN hhhh"
    )
    assert messages[0].endswith("is too long (64 characters is the max, 90 characters requested)")
    assert not [c for c in runtime.sandbox_configs.values() if c.namespace == ns]
