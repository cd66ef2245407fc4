"""heap.Collector: full collections over what is new, the whole heap only when idle or late."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

from pilothouse import heap


class FakeGC:
    """The collector's state as counts: ``young`` objects not frozen, ``frozen`` frozen."""

    def __init__(self, frozen: int) -> None:
        self.callbacks: list[Any] = []
        self.frozen = frozen
        self.young = 0
        self.collections = 0
        self.threshold = (700, 10, 10)

    def freeze(self) -> None:
        self.frozen += self.young
        self.young = 0

    def unfreeze(self) -> None:
        self.young += self.frozen
        self.frozen = 0

    def collect(self) -> int:
        self.collections += 1
        for hook in self.callbacks:
            hook("stop", {"generation": 2, "collected": 0, "uncollectable": 0})
        return 0

    def get_freeze_count(self) -> int:
        return self.frozen

    def get_threshold(self) -> tuple[int, int, int]:
        return self.threshold

    def set_threshold(self, threshold0: int, threshold1: int, threshold2: int, /) -> None:
        self.threshold = (threshold0, threshold1, threshold2)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.used = 0.0

    def tick(self, seconds: float, *, busy: float) -> None:
        self.now += seconds
        self.used += seconds * busy


class Heap:
    """The heap's size as the fake collector sees it: what is frozen or young."""

    def __init__(self, fake: FakeGC) -> None:
        self.fake = fake

    def __call__(self) -> int:
        return self.fake.frozen + self.fake.young

    def grow(self, objects: int) -> None:
        """``objects`` survive a collection (the hook freezes them)."""
        self.fake.young += objects
        for hook in self.fake.callbacks:
            hook("stop", {"generation": 0, "collected": 0, "uncollectable": 0})


def collector(fake: FakeGC, clock: Clock, **kw: Any) -> heap.Collector:
    return heap.Collector(
        collector=fake,
        clock=lambda: clock.now,
        cpu=lambda: clock.used,
        size=Heap(fake),
        max_delay=60,
        **kw,
    )


def test_survivors_of_every_collection_are_frozen_young_ones_too() -> None:
    fake = FakeGC(frozen=1000)
    c = collector(fake, Clock())
    fake.young = 200
    c.after_collection("start", {"generation": 0})
    assert fake.frozen == 1000  # nothing is frozen before the collection has run
    c.after_collection("stop", {"generation": 0})
    assert (fake.frozen, fake.young) == (1200, 0)
    fake.young = 50
    c.after_collection("stop", {"generation": 1})
    assert (fake.frozen, fake.young) == (1250, 0)


def started(fake: FakeGC, clock: Clock) -> heap.Collector:
    c = collector(fake, clock)
    fake.callbacks.append(c.after_collection)
    return c


def test_no_whole_heap_walk_until_the_heap_grew_by_a_quarter() -> None:
    fake, clock = FakeGC(frozen=1000), Clock()
    c = started(fake, clock)
    size = Heap(fake)
    size.grow(250)
    clock.tick(1, busy=0)
    assert not c.step()
    size.grow(1)
    clock.tick(1, busy=0)
    assert c.step()
    assert fake.collections == 1
    assert c.baseline == 1251  # the next walk waits for 25 % more than this
    size.grow(312)
    clock.tick(1, busy=0)
    assert not c.step()


def test_a_busy_process_defers_the_walk_until_idle() -> None:
    fake, clock = FakeGC(frozen=1000), Clock()
    c = started(fake, clock)
    Heap(fake).grow(1000)
    for _ in range(30):
        clock.tick(1, busy=0.9)
        assert not c.step()
    clock.tick(1, busy=0.1)
    assert c.step()
    assert fake.collections == 1


def test_a_process_that_is_never_idle_walks_at_the_latest_after_max_delay() -> None:
    fake, clock = FakeGC(frozen=1000), Clock()
    c = started(fake, clock)
    Heap(fake).grow(1000)
    walked = []
    for second in range(1, 200):
        clock.tick(1, busy=1.0)
        if c.step():
            walked.append(second)
    # Due from the first check; then every 60 s of being due (the fake heap stays
    # above the grown baseline only once: the walk resets it).
    assert walked == [61]


class Node:
    other: Any = None
    payload: Any = None


def test_a_walk_collects_cyclic_garbage_that_survived_a_young_collection() -> None:
    c = heap.Collector()  # the real gc module
    gc.collect()
    try:
        gc.callbacks.append(c.after_collection)
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        gc.collect(0)  # a and b survive a young collection: the hook freezes them
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()
        assert gone() is not None  # frozen: the cycle is out of the collector's sight
        c.walk()
        assert gone() is None
    finally:
        gc.callbacks.remove(c.after_collection)
        gc.unfreeze()


def test_cyclic_garbage_held_back_by_freezing_makes_the_walk_due() -> None:
    """Garbage the collector cannot see still counts in the heap's size: it is
    held back only until the heap grew by ``growth``, not leaked."""
    gc.collect()
    c = heap.Collector(growth=0.05)
    try:
        gc.callbacks.append(c.after_collection)
        gone = []
        for _ in range(100_000):
            a, b = Node(), Node()
            a.other, b.other, a.payload = b, a, [str(i) for i in range(50)]
            gone.append(weakref.ref(a))
            gc.collect(0)  # survives a young collection, frozen
            del a, b
            if c.due():
                break
        assert c.due()
        assert gone[0]() is not None
        c.walk()
        assert not c.due()
        assert all(ref() is None for ref in gone)
    finally:
        gc.callbacks.remove(c.after_collection)
        gc.unfreeze()


async def test_run_installs_its_hook_and_threshold_and_removes_them_when_cancelled() -> None:
    fake, clock = FakeGC(frozen=10), Clock()
    c = collector(fake, clock, interval=0.001)
    task = asyncio.create_task(c.run())
    await asyncio.sleep(0.01)
    assert fake.callbacks == [c.after_collection]
    assert fake.threshold == (heap.YOUNG_FROZEN, 10, 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert fake.callbacks == []
    assert fake.threshold == (700, 10, 10)


def test_demand_counts_running_not_sleeping() -> None:
    before = heap.demand()
    end = time.thread_time() + 0.05
    while time.thread_time() < end:
        pass
    worked = heap.demand() - before
    before = heap.demand()
    time.sleep(0.1)
    slept = heap.demand() - before
    assert worked >= 0.04
    assert slept < 0.05  # the wake-up may wait for a CPU a little
