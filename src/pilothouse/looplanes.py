"""An event loop with two lanes: short work first, the bulk after.

One asyncio loop runs everything in a ``pilothouse server``: the API's requests, the
watch cache, the controllers, the scheduler. asyncio runs its ready callbacks in one
FIFO queue and looks at its sockets only between turns, so under load (a rollout: tens
of creates and status writes made ready at once) a GET whose answer is 0.2 ms of work
waits for two or three whole turns of other work — 40-100 ms. Upstream's API server
does not have this shape: each request is a goroutine, and a GET served from the watch
cache never queues behind the writes in flight.

:class:`LanedEventLoop` is asyncio's selector loop with its ready queue split in two:

* the **fast lane** holds the callbacks of I/O (a socket became readable or writable),
  and every callback whose context carries :data:`FAST` — the steps of a task that
  marked itself short (the API server marks its connections' tasks and the requests
  it can answer from memory; :mod:`pilothouse.apiserver.lanes`);
* the **normal lane** holds everything else, in asyncio's order.

The loop takes from the fast lane first, except that after :data:`STREAK` fast
callbacks in a row it takes one normal one, so a flood of short work slows the bulk but
never stops it. While a long turn runs, the loop looks at its sockets every
:data:`POLL_INTERVAL` seconds (a non-blocking ``select``) instead of only between
turns, so bytes that arrive mid-turn are read within a few milliseconds. Nothing else
changes: each lane keeps its FIFO order (``call_soon``'s guarantee holds between two
callbacks of one lane, which is every pair a task or a future schedules for itself),
timers fire in the normal lane, and a turn still runs only what was ready when it
began plus what the fast lane adds.

A socket reported mid-turn and again by the next turn's ``select`` (before its
callback ran) has its callback run twice; asyncio's transports read and accept until
``EAGAIN``, so the second call finds nothing and returns.

Concurrency: all of this is the loop's own thread. ``call_soon_threadsafe`` from
another thread appends to the normal lane under the GIL, as asyncio's own loop does;
the deque operations it relies on are atomic.

The loop relies on three private members of CPython 3.11's selector loop
(``_ready``, ``_call_soon``, ``_add_callback``); ``tests/test_looplanes.py`` fails if
their shape changes.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import selectors
import time
from asyncio import events
from typing import Any

# Set (to True) in a context whose callbacks belong in the fast lane.
FAST: contextvars.ContextVar[bool] = contextvars.ContextVar("pilothouse_fast_lane", default=False)

# Fast callbacks taken in a row before one normal one is.
STREAK = 16

# How often a busy loop looks at its sockets between turns, in seconds.
POLL_INTERVAL = 0.002


class LanedQueue(collections.deque[events.Handle]):
    """The loop's ready queue: the deque itself is the normal lane, :attr:`fast` the
    fast one. ``len`` and truth count both, so asyncio's turn runs both."""

    def __init__(self, loop: LanedEventLoop) -> None:
        super().__init__()
        self.fast: collections.deque[events.Handle] = collections.deque()
        self.streak = 0
        self.polled = 0.0
        self._loop = loop
        # Where the last callback went (for eager task start: see apiserver.eagertasks).
        self.recent: collections.deque[events.Handle] = self

    def __len__(self) -> int:
        return collections.deque.__len__(self) + len(self.fast)

    def __bool__(self) -> bool:
        return bool(self.fast) or collections.deque.__len__(self) > 0

    def popleft(self) -> events.Handle:
        now = time.perf_counter()
        if now - self.polled >= POLL_INTERVAL:
            self.polled = now
            self._loop.poll_io()
        fast = self.fast
        if fast and (self.streak < STREAK or not collections.deque.__len__(self)):
            self.streak += 1
            return fast.popleft()
        self.streak = 0
        handle: events.Handle = collections.deque.popleft(self)
        return handle

    def clear(self) -> None:
        self.fast.clear()
        collections.deque.clear(self)


class LanedEventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop with a fast lane; see the module docstring."""

    def __init__(self, selector: Any = None) -> None:
        super().__init__(selector)
        self._ready: LanedQueue = LanedQueue(self)
        self.mid_turn_polls = 0  # for tests and curiosity: polls that found a socket ready

    def _call_soon(
        self, callback: Any, args: Any, context: contextvars.Context | None
    ) -> events.Handle:
        handle = events.Handle(callback, args, self, context)
        if handle._source_traceback:  # type: ignore[attr-defined]
            del handle._source_traceback[-1]  # type: ignore[attr-defined]
        ready = self._ready
        if handle._context.get(FAST, False):  # type: ignore[attr-defined]
            ready.fast.append(handle)
            ready.recent = ready.fast
        else:
            ready.append(handle)
            ready.recent = ready
        return handle

    def _add_callback(self, handle: events.Handle) -> None:
        """An I/O callback (from ``select``): the fast lane."""
        if not handle._cancelled:
            self._ready.fast.append(handle)

    def _process_events(self, event_list: Any) -> None:
        self._ready.polled = time.perf_counter()
        super()._process_events(event_list)  # type: ignore[misc]

    def poll_io(self) -> None:
        """Look at the sockets without waiting (mid-turn); what is ready joins the fast
        lane."""
        selector: selectors.BaseSelector | None = self._selector  # type: ignore[attr-defined]
        if selector is None:
            return  # closed
        event_list = selector.select(0)
        if event_list:
            self.mid_turn_polls += 1
            super()._process_events(event_list)  # type: ignore[misc]


_FAST_CONTEXT = contextvars.Context()
_FAST_CONTEXT.run(FAST.set, True)


def fast_context() -> contextvars.Context:
    """A new context with :data:`FAST` set, for a callback that is short and that others
    wait for (``loop.call_soon_threadsafe(cb, context=fast_context())``). On any other
    loop the flag means nothing."""
    return _FAST_CONTEXT.copy()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new :class:`LanedEventLoop`."""
    return LanedEventLoop()
