"""The node agent's loops under faults, against a real API server and the fake runtime.

* Every supervised loop of the agent, killed in turn by an injected exception, is
  restarted and logged once with its traceback, and the agent still runs pods
  afterwards; its HTTPS server (FATAL) fails the agent's supervisor instead.
* A connection dropped in the middle of a heartbeat (the Lease update sent, no
  answer) is logged, and the next heartbeat happens: the loop does not die.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import supervisor, testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.controllers import nodeipam
from pilothouse.node import routes, servicenet
from pilothouse.node.runtime import fake
from pilothouse.proxy import fake as fake_kernel
from pilothouse.testing import eventually, running_controllers

PODS = resources.DEFAULT.by_path("", "v1", "pods")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
NODES = resources.DEFAULT.by_path("", "v1", "nodes")
LEASES = resources.DEFAULT.by_path("coordination.k8s.io", "v1", "leases")
assert PODS and NS and NODES and LEASES
LEASE_UPDATE = b"PUT /apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"


def runtime() -> fake.FakeRuntime:
    return fake.FakeRuntime(fake.FakeImageService([fake.FakeImageService.make("busybox:1.36")]))


def probed_pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["sleep", "3600"],
                    "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
                }
            ],
        },
    }


async def running(client: rest.Client, ns: str, name: str) -> bool:
    st = (await client.get(PODS, name, ns)).get("status") or {}
    return st.get("phase") == "Running"


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    async with running_controllers(c, {"nodeipam": nodeipam.NodeIPAMController}):
        yield c
    await c.close()


@pytest.fixture
async def ns(client: rest.Client) -> str:
    name = "af-" + uuid.uuid4().hex[:8]
    await client.create(NS, {"metadata": {"name": name}})
    return name


async def test_each_loop_of_the_agent_is_restarted_and_logged_once(
    api_server: testing.ServerThread,
    client: rest.Client,
    ns: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "agent-" + uuid.uuid4().hex[:6]
    tree = supervisor.Supervisor("agent", backoff_initial=0.05)
    # With the service proxy and the host-gw routes too (a fake kernel and route table).
    network = servicenet.ServiceNetwork(
        kernel=fake_kernel.FakeKernel(), routes=routes.FakeRouteTable()
    )
    agent = testing.node_agent(
        api_server,
        client,
        name=name,
        data_dir=tmp_path,
        runtime=runtime(),
        supervisor=tree,
        network=network,
    )
    await agent.start()
    try:
        await client.create(PODS, probed_pod("probed", name), ns)
        await eventually(lambda: running(client, ns, "probed"))
        children = list(tree.walk())
        paths = [p for p, st in children if st.policy is not supervisor.Policy.FATAL]
        assert [p for p, st in children if st.policy is supervisor.Policy.FATAL] == ["server"]
        for expected in (
            "heartbeat",
            "node-status",
            "pleg",
            "log-rotation",
            "stats",
            "proxy",
            "routes",
            "events kube-proxy",
        ):
            assert expected in paths
        assert any(p.startswith("pod-workers/pod-worker-") for p in paths)
        assert any(p.startswith("probes/probe-readiness-") for p in paths)
        assert any(p.startswith("informer pods") for p in paths)
        assert any(p.startswith("status-manager-") for p in paths)

        with caplog.at_level(logging.ERROR, logger="pilothouse.supervisor"):
            for path in paths:
                tree.inject_failure(path, RuntimeError(f"injected into {path}"))

                async def back(path: str = path) -> bool:
                    owner, child = tree.find(path)
                    st = {s.name: s for s in owner.status()}[child]
                    return st.state == "running" and st.restarts == 1

                await eventually(back, timeout=10)
                parent, _, child = path.rpartition("/")
                owner = f"agent/{parent}" if parent else "agent"
                logged = [
                    r
                    for r in caplog.records
                    if r.getMessage().startswith(f"{owner}: {child} failed; restarting")
                ]
                assert len(logged) == 1 and logged[0].exc_info is not None, path

        # The agent still does its work: the pod is still there and ready, a new one runs.
        await client.create(PODS, probed_pod("after", name), ns)
        await eventually(lambda: running(client, ns, "after"))
        assert tree.problems() == []
    finally:
        await agent.stop()
        await client.delete(NODES, name)


async def test_the_agent_server_failing_fails_the_agent(
    api_server: testing.ServerThread, client: rest.Client, tmp_path: Path
) -> None:
    name = "agent-" + uuid.uuid4().hex[:6]
    tree = supervisor.Supervisor("agent")
    agent = testing.node_agent(
        api_server, client, name=name, data_dir=tmp_path, runtime=runtime(), supervisor=tree
    )
    await agent.start()
    try:
        tree.inject_failure("server", OSError("port 10250 gone"))
        with pytest.raises(supervisor.ChildFailed) as info:
            await asyncio.wait_for(tree.wait(), 10)
        assert str(info.value) == "agent/server: OSError: port 10250 gone"
    finally:
        await agent.stop()
        await client.delete(NODES, name)


class DroppingProxy:
    """A Unix-socket proxy in front of the API server's socket that, once, forwards a
    Lease update and then cuts the connection without an answer."""

    def __init__(self, path: Path, upstream: str) -> None:
        self.path = path
        self.upstream = upstream
        self.dropped = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)

        async def down() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        pumping = asyncio.ensure_future(down())
        try:
            while data := await reader.read(65536):
                if LEASE_UPDATE in data and not self.dropped.is_set():
                    self.dropped.set()
                    pumping.cancel()  # its answer never comes back …
                    up_writer.write(data)
                    await up_writer.drain()
                    await asyncio.sleep(0.05)  # … though the server has it, and may apply it
                    return
                up_writer.write(data)
                await up_writer.drain()
        finally:
            pumping.cancel()
            writer.close()
            up_writer.close()


async def test_a_connection_dropped_mid_heartbeat_is_survived(
    api_server: testing.ServerThread,
    client: rest.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = DroppingProxy(tmp_path / "proxy.sock", str(api_server.server.socket_path))
    await proxy.start()
    through = rest.Client(config.local_socket(proxy.path))
    name = "agent-" + uuid.uuid4().hex[:6]
    tree = supervisor.Supervisor("agent")
    agent = testing.node_agent(
        api_server, through, name=name, data_dir=tmp_path / "agent", runtime=runtime(),
        supervisor=tree,
    )  # fmt: skip
    try:
        with caplog.at_level(logging.INFO, logger="pilothouse.node.agent"):
            await agent.start()
            await asyncio.wait_for(proxy.dropped.wait(), 10)

            async def noticed() -> bool:
                return "renewing the lease failed" in caplog.text

            await eventually(noticed, timeout=10)
            seen = (await client.get(LEASES, name, "kube-node-lease"))["spec"]["renewTime"]

            async def renewed_again() -> bool:
                lease = await client.get(LEASES, name, "kube-node-lease")
                return bool(lease["spec"]["renewTime"] != seen)

            await eventually(renewed_again, timeout=10)
            await eventually(lambda: _logged(caplog, "lease renewed again"), timeout=5)
        heartbeat = {s.name: s for s in tree.status()}["heartbeat"]
        assert (heartbeat.state, heartbeat.restarts) == ("running", 0)  # handled in the loop
        warned = [m for m in caplog.messages if "renewing the lease failed" in m]
        assert len(warned) == 1 and warned[0].endswith(": Server disconnected")
    finally:
        await agent.stop()
        await through.close()
        await proxy.stop()
        await client.delete(NODES, name)


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return text in caplog.text
