"""Leader election: one holder at a time; a silent holder is replaced after the lease runs out."""

from __future__ import annotations

import asyncio
import uuid

from pilothouse.client import leaderelection, rest


async def test_only_one_candidate_leads_and_another_takes_over(client: rest.Client) -> None:
    name = "le-" + uuid.uuid4().hex[:8]
    a = leaderelection.LeaderElector(
        client, name=name, identity="a", lease_duration=1.0, renew_deadline=0.8, retry_period=0.1
    )
    b = leaderelection.LeaderElector(
        client, name=name, identity="b", lease_duration=1.0, renew_deadline=0.8, retry_period=0.1
    )
    leading: list[str] = []
    a_started = asyncio.Event()

    async def lead_a() -> None:
        leading.append("a")
        a_started.set()
        await asyncio.sleep(3600)

    async def lead_b() -> None:
        leading.append("b")
        await asyncio.sleep(3600)

    task_a = asyncio.create_task(a.run(lead_a))
    await asyncio.wait_for(a_started.wait(), 10)
    task_b = asyncio.create_task(b.run(lead_b))
    await asyncio.sleep(1.5)
    assert leading == ["a"] and a.is_leader and not b.is_leader  # b waits while a renews
    task_a.cancel()  # a dies without releasing the lease
    await asyncio.gather(task_a, return_exceptions=True)
    for _ in range(100):
        if b.is_leader:
            break
        await asyncio.sleep(0.05)
    assert leading == ["a", "b"]
    lease = await client.get(leaderelection.LEASES, name, "kube-system")
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    task_b.cancel()
    await asyncio.gather(task_b, return_exceptions=True)


async def test_a_holder_stopped_cleanly_releases_the_lease(client: rest.Client) -> None:
    name = "le-" + uuid.uuid4().hex[:8]
    a = leaderelection.LeaderElector(
        client, name=name, identity="a", lease_duration=30.0, retry_period=0.1,
        release_on_cancel=True,
    )  # fmt: skip
    b = leaderelection.LeaderElector(
        client, name=name, identity="b", lease_duration=30.0, retry_period=0.1
    )
    a_leads, b_leads = asyncio.Event(), asyncio.Event()

    async def lead(event: asyncio.Event) -> None:
        event.set()
        await asyncio.sleep(3600)

    task_a = asyncio.create_task(a.run(lambda: lead(a_leads)))
    await asyncio.wait_for(a_leads.wait(), 10)
    task_b = asyncio.create_task(b.run(lambda: lead(b_leads)))
    await asyncio.sleep(0.5)
    assert not b.is_leader
    task_a.cancel()  # a clean stop: the lease is given up, not left to run out
    await asyncio.gather(task_a, return_exceptions=True)
    # b takes over within a few retries, far sooner than the 30 s lease.
    await asyncio.wait_for(b_leads.wait(), 3)
    lease = await client.get(leaderelection.LEASES, name, "kube-system")
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseDurationSeconds"] == 30
    task_b.cancel()
    await asyncio.gather(task_b, return_exceptions=True)
