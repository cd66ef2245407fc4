"""A rate-limited work queue of keys, as controllers use upstream (client-go workqueue).

Properties that controllers rely on:

* A key is queued at most once; adding it again while queued does nothing.
* A key being processed is never handed to a second worker; if it is added
  meanwhile, it is queued again when the first worker calls :meth:`done`.
* :meth:`add_rate_limited` delays a key by its own exponential backoff
  (5 ms doubling up to a cap), and :meth:`forget` resets it after a success.
* :meth:`add_after` delays a key by a fixed time (periodic resyncs, deadlines).

Everything runs on one event loop; workers are tasks calling :meth:`get`.
Delayed keys need no task of their own: one clock timer, set for the earliest
of them, moves the due keys into the queue.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from typing import Generic, TypeVar

from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock, Timer

K = TypeVar("K")


class ShutDown(Exception):
    """The queue was shut down; workers should exit."""


class ExponentialBackoff(Generic[K]):
    """Per-key exponential delay: base * 2**failures, capped."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay: float = min(self.cap, self.base * (2.0**n))
        return delay

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """A deduplicating FIFO of keys with delayed and rate-limited adds."""

    def __init__(
        self,
        name: str,
        *,
        clock: Clock = DEFAULT_CLOCK,
        backoff: ExponentialBackoff[K] | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()  # added while processing
        self._waiting: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._has_items = asyncio.Event()
        self._shutdown = False
        self._timer: Timer | None = None
        self._timer_at = 0.0

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: K) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._has_items.set()

    def add_after(self, key: K, delay: float) -> None:
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        when = self.clock.monotonic() + delay
        heapq.heappush(self._waiting, (when, next(self._seq), key))
        if self._timer is None or when < self._timer_at:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.clock.call_later(when - self.clock.monotonic(), self._fire)

    def add_rate_limited(self, key: K) -> None:
        self.add_after(key, self.backoff.when(key))

    def forget(self, key: K) -> None:
        self.backoff.forget(key)

    def retries(self, key: K) -> int:
        return self.backoff.failures(key)

    def _fire(self) -> None:
        self._timer = None
        if self._shutdown:
            return
        now = self.clock.monotonic()
        while self._waiting and self._waiting[0][0] <= now:
            _, _, key = heapq.heappop(self._waiting)
            self.add(key)
        if self._waiting:
            self._arm(self._waiting[0][0])

    async def get(self) -> K:
        """The next key to process; raises ShutDown when the queue is closed."""
        while not self._queue:
            if self._shutdown:
                raise ShutDown(self.name)
            self._has_items.clear()
            await self._has_items.wait()
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shutdown(self) -> None:
        self._shutdown = True
        self._has_items.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def is_shutdown(self) -> bool:
        return self._shutdown
