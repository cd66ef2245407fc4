"""The shape every controller shares (upstream: a handler that enqueues keys,
and one idempotent ``sync(key)``).

Informer handlers only add ``namespace/name`` keys to the controller's
:class:`~pilothouse.client.workqueue.WorkQueue`. ``workers`` tasks take keys
from the queue; the queue never gives the same key to two workers, so one
object is synced by one worker at a time while different objects proceed in
parallel. A sync that raises is retried with per-key exponential backoff; a
sync that succeeds resets it.

:meth:`Controller.run` is a supervised child of the controller manager; its
workers form a task group, so a worker that fails outside ``sync`` (a bug)
takes the controller down, and the supervisor logs it and restarts it; the queue
survives the restart.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from pilothouse.api import errors
from pilothouse.client import lister, rest
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock
from pilothouse.client.workqueue import ShutDown, WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MAX_RETRIES_LOGGED = 5


class Controller(abc.ABC):
    """Base class: subclasses set ``name``, register handlers, implement ``sync``."""

    name = "controller"
    workers = 2

    def __init__(self, *, clock: Clock = DEFAULT_CLOCK) -> None:
        self.clock = clock
        self.queue: WorkQueue[str] = WorkQueue(self.name, clock=clock)
        self._tasks: list[asyncio.Task[None]] = []
        self.syncs = 0

    # Handlers call these.
    def enqueue(self, obj: Obj) -> None:
        self.queue.add(lister.key_of(obj))

    def enqueue_key(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_after(self, obj: Obj, delay: float) -> None:
        self.queue.add_after(lister.key_of(obj), delay)

    @abc.abstractmethod
    async def sync(self, key: str) -> None:
        """Drive the object ``key`` names toward its spec; idempotent, safe to retry."""

    async def wait_ready(self) -> None:
        """Wait for the informers this controller reads (override); none by default."""
        return None

    def loops(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        """Further loops of this controller (override), run beside its workers: one
        failing fails the controller, which its supervisor restarts as a whole."""
        return {}

    async def run(self) -> None:
        """Run the workers (and :meth:`loops`) until cancelled."""
        await self.wait_ready()
        # The queue is left as it is when the workers stop: a restarted controller goes
        # on with the keys still queued; a stopped one is dropped with its queue.
        async with asyncio.TaskGroup() as workers:
            for i in range(self.workers):
                workers.create_task(self._worker(), name=f"{self.name}-worker-{i}")
            for name, loop in self.loops().items():
                workers.create_task(loop(), name=f"{self.name}-{name}")

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.sync(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retries = self.queue.retries(key)
                level = logging.DEBUG if errors.is_conflict(exc) else logging.WARNING
                if retries < MAX_RETRIES_LOGGED:
                    log.log(
                        level,
                        "%s: syncing %s failed (will retry): %s",
                        self.name,
                        key,
                        _describe(exc),
                        exc_info=not isinstance(exc, errors.StatusError | rest.TransportError),
                    )
                self.queue.add_rate_limited(key)
            finally:
                self.syncs += 1
                self.queue.done(key)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, errors.StatusError):
        return f"{exc.code} {exc.reason}: {exc.message}"
    return repr(exc)
