"""The two-lane event loop (pilothouse/looplanes.py)."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from pilothouse import looplanes


@pytest.fixture
def loop() -> Iterator[looplanes.LanedEventLoop]:
    lp = looplanes.LanedEventLoop()
    yield lp
    lp.close()


def _run_turns(loop: asyncio.AbstractEventLoop, turns: int = 3) -> None:
    for _ in range(turns):
        loop.run_until_complete(asyncio.sleep(0))


def test_the_private_members_it_relies_on_have_their_shape() -> None:
    # CPython 3.11's selector loop: if these change, the loop must be rewritten.
    assert list(inspect.signature(asyncio.BaseEventLoop._call_soon).parameters) == [
        "self",
        "callback",
        "args",
        "context",
    ]
    assert list(inspect.signature(asyncio.BaseEventLoop._add_callback).parameters) == [
        "self",
        "handle",
    ]
    run_once = inspect.getsource(asyncio.BaseEventLoop._run_once)
    assert "self._ready.popleft()" in run_once and "ntodo = len(self._ready)" in run_once
    lp = looplanes.LanedEventLoop()
    try:
        assert isinstance(lp._ready, looplanes.LanedQueue)
    finally:
        lp.close()


def test_fast_callbacks_run_first_and_each_lane_keeps_its_order(
    loop: looplanes.LanedEventLoop,
) -> None:
    order: list[str] = []
    fast = looplanes.fast_context()
    loop.call_soon(order.append, "n0")
    loop.call_soon(order.append, "f0", context=fast)
    loop.call_soon(order.append, "n1")
    loop.call_soon(order.append, "f1", context=fast)
    loop.call_soon(order.append, "f2", context=fast)
    _run_turns(loop)
    assert order == ["f0", "f1", "f2", "n0", "n1"]


def test_a_task_that_marks_itself_fast_has_its_later_steps_in_the_fast_lane(
    loop: looplanes.LanedEventLoop,
) -> None:
    order: list[str] = []

    async def short() -> None:
        looplanes.FAST.set(True)
        await asyncio.sleep(0)  # queued after the normal callbacks below, runs first
        order.append("short")

    async def main() -> None:
        task = asyncio.ensure_future(short())
        await asyncio.sleep(0)  # its first step runs (normal lane)
        for i in range(3):
            loop.call_soon(order.append, f"n{i}")
        await task

    loop.run_until_complete(main())
    assert order[0] == "short"


def test_a_flood_of_fast_work_leaves_room_for_the_normal_lane(
    loop: looplanes.LanedEventLoop,
) -> None:
    order: list[str] = []
    fast = looplanes.fast_context()
    loop.call_soon(order.append, "n0")
    loop.call_soon(order.append, "n1")
    for i in range(looplanes.STREAK * 2 + 1):
        loop.call_soon(order.append, f"f{i}", context=fast)
    _run_turns(loop)
    # STREAK fast ones, then a normal one, STREAK more, the other normal one, the last.
    assert order.index("n0") == looplanes.STREAK
    assert order.index("n1") == 2 * looplanes.STREAK + 1
    assert order[-1] == f"f{looplanes.STREAK * 2}"


def test_io_callbacks_run_before_the_normal_lane(loop: looplanes.LanedEventLoop) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    order: list[str] = []
    try:
        loop.add_reader(a, lambda: order.append("read:" + a.recv(16).decode()))
        _run_turns(loop, 1)
        b.send(b"x")
        for i in range(3):
            loop.call_soon(order.append, f"n{i}")
        _run_turns(loop)
        assert order == ["read:x", "n0", "n1", "n2"]
    finally:
        loop.remove_reader(a)
        a.close()
        b.close()


def _blockers(
    loop: asyncio.AbstractEventLoop, count: int, at: int, then: Callable[[], object]
) -> list[int]:
    """``count`` normal callbacks of 1 ms each; the one numbered ``at`` calls ``then``."""
    done: list[int] = []

    def block(i: int) -> None:
        time.sleep(0.001)
        if i == at:
            then()
        done.append(i)

    for i in range(count):
        loop.call_soon(block, i)
    return done


@pytest.mark.parametrize("laned", [True, False])
def test_bytes_that_arrive_mid_turn_are_read_within_the_turn(laned: bool) -> None:
    # The same turn on asyncio's own loop reads them only after all of it: the contrast
    # is what the laned loop is for.
    loop = looplanes.LanedEventLoop() if laned else asyncio.SelectorEventLoop()
    a, b = socket.socketpair()
    a.setblocking(False)
    read_after: list[int] = []  # how many blockers had finished when the bytes were read
    try:
        blockers = _blockers(loop, 100, at=10, then=lambda: b.send(b"x"))
        loop.add_reader(a, lambda: (a.recv(16), read_after.append(len(blockers))))
        _run_turns(loop)
        assert len(blockers) == 100 and len(read_after) == 1
        if laned:
            assert isinstance(loop, looplanes.LanedEventLoop)
            assert loop.mid_turn_polls >= 1
            # Sent after the 11th; polled every POLL_INTERVAL (2 ms) of the turn.
            assert read_after[0] < 50, read_after
        else:
            assert read_after[0] == 100
    finally:
        loop.remove_reader(a)
        a.close()
        b.close()
        loop.close()


def test_the_queue_counts_both_lanes_and_clears_both(loop: looplanes.LanedEventLoop) -> None:
    ready = loop._ready
    assert not ready and len(ready) == 0
    loop.call_soon(print)
    loop.call_soon(print, context=looplanes.fast_context())
    assert ready and len(ready) == 2 and len(ready.fast) == 1
    ready.clear()
    assert not ready and len(ready) == 0


def test_threadsafe_callbacks_and_timers_still_run(loop: looplanes.LanedEventLoop) -> None:
    seen: list[str] = []

    async def main() -> None:
        loop.call_soon_threadsafe(seen.append, "threadsafe")
        loop.call_later(0.01, seen.append, "timer")
        await asyncio.sleep(0.05)

    loop.run_until_complete(main())
    assert seen == ["threadsafe", "timer"]
