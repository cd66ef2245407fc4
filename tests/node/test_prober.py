"""One probe run against loopback endpoints: results and the messages events carry.

Unreachable endpoints are worded as upstream's probes word them (Go's net errors),
since that is what ``kubectl describe`` users search for.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pilothouse.node import prober
from pilothouse.node.runtime import fake


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="fine")

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500)

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(3)  # past the probe's 1 s timeout
        return web.Response()

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/broken", broken)
    app.router.add_get("/hang", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    await runner.cleanup()


async def _run(spec: dict[str, Any], session: aiohttp.ClientSession) -> prober.ProbeResult:
    return await prober.run_probe(
        spec,
        container={"name": "main"},
        container_id="none",
        pod_ip="127.0.0.1",
        runtime=fake.FakeRuntime(),
        session=session,
    )


async def test_http_get_results(session: aiohttp.ClientSession, http_port: int) -> None:
    ok = await _run({"httpGet": {"path": "/ok", "port": http_port}}, session)
    assert ok.ok and ok.message == "fine"
    broken = await _run({"httpGet": {"path": "/broken", "port": http_port}}, session)
    assert not broken.ok and broken.message == "HTTP probe failed with statuscode: 500"
    slow = await _run(
        {"httpGet": {"path": "/hang", "port": http_port}, "timeoutSeconds": 1}, session
    )
    assert not slow.ok
    assert slow.message == (
        f'Get "http://127.0.0.1:{http_port}/hang": context deadline exceeded'
        " (Client.Timeout exceeded while awaiting headers)"
    )


async def test_unreachable_endpoints_are_worded_as_upstream(
    session: aiohttp.ClientSession,
) -> None:
    port = _closed_port()
    http = await _run({"httpGet": {"path": "/", "port": port}}, session)
    assert not http.ok
    assert http.message == (
        f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )
    tcp = await _run({"tcpSocket": {"port": port}}, session)
    assert not tcp.ok
    assert tcp.message == f"dial tcp 127.0.0.1:{port}: connect: connection refused"


async def test_tcp_socket_succeeds_on_a_listening_port(
    session: aiohttp.ClientSession, http_port: int
) -> None:
    assert (await _run({"tcpSocket": {"port": http_port}}, session)).ok


@pytest.fixture
async def grpc_health() -> AsyncIterator[tuple[int, Any]]:
    import grpc  # type: ignore[import-untyped]
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await servicer.set("db", health_pb2.HealthCheckResponse.NOT_SERVING)
    yield port, servicer
    await server.stop(None)


async def test_grpc_probes_use_the_standard_health_service(
    session: aiohttp.ClientSession, grpc_health: tuple[int, Any]
) -> None:
    port, _ = grpc_health
    assert (await _run({"grpc": {"port": port}}, session)).ok
    db = await _run({"grpc": {"port": port, "service": "db"}}, session)
    assert not db.ok and db.message == 'service unhealthy (responded with "NOT_SERVING")'
    closed = _closed_port()
    gone = await _run({"grpc": {"port": closed}, "timeoutSeconds": 1}, session)
    assert not gone.ok
    assert gone.message.startswith(
        f'timeout: failed to connect service "127.0.0.1:{closed}" within 1s'
    )
