"""Time as a dependency, so backoff and timeout logic can be tested with a fake clock."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (for timestamps written into objects)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals)."""

    def sleep(self, seconds: float) -> Awaitable[None]:
        """An awaitable that completes ``seconds`` from now (measured from this call)."""

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` on the running loop ``seconds`` from now, unless cancelled."""


class Timer(Protocol):
    def cancel(self) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(max(0.0, seconds))

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, seconds), callback)


class _FakeTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told (``advance``); sleepers wake, and timers
    fire, in order."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None] | _FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> Awaitable[None]:
        # Registered now, not when first awaited: the deadline is this call + seconds.
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if seconds <= 0:
            fut.set_result(None)
            return fut
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        return fut

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        timer = _FakeTimer(callback)
        heapq.heappush(self._sleepers, (self._mono + max(0.0, seconds), next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose time has come."""
        self._now += seconds
        self._mono += seconds
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, waiting = heapq.heappop(self._sleepers)
            if isinstance(waiting, _FakeTimer):
                if not waiting.cancelled:
                    waiting.callback()
            elif not waiting.done():
                waiting.set_result(None)

    @property
    def sleepers(self) -> int:
        """Sleeps and timers still pending."""
        return sum(
            1
            for _, _, w in self._sleepers
            if not (w.cancelled if isinstance(w, _FakeTimer) else w.done())
        )


DEFAULT = RealClock()
