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
- ``TRANSIENT``: a child that may finish (a one-off job, a per-pod worker);
  returning is fine (the child is then forgotten), an exception is restarted
  like ``RESTART``.

Supervisors nest (:meth:`Supervisor.nest`): a component (the agent, the
controller manager) gets a supervisor of its own under the process's, so its
loops are stopped with it, its health rolls up into the process's ``/readyz``,
and a FATAL failure anywhere in the tree stops the whole process.

Concurrency: every child runs as its own asyncio task on the loop that called
:meth:`Supervisor.start`; the supervisor never runs two copies of one child.
:meth:`Supervisor.stop` cancels children in reverse start order (later children
usually depend on earlier ones) within one overall time budget.

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
from collections.abc import Awaitable, Callable, Coroutine, Iterator
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


class InjectedFailure(Exception):
    """The default exception :meth:`Supervisor.inject_failure` makes a child fail with."""


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
    injected: BaseException | None = None


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
        self._nested: dict[str, Supervisor] = {}
        # Children and nested supervisors in start order, for stopping in reverse.
        self._order: list[str] = []
        self._parent: Supervisor | None = None
        self._spawned: set[asyncio.Task[Any]] = set()
        self._failed: ChildFailed | None = None
        self._done = asyncio.Event()
        self._stopping = False

    # -- children ---------------------------------------------------------------

    def start(self, name: str, factory: Factory, *, policy: Policy = Policy.RESTART) -> None:
        """Start ``factory()`` as the child ``name`` (names are unique per supervisor)."""
        existing = self._children.get(name)
        if existing is not None and existing.task is not None and not existing.task.done():
            raise ValueError(f"{self.name}: child {name!r} is already running")
        if name in self._nested:
            raise ValueError(f"{self.name}: {name!r} names a nested supervisor")
        if self._stopping:
            raise RuntimeError(f"{self.name}: stopping, cannot start {name!r}")
        child = _Child(ChildState(name, policy), factory)
        self._children[name] = child
        self._remember(name)
        child.task = asyncio.get_running_loop().create_task(
            self._run(child), name=f"{self.name}/{name}"
        )

    def running(self, name: str) -> bool:
        """A child of this name exists and has not ended (it may be waiting to restart)."""
        child = self._children.get(name)
        return child is not None and child.task is not None and not child.task.done()

    def cancel_child(self, name: str) -> None:
        """Cancel the child ``name`` (if any) and forget it, without waiting: for sync
        callers. Its task is still awaited (briefly) by :meth:`stop`."""
        child = self._children.pop(name, None)
        if child is None:
            return
        with contextlib.suppress(ValueError):
            self._order.remove(name)
        if child.task is not None and not child.task.done():
            child.task.cancel()
            self._spawned.add(child.task)
            child.task.add_done_callback(self._spawned.discard)

    async def stop_child(self, name: str, *, timeout: float = 10.0) -> None:
        """Cancel the child ``name`` (if any), wait for it within ``timeout``, forget it."""
        child = self._children.pop(name, None)
        if child is None:
            return
        with contextlib.suppress(ValueError):
            self._order.remove(name)
        await _cancel(child.task, timeout, f"{self.name}/{name}")

    def nest(self, name: str, *, backoff_max: float | None = None) -> Supervisor:
        """A supervisor for one component, under this one: stopped with it, its health
        part of :meth:`walk`, and a FATAL failure in it fails this supervisor too. It
        backs off as this one does (up to ``backoff_max``, when given)."""
        if name in self._children or name in self._nested:
            raise ValueError(f"{self.name}: {name!r} is already in use")
        if self._stopping:
            raise RuntimeError(f"{self.name}: stopping, cannot nest {name!r}")
        sub = Supervisor(
            f"{self.name}/{name}",
            backoff_initial=self.backoff_initial,
            backoff_max=self.backoff_max if backoff_max is None else backoff_max,
            sleep=self._sleep,
        )
        sub._parent = self
        self._nested[name] = sub
        self._remember(name)
        return sub

    async def unnest(self, name: str, *, timeout: float = 10.0) -> None:
        """Stop the nested supervisor ``name`` and forget it (a name can then be nested again)."""
        sub = self._nested.pop(name, None)
        if sub is None:
            return
        with contextlib.suppress(ValueError):
            self._order.remove(name)
        sub._parent = None
        await sub.stop(timeout=timeout)

    def _remember(self, name: str) -> None:
        if name in self._order:
            self._order.remove(name)
        self._order.append(name)

    # -- what tests and health checks see ---------------------------------------

    def status(self) -> list[ChildState]:
        """This supervisor's own children, in start order."""
        return [c.status for c in self._children.values()]

    def unhealthy(self) -> list[ChildState]:
        return [s for s in self.status() if not s.healthy]

    def walk(self, prefix: str = "") -> Iterator[tuple[str, ChildState]]:
        """Every child of this supervisor and the nested ones, as ``(path, state)``
        with paths like ``agent/heartbeat``, in start order."""
        for name in list(self._order):
            child = self._children.get(name)
            if child is not None:
                yield prefix + name, child.status
            sub = self._nested.get(name)
            if sub is not None:
                yield from sub.walk(prefix + name + "/")

    def problems(self) -> list[str]:
        """``path: state (last error)`` for every unhealthy child in the tree."""
        return [
            f"{path}: {st.state}" + (f" ({st.last_error})" if st.last_error else "")
            for path, st in self.walk()
            if not st.healthy
        ]

    def find(self, path: str) -> tuple[Supervisor, str]:
        """The supervisor that owns the child at ``path`` (``agent/heartbeat``), and its name."""
        head, _, rest = path.partition("/")
        if rest and head in self._nested:
            return self._nested[head].find(rest)
        if path not in self._children:
            raise KeyError(f"{self.name}: no child {path!r}")
        return self, path

    def inject_failure(self, path: str, exc: BaseException | None = None) -> None:
        """Fault injection for tests: the child at ``path`` fails as if it had raised
        ``exc``. Its coroutine is cancelled at its current await (so its cleanup runs),
        then its policy applies exactly as for a real failure."""
        owner, name = self.find(path)
        child = owner._children[name]
        if child.task is None or child.task.done() or child.status.state != "running":
            raise RuntimeError(f"{owner.name}: child {name!r} is not running")
        child.injected = exc or InjectedFailure(f"injected into {owner.name}/{name}")
        child.task.cancel()

    async def _run(self, child: _Child) -> None:
        st = child.status
        failures = 0
        while True:
            st.state = "running"
            began = time.monotonic()
            error: BaseException | None = None
            try:
                await child.factory()
            except asyncio.CancelledError:
                if child.injected is None:
                    st.state = "stopped"
                    raise
            except Exception as exc:
                error = exc
            if child.injected is not None:
                # The cancellation was ours (inject_failure), not a stop: take it back.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                error, child.injected = child.injected, None
            if error is None:
                if st.policy is Policy.TRANSIENT:
                    st.state = "done"
                    self._forget(child)
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
            try:
                await self._sleep(delay)
            except asyncio.CancelledError:
                st.state = "stopped"
                raise

    def _forget(self, child: _Child) -> None:
        if self._children.get(child.status.name) is child:
            del self._children[child.status.name]
            with contextlib.suppress(ValueError):
                self._order.remove(child.status.name)

    def _fail(self, failure: ChildFailed) -> None:
        if self._failed is None:
            self._failed = failure
        self._done.set()
        if self._parent is not None:
            self._parent._fail(failure)

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
        child fails anywhere in the tree (every other child is stopped first)."""
        await self._done.wait()
        if self._failed is not None:
            await self.stop()
            raise self._failed

    @property
    def failure(self) -> ChildFailed | None:
        return self._failed

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Cancel every child and nested supervisor in reverse start order, then the
        spawned tasks; each waits for what remains of ``timeout`` (one budget for all:
        a stuck child is logged and left behind, never waited for without end)."""
        self._stopping = True
        deadline = time.monotonic() + timeout
        for name in reversed(list(self._order)):
            left = max(0.0, deadline - time.monotonic())
            sub = self._nested.get(name)
            if sub is not None:
                await sub.stop(timeout=left)
            child = self._children.get(name)
            if child is not None:
                await _cancel(child.task, left, f"{self.name}/{name}")
        for task in list(self._spawned):
            await _cancel(task, max(0.0, deadline - time.monotonic()), task.get_name())
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
    done, _ = await asyncio.wait({task}, timeout=max(timeout, 0.01))
    if not done:
        log.error("%s did not stop within %.1fs of being cancelled", what, timeout)
        return
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


async def listening(server: asyncio.Server, what: str) -> None:
    """A listening socket as a child: cancelling the child closes the socket (no new
    connections); should the socket close any other way, the child fails."""
    try:
        await server.serve_forever()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # stopped (or a failure injected) by the supervisor
        raise OSError(f"the {what} listener was closed") from None
