"""What every long-running ``pilothouse`` command does the same way: log to stderr,
run until SIGINT or SIGTERM (or until a required part of it fails), stop within a
bounded time, and report how the run ended.

Signals follow upstream's rule: the first SIGINT or SIGTERM starts an orderly
shutdown; a second one ends the process at once with status 1 (for a shutdown
that is stuck, or an impatient Ctrl-C). :func:`run` replaces ``asyncio.run``
so that the end is bounded too: tasks left over are cancelled and waited for
a short while, and a worker thread stuck in a system call cannot keep the
process alive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from pilothouse import supervisor as supervision
from pilothouse.client import rest

log = logging.getLogger(__name__)

TEARDOWN_TIMEOUT = 2.0


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


class Signals:
    """SIGINT/SIGTERM on the running loop: the first sets :attr:`received`, a second
    one exits the process with status 1 straight away."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received = asyncio.Event()
        self.signal = ""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.received.is_set():
            print(f"{self.name}: {sig.name} again; stopping now", file=sys.stderr, flush=True)
            logging.shutdown()
            os._exit(1)
        self.signal = sig.name
        self.received.set()


async def until_stopped(signals: Signals, root: supervision.Supervisor) -> None:
    """Return when a signal arrives; raise :class:`~pilothouse.supervisor.ChildFailed`
    when a required (FATAL) child of ``root`` fails first."""
    signalled = asyncio.ensure_future(signals.received.wait())
    failed = asyncio.ensure_future(root.wait())
    try:
        await asyncio.wait({signalled, failed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signalled.cancel()
        failed.cancel()
    if root.failure is not None and not signals.received.is_set():
        raise root.failure


async def until_signalled() -> None:
    """Return once SIGINT or SIGTERM arrives (Ctrl-C, or a service manager stopping us)."""
    await Signals("pilothouse").received.wait()


async def run_component(
    name: str,
    client: rest.Client,
    start: Callable[[supervision.Supervisor], None],
    *,
    stop_timeout: float = 10.0,
) -> int:
    """Wait for the API server, then ``start`` the component's children on a supervisor
    and run until a signal (exit 0) or a required child's failure (exit 1)."""
    signals = Signals(f"pilothouse {name}")
    try:
        await client.wait_ready(timeout=60)
    except Exception as exc:
        print(f"pilothouse {name}: cannot reach {client.config.server}: {exc}", file=sys.stderr)
        return 1
    root = supervision.Supervisor(name)
    start(root)
    code = 0
    try:
        await until_stopped(signals, root)
    except supervision.ChildFailed as exc:
        print(f"pilothouse {name}: {exc}", file=sys.stderr)
        code = 1
    await root.stop(timeout=stop_timeout)
    return code


def run(
    main: Coroutine[Any, Any, int],
    *,
    name: str = "pilothouse",
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
) -> int:
    """``asyncio.run(main)`` with a bounded end (see the module docstring), on a loop
    from ``loop_factory``."""
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        try:
            code = loop.run_until_complete(main)
        except KeyboardInterrupt:  # before the signal handlers were installed
            code = 130
        leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            _, pending = loop.run_until_complete(asyncio.wait(leftovers, timeout=TEARDOWN_TIMEOUT))
            for task in pending:
                log.warning("%s: task %s did not stop", name, task.get_name())
        loop.run_until_complete(loop.shutdown_asyncgens())
        try:
            loop.run_until_complete(
                asyncio.wait_for(loop.shutdown_default_executor(), TEARDOWN_TIMEOUT)
            )
        except TimeoutError:
            log.warning("%s: a worker thread is stuck; not waiting for it", name)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    # Every thread of ours has been told to stop; give what is left a moment, then go
    # without it (Python would otherwise join a stuck one at exit, for ever).
    deadline = time.monotonic() + TEARDOWN_TIMEOUT
    stuck = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            stuck.append(thread.name)
    if stuck:
        print(
            f"{name}: leaving {len(stuck)} stuck thread(s) behind: {', '.join(stuck)}",
            file=sys.stderr,
            flush=True,
        )
        logging.shutdown()
        os._exit(code)
    return code
