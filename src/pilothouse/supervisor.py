"""Supervised long-lived tasks: no loop of pilothouse ends silently.

A :class:`Supervisor` owns a set of named children. Each child is a *factory*
returning a fresh coroutine, so a child that fails can be started again. What
happens when a child ends is its :class:`Policy`:

- ``RESTART`` (the default, for control loops): any exception is logged once,
  with its traceback, and the child is started again after an exponential
  back-off (reset once a run has lasted longer than the longest back-off). A
  child that *returns* is a failure too — a loop that should run for the life of
  the process and stopped is exactly the bug this module exists to catch.
- ``FATAL`` (for what the process cannot live without, k3s's rule): the first
  failure or return stops every other child and :meth:`Supervisor.wait` raises
  :class:`ChildFailed`, so the process exits non-zero and its service manager
  restarts it.
- ``TRANSIENT``: a child that may finish (a one-off job); returning is fine,
  an exception is restarted like ``RESTART``.

Concurrency: every child runs as its own asyncio task on the loop that called
:meth:`Supervisor.start`; the supervisor never runs two copies of one child.
:meth:`Supervisor.stop` cancels children in reverse start order (later children
usually depend on earlier ones) and waits for each within a bounded time.

:meth:`Supervisor.spawn` covers the other kind of background task: short-lived
fire-and-forget work (a close in the background, an event post). The task is
kept referenced until done and an exception is logged, never lost.

This module sits outside the layers (like :mod:`pilothouse.heap`): the store,
the API server and every component use it, so it imports nothing of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Factory = Callable[[], Coroutine[Any, Any, None]]
Sleep = Callable[[float], Awaitable[None]]


class Policy(enum.Enum):
    RESTART = "restart"
    FATAL = "fatal"
    TRANSIENT = "transient"


class ChildFailed(Exception):
    """A FATAL child failed (or ended): the whole supervisor, and its process, stop."""

    def __init__(self, supervisor: str, child: str, cause: BaseException) -> None:
        super().__init__(f"{supervisor}/{child}: {describe(cause)}")
        self.supervisor = supervisor
        self.child = child
        self.cause = cause


class LoopEnded(Exception):
    """A long-lived loop returned although it should run until cancelled."""


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class ChildState:
    """What ``/readyz`` and tests see of one child."""

    name: str
    policy: Policy
    state: str = "starting"  # running | restarting | done | failed | stopped
    restarts: int = 0
    last_error: str = ""

    @property
    def healthy(self) -> bool:
        return self.state in ("running", "done")


@dataclass
class _Child:
    status: ChildState
    factory: Factory
    task: asyncio.Task[None] | None = None


class Supervisor:
    """Runs named children under a restart policy; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._children: dict[str, _Child] = {}
        self._spawned: set[asyncio.Task[Any]] = set()
        self._failed: ChildFailed | None = None
        self._done = asyncio.Event()
        self._stopping = False

    # -- children ---------------------------------------------------------------

    def start(self, name: str, factory: Factory, *, policy: Policy = Policy.RESTART) -> None:
        """Start ``factory()`` as the child ``name`` (names are unique per supervisor)."""
        if name in self._children and self._children[name].task is not None:
            task = self._children[name].task
            if task is not None and not task.done():
                raise ValueError(f"{self.name}: child {name!r} is already running")
        if self._stopping:
            raise RuntimeError(f"{self.name}: stopping, cannot start {name!r}")
        child = _Child(ChildState(name, policy), factory)
        self._children[name] = child
        child.task = asyncio.get_running_loop().create_task(
            self._run(child), name=f"{self.name}/{name}"
        )

    def status(self) -> list[ChildState]:
        """Every child's state, in start order."""
        return [c.status for c in self._children.values()]

    def unhealthy(self) -> list[ChildState]:
        return [s for s in self.status() if not s.healthy]

    async def _run(self, child: _Child) -> None:
        st = child.status
        failures = 0
        while True:
            st.state = "running"
            began = time.monotonic()
            try:
                await child.factory()
            except asyncio.CancelledError:
                st.state = "stopped"
                raise
            except Exception as exc:
                error: BaseException = exc
            else:
                if st.policy is Policy.TRANSIENT:
                    st.state = "done"
                    return
                error = LoopEnded(f"{st.name} returned; it should run until stopped")
            st.last_error = describe(error)
            if st.policy is Policy.FATAL:
                st.state = "failed"
                log.error(
                    "%s: %s failed; stopping (this component is required)",
                    self.name,
                    st.name,
                    exc_info=error,
                )
                self._fail(ChildFailed(self.name, st.name, error))
                return
            if time.monotonic() - began > 2 * self.backoff_max:
                failures = 0  # it ran well for a long while: start the back-off afresh
            delay = min(self.backoff_initial * 2**failures, self.backoff_max)
            failures += 1
            st.restarts += 1
            st.state = "restarting"
            log.error(
                "%s: %s failed; restarting in %.1fs (restart %d)",
                self.name,
                st.name,
                delay,
                st.restarts,
                exc_info=error,
            )
            await self._sleep(delay)

    def _fail(self, failure: ChildFailed) -> None:
        if self._failed is None:
            self._failed = failure
        self._done.set()

    # -- one-off background work -----------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run short-lived ``coro`` in the background, keep it referenced, log its failure."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}/{name}")
        self._spawned.add(task)
        task.add_done_callback(self._spawn_done)
        return task

    def _spawn_done(self, task: asyncio.Task[Any]) -> None:
        self._spawned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    # -- lifetime -----------------------------------------------------------------

    async def wait(self) -> None:
        """Wait until :meth:`stop` is called, or raise :class:`ChildFailed` when a FATAL
        child fails (every other child is stopped first)."""
        await self._done.wait()
        if self._failed is not None:
            await self.stop()
            raise self._failed

    @property
    def failure(self) -> ChildFailed | None:
        return self._failed

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Cancel every child in reverse start order, each given up to ``timeout`` s."""
        self._stopping = True
        for child in reversed(list(self._children.values())):
            await _cancel(child.task, timeout, f"{self.name}/{child.status.name}")
        for task in list(self._spawned):
            await _cancel(task, timeout, task.get_name())
        self._done.set()

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _cancel(task: asyncio.Task[Any] | None, timeout: float, what: str) -> None:
    if task is None or task.done():
        if task is not None and not task.cancelled():
            with contextlib.suppress(BaseException):
                task.result()  # retrieved, so asyncio does not warn it was never read
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.error("%s did not stop within %.0fs of being cancelled", what, timeout)
        return
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
