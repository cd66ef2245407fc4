"""Which requests keep the loop's fast lane (apiserver/lanes.py), and what that does on a
busy server."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from pilothouse import looplanes, testing
from pilothouse.apiserver import eagertasks, lanes
from pilothouse.client import config, rest


@pytest.mark.parametrize(
    ("method", "path", "query", "short"),
    [
        ("GET", "/api/v1/namespaces/default/configmaps/one", "", True),
        ("HEAD", "/api/v1/namespaces/default/configmaps/one", "", True),
        ("GET", "/api/v1/namespaces/default/pods/web/status", "", True),
        ("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale", "", True),
        ("GET", "/api/v1/nodes/n1", "", True),
        ("GET", "/api/v1/namespaces/default", "", True),
        ("GET", "/apis/apps/v1", "", True),
        ("GET", "/apis", "", True),
        ("GET", "/api", "", True),
        ("GET", "/version", "", True),
        ("GET", "/readyz/etcd", "", True),
        # lists, watches, streams, the rest
        ("GET", "/api/v1/namespaces/default/configmaps", "", False),
        ("GET", "/api/v1/pods", "limit=500", False),
        ("GET", "/api/v1/namespaces", "", False),
        ("GET", "/api/v1/namespaces/default/configmaps/one", "watch=true", False),
        ("GET", "/api/v1/namespaces/default/configmaps", "watch=1", False),
        ("GET", "/api/v1/watch/namespaces/default/configmaps/one", "", False),
        ("GET", "/api/v1/namespaces/default/pods/web/log", "follow=true", False),
        ("GET", "/api/v1/namespaces/default/pods/web/log", "", False),
        ("GET", "/api/v1/namespaces/default/pods/web/exec", "command=ls", False),
        ("GET", "/api/v1/namespaces/default/services/web/proxy", "", False),
        ("GET", "/metrics", "", False),
        ("GET", "/openapi/v2", "", False),
        ("GET", "/", "", False),
        ("PUT", "/api/v1/namespaces/default/pods/web/status", "", False),
        ("PATCH", "/api/v1/namespaces/default/configmaps/one", "", False),
        ("POST", "/api/v1/namespaces/default/configmaps", "", False),
        ("DELETE", "/api/v1/namespaces/default/configmaps/one", "", False),
    ],
)
def test_short_reads(method: str, path: str, query: str, short: bool) -> None:
    assert lanes.is_short_read(method, path, query) is short


def test_connections_start_in_the_fast_lane_only_on_a_laned_loop() -> None:
    async def connection() -> bool:
        return looplanes.FAST.get()

    def run(loop: asyncio.AbstractEventLoop) -> bool:
        factory = eagertasks.install(loop, [], [connection.__code__])
        if factory is None:
            return looplanes.FAST.get()
        result: bool = loop.run_until_complete(loop.create_task(connection()))
        return result

    laned = looplanes.LanedEventLoop()
    plain = asyncio.SelectorEventLoop()
    try:
        assert run(laned) is True
        assert run(plain) is False
        assert looplanes.FAST.get() is False  # the marking stays in the task's context
    finally:
        laned.close()
        plain.close()


def _flood(server: testing.ServerThread, count: int) -> tuple[list[int], threading.Event]:
    """Queue ``count`` callbacks of 2 ms each in the server loop's normal lane, as a
    rollout's writes fill it; returns the list they fill and an event set once queued."""
    done: list[int] = []
    queued = threading.Event()

    def block(i: int) -> None:
        time.sleep(0.002)
        done.append(i)

    def queue() -> None:
        for i in range(count):
            server.loop.call_soon(block, i)
        queued.set()

    server.loop.call_soon_threadsafe(queue)
    return done, queued


async def test_on_a_busy_loop_a_get_is_answered_first_and_a_write_in_its_turn(
    api_server: testing.ServerThread,
) -> None:
    assert isinstance(api_server.loop, looplanes.LanedEventLoop)
    client = rest.Client(config.load_kubeconfig(api_server.kubeconfig))  # TLS, as kubectl
    path = "/api/v1/namespaces/default/configmaps"
    body: dict[str, Any] = {"metadata": {"name": "lanes-probe"}, "data": {"a": "1"}}
    try:
        await client.request("POST", path, body=body)
        await client.request("GET", f"{path}/lanes-probe")  # a connection, warm
        count = 200

        done, queued = _flood(api_server, count)
        await asyncio.to_thread(queued.wait, 10)
        got = await client.request("GET", f"{path}/lanes-probe")
        answered_after = len(done)
        assert got["data"] == {"a": "1"}
        # On asyncio's own loop the GET is read after the whole queue (count): here
        # within a few of the 2 ms callbacks.
        assert answered_after < count // 2, answered_after
        await asyncio.to_thread(lambda: [time.sleep(0.05) for _ in range(40) if len(done) < count])
        assert len(done) == count

        done, queued = _flood(api_server, count)
        await asyncio.to_thread(queued.wait, 10)
        await client.request(
            "PATCH", f"{path}/lanes-probe", body={"data": {"a": "2"}}, content_type=rest.MERGE_PATCH
        )
        # A write steps back into the normal lane: it runs after what was queued before.
        assert len(done) == count
    finally:
        await client.request("DELETE", f"{path}/lanes-probe")
        await client.close()
