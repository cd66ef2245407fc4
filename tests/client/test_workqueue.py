"""The work queue's promises: dedup, one worker per key, backoff on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from pilothouse.client.clock import FakeClock
from pilothouse.client.workqueue import ExponentialBackoff, ShutDown, WorkQueue


async def test_adding_a_queued_key_twice_queues_it_once() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_a_key_added_while_processing_comes_back_after_done() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    q.add("a")
    key = await q.get()
    q.add("a")  # changed again while a worker has it
    assert len(q) == 0  # not handed to a second worker
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_rate_limited_adds_back_off_exponentially_and_forget_resets() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue("t", clock=clock, backoff=ExponentialBackoff(base=1.0, cap=8.0))
    for expected in (1.0, 2.0, 4.0, 8.0, 8.0):  # doubling, capped
        q.add_rate_limited("k")
        await _settle()
        clock.advance(expected - 0.01)
        await _settle()
        assert len(q) == 0, f"queued before its {expected}s backoff"
        clock.advance(0.01)
        await _settle()
        assert len(q) == 1
        q.done(await q.get())
    assert q.retries("k") == 5
    q.forget("k")
    assert q.retries("k") == 0


async def test_add_after_waits_on_the_clock() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue("t", clock=clock)
    q.add_after("later", 10.0)
    q.add("now")
    assert await q.get() == "now"
    await asyncio.sleep(0)
    clock.advance(9.0)
    await asyncio.sleep(0)
    assert len(q) == 0
    clock.advance(1.0)
    for _ in range(3):
        await asyncio.sleep(0)
    assert await asyncio.wait_for(q.get(), 1) == "later"


async def test_shutdown_wakes_waiting_workers() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(getter, 1)
