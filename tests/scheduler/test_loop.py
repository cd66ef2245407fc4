"""The scheduling loop shares its event loop (with the API server in `pilothouse server`):
it must neither wait a whole event-loop turn per pod nor hold the loop for long."""

from __future__ import annotations

import asyncio
import contextlib
import time

from pilothouse.client import config, rest
from pilothouse.scheduler import queue, scheduler, types

from .builders import pod


async def _run(busy_per_pod: float, pods: int) -> tuple[int, int]:
    """Schedule ``pods`` pods whose cycle takes ``busy_per_pod`` seconds of CPU beside a
    neighbour that wants the loop too; returns (pods scheduled, neighbour's turns)."""
    client = rest.Client(config.local_socket("/nonexistent"))  # never asked
    sched = scheduler.Scheduler(client)
    done: list[str] = []

    async def schedule_one(qpi: queue.QueuedPodInfo) -> None:
        end = time.perf_counter() + busy_per_pod
        while time.perf_counter() < end:
            pass
        done.append(qpi.pod.key)
        sched.queue.done(qpi.pod.key)

    sched.schedule_one = schedule_one  # type: ignore[method-assign]
    for i in range(pods):
        sched.queue.add(types.make_pod_info(pod(f"p{i}")))
    turns = 0

    async def neighbour() -> None:
        nonlocal turns
        while len(done) < pods:
            turns += 1
            await asyncio.sleep(0)

    loop = asyncio.create_task(sched._loop())
    try:
        await asyncio.wait_for(neighbour(), 10)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await client.close()
    return len(done), turns


async def test_quick_cycles_do_not_wait_an_event_loop_turn_each() -> None:
    scheduled, turns = await _run(0.0, 200)
    assert scheduled == 200
    assert turns < 20  # one turn each would be 200


async def test_slow_cycles_still_let_the_event_loop_in() -> None:
    scheduled, turns = await _run(0.002, 40)  # 80 ms of cycles
    assert scheduled == 40
    # A turn once the loop has run YIELD_AFTER_S: after every third 2 ms pod here.
    assert turns >= 0.080 / (scheduler.YIELD_AFTER_S + 0.002) - 1
