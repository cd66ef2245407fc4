"""What every long-running ``pilothouse`` command does the same way: log to stderr,
run until SIGINT or SIGTERM, and (for the components that only talk to an API
server) wait for the server, run, and report how the run ended."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from pilothouse.client import rest


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def until_signalled() -> None:
    """Return once SIGINT or SIGTERM arrives (Ctrl-C, or a service manager stopping us)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_component(name: str, client: rest.Client, work: Coroutine[Any, Any, None]) -> int:
    """Wait for the API server, then run ``work`` until it fails or a signal stops it.

    Returns the exit code: 1 when the server cannot be reached or ``work`` fails
    (the reason is printed), 0 when stopped by a signal."""
    try:
        await client.wait_ready(timeout=60)
    except Exception as exc:
        work.close()
        print(f"pilothouse {name}: cannot reach {client.config.server}: {exc!r}", file=sys.stderr)
        return 1
    task = asyncio.create_task(work)
    waiter = asyncio.create_task(until_signalled())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    waiter.cancel()
    failure, _ = await asyncio.gather(task, waiter, return_exceptions=True)
    if isinstance(failure, Exception):
        print(f"pilothouse {name}: {failure}", file=sys.stderr)
        return 1
    return 0
