"""Start a request's task in the loop turn that creates it, as Python 3.12 does.

aiohttp serves each request in a task of its own (``RequestHandler._handle_request``),
created by the connection's task once the request has arrived. On Python 3.12 and
later aiohttp starts that task *eagerly*: its first step — for a GET the watch cache
answers, the whole request, response written — runs at once, inside the step that
created it. On Python 3.11, which pilothouse runs on, there are no eager tasks: the new
task's first step is queued behind every callback already made ready in this loop turn
and runs in the next one. A request then takes three turns of the loop (the socket's
read, the connection's task waking, the request's task) where 3.12 takes two; under
load every turn is long (a rollout's turn carries tens of creates and status updates,
10-30 ms), and that third turn is a third of a GET's latency.

:func:`install` gives the server's loop a task factory that starts the coroutines it is
given (the server gives aiohttp's request handler only) eagerly on 3.11, the way 3.12's ``eager_start`` does: the task is created as usual, its first step
taken off the loop's ready queue and run now, with the creating task set aside as
"current" meanwhile (so ``asyncio.current_task()``, timeouts and cancellation inside the
step belong to the new task). If the step finishes the coroutine the task is done when
its creator gets it, which aiohttp's code is written for (it runs so on 3.12). Every
other coroutine is created exactly as before: eager start changes the order in which
things happen, and only code written for it gets it. On 3.12 and later, or on a loop
that is not asyncio's own, eager start is left out.

The same factory puts tasks in the fast lane of a :class:`~pilothouse.looplanes.LanedEventLoop`:
a coroutine whose code is in ``fast_codes`` (the server gives aiohttp's connection
handler) runs in a copy of its context with :data:`~pilothouse.looplanes.FAST` set, so
its steps and the tasks it creates (each request's) start in the fast lane; a request
that is not short steps back to the normal lane itself (:mod:`.lanes`). On any other
loop ``fast_codes`` is ignored.

Concurrency: the factory runs on the loop's thread, inside whatever step creates the
task; the eager step nests in it (as on 3.12) and returns at its first real suspension.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterable
from contextvars import Context, copy_context
from types import CodeType
from typing import Any

from aiohttp import web_protocol

from pilothouse import looplanes


def aiohttp_request_code() -> CodeType:
    """The code of aiohttp's per-request coroutine (what its connection's task creates)."""
    return web_protocol.RequestHandler._handle_request.__code__


def aiohttp_connection_code() -> CodeType:
    """The code of aiohttp's per-connection coroutine (the task reading a connection's
    requests one after another)."""
    return web_protocol.RequestHandler.start.__code__


class EagerFactory:
    """A task factory: coroutines whose code is in ``codes`` start eagerly, those whose
    code is in ``fast_codes`` run in the fast lane; see the module docstring."""

    def __init__(self, codes: Iterable[CodeType], fast_codes: Iterable[CodeType] = ()) -> None:
        self.codes = frozenset(codes)
        self.fast_codes = frozenset(fast_codes)
        self.eager_starts = 0  # for tests and curiosity: how many first steps ran at once

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        *,
        context: Context | None = None,
    ) -> asyncio.Task[Any]:
        code = getattr(coro, "cr_code", None)
        if code in self.fast_codes:
            context = (context or copy_context()).copy()
            context.run(looplanes.FAST.set, True)
        task = asyncio.Task(coro, loop=loop, context=context)
        if code in self.codes:
            self._step_now(loop, task)
        return task

    def _step_now(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
        ready = getattr(loop, "_ready", None)
        # The lane the task's first step went to (a laned loop's ready queue has two).
        ready = getattr(ready, "recent", ready)
        # The task's constructor has just queued its first step; take that one only.
        if not ready or getattr(ready[-1]._callback, "__self__", None) is not task:
            return
        handle = ready.pop()
        current = asyncio.current_task(loop)
        if current is not None:
            asyncio.tasks._leave_task(loop, current)
        try:
            self.eager_starts += 1
            handle._run()
        finally:
            if current is not None:
                asyncio.tasks._enter_task(loop, current)


def install(
    loop: asyncio.AbstractEventLoop,
    codes: Iterable[CodeType],
    fast_codes: Iterable[CodeType] = (),
) -> Callable[..., Any] | None:
    """Give ``loop`` the factory: eager start for ``codes`` on Python 3.11, the fast
    lane for ``fast_codes`` on a :class:`~pilothouse.looplanes.LanedEventLoop` — on an
    asyncio loop with no task factory of its own; returns the factory installed, or
    None when it would do nothing."""
    if not isinstance(loop, asyncio.BaseEventLoop) or loop.get_task_factory() is not None:
        return None
    if sys.version_info >= (3, 12):
        codes = ()
    if not isinstance(loop, looplanes.LanedEventLoop):
        fast_codes = ()
    factory = EagerFactory(codes, fast_codes)
    if not factory.codes and not factory.fast_codes:
        return None
    loop.set_task_factory(factory)  # type: ignore[arg-type]
    return factory
