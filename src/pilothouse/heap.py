"""Garbage-collector settings for pilothouse's long-running processes.

A process that has started keeps what it loaded (schemas, field tables, listed
objects) for the rest of its life; CPython's collector would still walk all of
it in every full collection. :func:`settle` moves that heap out of the
collector's sight (``gc.freeze``) and collects young objects less eagerly.
Measured on the API server: +9 % creates/s (bench/api.py), and under the
scheduler benchmark no more 390 ms full collections stalling every request in
flight (SchedulingBasic p99 558 ms → 112 ms, bench/scheduler.py); the middle
generation collected in small steps keeps a write flood's pauses short
(bench/overload.py).

What the server caches after start-up (the watch cache's objects, the shared
informers' copies: millions of dicts and lists at 30,000 pods) would be walked
again by every full collection, each one a stop of the whole event loop for
0.7 s at 10,000 pods and several seconds at 30,000 — the GET and PATCH p99 of
bench/scale.py were those stops. :class:`Collector` keeps every collection short:
whatever survives any collection, a young one too, is frozen with the rest, so
each collection traverses only what was made since the one before and no object
is traversed twice. Nearly everything a busy server's young collection finds is
alive (its requests in flight, the objects it caches: at 10,000 pods, 3,577 objects
collected in all, of millions traversed), and traversing it again in each middle
and full collection was the collector's cost: at 30,000 pods 922 young collections
of ~6.5 ms, 248 middle ones of ~22 ms and 4 full ones of ~350 ms, 10 % of the
server's CPU. Frozen objects freed by their reference count are freed as always;
what freezing holds back is only cyclic garbage, and the whole heap is walked
(unfrozen, collected, frozen again) once it has grown by a quarter — CPython's own
proportion for full collections — and then when the event loop's thread is idle,
or at the latest ``max_delay`` after it fell due: held back until the heap grew
by a quarter and the delay passed, not leaked.

Only for processes (``pilothouse server``, ``agent``, ``scheduler``): the
settings are process-wide, so library code and tests never call :func:`settle`
or run a :class:`Collector` on the real collector.

Concurrency: :meth:`Collector.run` is one supervised loop on the process's event
loop; its ``gc.callbacks`` hook runs on whichever thread triggers a collection
(it only freezes, which CPython does under the GIL).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Young-generation threshold: 10,000 allocations between collections instead
# of 700 (request handling allocates and frees thousands of small objects).
YOUNG = 10_000
# The middle generation is collected every 2 young collections instead of 20: a write
# flood keeps most of what it allocates (the watch cache holds every object), so 20
# young collections' survivors made one pause of 90-140 ms on the API server under
# bench/overload.py; 2 make it a tenth as long and ten times as often, the same work
# in all. The oldest generation keeps its pace (every 200 young collections: 2 x 100),
# and CPython still runs it only when it has grown by a quarter.
MIDDLE = 2
OLD = 100
# Young-generation threshold under a :class:`Collector`, which freezes the survivors of
# every collection: each collection then traverses only what was made since the last
# one, so its stop is as long as the young generation is large, and a smaller threshold
# shortens the stops without adding work (an object is traversed once either way).
YOUNG_FROZEN = 2_000


def settle() -> None:
    """Call once start-up is done: freeze what is loaded, and collect less often."""
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)


class GarbageCollector(Protocol):
    """What :class:`Collector` uses of the :mod:`gc` module (a test passes a fake)."""

    callbacks: list[Callable[[str, dict[str, Any]], None]]

    def freeze(self) -> None: ...

    def unfreeze(self) -> None: ...

    def collect(self) -> int: ...

    def get_freeze_count(self) -> int: ...

    def get_threshold(self) -> tuple[int, int, int]: ...

    def set_threshold(self, threshold0: int, threshold1: int, threshold2: int, /) -> None: ...


def demand() -> float:
    """Seconds the calling thread has run or waited to run (Linux's schedstat: CPU time
    plus run-queue delay), so that a thread starved of a CPU by other processes does
    not look idle; the thread's CPU time where schedstat is not available."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            running, waiting, _ = stat.read().split()
    except (OSError, ValueError):
        return time.thread_time()
    return (int(running) + int(waiting)) / 1e9


class Collector:
    """Every collection traverses only what was made since the one before; the whole heap
    is walked when it grew by ``growth`` and the loop's thread is idle (or ``max_delay``
    passed since it fell due).

    ``step`` is one check (a test drives it with a fake clock, demand counter, heap size
    and collector); ``run`` calls it every ``interval`` seconds with the hook installed.
    Idle: the event loop's thread ran or waited to run (:func:`demand`) less than
    ``idle_share`` of the time since the last check — a loop starved of a CPU by a
    busy machine still has work, and a walk then would stall it the longest.
    The heap's size is ``size()``: by default the blocks CPython's small-object
    allocator has handed out (every object of up to 512 bytes, so every object's head;
    a large list's or dict's table is not counted), cyclic garbage held back by freezing
    included — ~0.1 ms at millions of objects, where ``gc.get_freeze_count`` walks the
    frozen list (~25 ms), and counting what is frozen would count every young
    collection's requests in flight, most of them freed a moment later.
    """

    def __init__(
        self,
        *,
        growth: float = 0.25,
        idle_share: float = 0.2,
        max_delay: float = 600.0,
        interval: float = 1.0,
        collector: GarbageCollector = gc,  # type: ignore[assignment]
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = demand,
        size: Callable[[], int] = sys.getallocatedblocks,
        young: int = YOUNG_FROZEN,
    ) -> None:
        self.young = young
        self.growth = growth
        self.idle_share = idle_share
        self.max_delay = max_delay
        self.interval = interval
        self.gc = collector
        self.clock = clock
        self.cpu = cpu
        self.size = size
        self.baseline = size()  # the heap's size after start-up or the last walk
        self.due_since: float | None = None
        self.walks = 0  # whole-heap collections done
        self._last = (clock(), cpu())

    def after_collection(self, phase: str, info: dict[str, Any]) -> None:
        """The ``gc.callbacks`` hook: freeze what survived any collection, young ones too,
        so that no object is traversed by more than one collection between walks."""
        if phase == "stop":
            self.gc.freeze()

    def due(self) -> bool:
        return self.size() > self.baseline * (1 + self.growth)

    def step(self) -> bool:
        """One check; True when it walked the whole heap."""
        now, used = self.clock(), self.cpu()
        last_now, last_used = self._last
        self._last = (now, used)
        if not self.due():
            self.due_since = None
            return False
        if self.due_since is None:
            self.due_since = now
        elapsed = now - last_now
        idle = elapsed > 0 and (used - last_used) / elapsed < self.idle_share
        if not idle and now - self.due_since < self.max_delay:
            return False
        self.walk()
        self._last = (self.clock(), self.cpu())  # the walk's own CPU is not the process's load
        return True

    def walk(self) -> None:
        """Collect the whole heap, frozen part included, and freeze what is left."""
        before = self.gc.get_freeze_count()
        started = time.perf_counter()
        self.gc.unfreeze()
        freed = self.gc.collect()  # the hook freezes the survivors
        self.gc.freeze()  # and without the hook (a bare walk) too
        self.baseline = self.size()
        self.due_since = None
        self.walks += 1
        log.info(
            "whole-heap collection: %d objects walked, %d unreachable, %.3f s",
            before,
            freed,
            time.perf_counter() - started,
        )

    async def run(self) -> None:
        threshold = self.gc.get_threshold()
        self.gc.set_threshold(self.young, *threshold[1:])
        self.gc.callbacks.append(self.after_collection)
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.step()
        finally:
            self.gc.callbacks.remove(self.after_collection)
            self.gc.set_threshold(*threshold)
