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


async def test_a_pod_start_is_one_status_write_without_managed_fields(client: rest.Client) -> None:
    """As a kubelet's status patch: one write when the pod starts, carrying no
    managedFields (the status subresource keeps the live ones whatever the body says)."""
    node = f"mf-{uuid.uuid4().hex[:6]}-"
    sim = hollow.HollowCluster(client, count=1, name_prefix=node, heartbeat=3600, workers=1)
    sent: list[dict[str, Any]] = []
    update_status = client.update_status

    async def recording(resource: Any, obj: dict[str, Any], *args: Any, **kw: Any) -> Any:
        sent.append(obj)
        return await update_status(resource, obj, *args, **kw)

    client.update_status = recording  # type: ignore[method-assign]  # count the writes
    await sim.start()
    name = f"p-{uuid.uuid4().hex[:6]}"
    try:
        created = await client.create(
            hollow.PODS,
            {
                "metadata": {"name": name},
                "spec": {"nodeName": f"{node}0", "containers": [{"name": "c", "image": "i"}]},
            },
            "default",
        )
        assert created["metadata"]["managedFields"]

        async def running() -> bool:
            pod = await client.get(hollow.PODS, name, "default")
            return bool(pod["status"].get("phase") == "Running")

        await _until(running)
        await asyncio.sleep(0.1)  # a second write, were there one, would come now
        assert len(sent) == 1
        assert "managedFields" not in sent[0]["metadata"]
        assert sent[0]["metadata"]["resourceVersion"]
        pod = await client.get(hollow.PODS, name, "default")
        entries = {
            (e.get("manager"), e.get("subresource", "")) for e in pod["metadata"]["managedFields"]
        }
        creator = created["metadata"]["managedFields"][0]["manager"]
        # The creator's entry is kept, and the status write got one of its own.
        assert (creator, "") in entries
        assert (creator, "status") in entries
    finally:
        with contextlib.suppress(errors.StatusError):
            await client.delete(hollow.PODS, name, "default", grace_period_seconds=0)
        await sim.stop(unregister=True)
