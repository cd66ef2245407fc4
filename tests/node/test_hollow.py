"""Hollow nodes' heartbeats: one update per renewal, as the kubelet's lease controller.

The API server runs in a thread (the session's ``api_server``); the heartbeat loop
runs on a fake clock, so each renewal is one step the test takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.api import errors
from pilothouse.client import config, rest
from pilothouse.client.clock import FakeClock
from pilothouse.node import hollow


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_heartbeats_update_the_lease_without_reading_it_first(client: rest.Client) -> None:
    clock = FakeClock()
    name = f"hb-{uuid.uuid4().hex[:6]}-0"
    sim = hollow.HollowCluster(
        client, count=1, name_prefix=name[:-1], heartbeat=10, run_pods=False, clock=clock
    )
    await sim.start()
    try:
        observer = rest.Client(client.config)

        async def lease() -> dict[str, Any]:
            return await observer.get(hollow.LEASES, name, "kube-node-lease")

        renewals: list[str] = [(await lease())["spec"]["renewTime"]]

        async def renewed() -> bool:
            got = (await lease())["spec"]["renewTime"]
            if got != renewals[-1]:
                renewals.append(got)
                return True
            return False

        # Registering created the Lease and kept it as the API returned it: from then on
        # each renewal is one update.
        before = client.requests
        for _ in range(3):
            clock.advance(10)
            await _until(renewed)
        assert client.requests - before == 3

        # Someone else writes the Lease: our copy is stale, the update conflicts; the
        # heartbeat reads it afresh and renews all the same.
        current = await lease()
        current["spec"]["holderIdentity"] = "someone-else"
        await observer.update(hollow.LEASES, current)
        clock.advance(10)
        await _until(renewed)
        assert (await lease())["spec"]["holderIdentity"] == name

        # Deleted: made again.
        await observer.delete(hollow.LEASES, name, "kube-node-lease")
        clock.advance(10)

        async def recreated() -> bool:
            try:
                await lease()
            except errors.StatusError as exc:
                if errors.is_not_found(exc):
                    return False
                raise
            return True

        await _until(recreated)
        await observer.close()
    finally:
        await sim.stop(unregister=True)


async def test_a_slow_renewal_holds_up_no_other_node(client: rest.Client) -> None:
    """One node's renewal hanging (a slow API server) must not delay the others' — nor
    start a second renewal of the same node."""
    clock = FakeClock()
    sim = hollow.HollowCluster(client, count=3, name_prefix="slow-", heartbeat=3, clock=clock)
    stuck = asyncio.Event()
    calls: list[str] = []

    async def renew(name: str) -> None:
        calls.append(name)
        if name == "slow-0":
            await stuck.wait()

    sim._renew = renew  # type: ignore[method-assign]  # no API needed: only the loop's pacing
    loop = asyncio.create_task(sim._heartbeats())
    await asyncio.sleep(0)  # the loop takes its first sleep at t=0
    try:
        for _ in range(6):  # two rounds, one node per second
            clock.advance(1)
            for _ in range(5):
                await asyncio.sleep(0)
        assert calls == ["slow-0", "slow-1", "slow-2", "slow-1", "slow-2"]
        stuck.set()
        for _ in range(3):
            clock.advance(1)
            for _ in range(5):
                await asyncio.sleep(0)
        assert calls[5:] == ["slow-0", "slow-1", "slow-2"]
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
