"""How every long-running command ends: a second SIGINT forces a stuck shutdown, a FATAL
failure exits non-zero, and neither a task ignoring cancellation nor a thread stuck in
a system call keeps the process alive. Each case runs in a child process."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

PRELUDE = """
import asyncio, sys, threading, time
from pilothouse import supervisor
from pilothouse.cli import process
"""


def spawn(body: str) -> subprocess.Popen[str]:
    script = PRELUDE + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert text in line, (line, proc.stderr.read() if proc.stderr else "")


def test_a_second_sigint_ends_a_stuck_shutdown_at_once() -> None:
    proc = spawn(
        """
        async def main() -> int:
            signals = process.Signals("stuck")
            print("ready", flush=True)
            await signals.received.wait()
            print("stopping", flush=True)
            await asyncio.sleep(3600)  # a shutdown that never ends
            return 0

        sys.exit(process.run(main(), name="stuck"))
        """
    )
    try:
        wait_for_line(proc, "ready")
        proc.send_signal(signal.SIGINT)
        wait_for_line(proc, "stopping")
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(5)
        assert code == 1 and time.monotonic() - began < 2
        assert proc.stderr is not None and "SIGINT again; stopping now" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_a_fatal_child_ends_the_run_with_status_1() -> None:
    proc = spawn(
        """
        async def main() -> int:
            signals = process.Signals("component")
            root = supervisor.Supervisor("component")

            async def listener() -> None:
                await asyncio.sleep(0.2)
                raise OSError("the socket went away")

            root.start("listener", listener, policy=supervisor.Policy.FATAL)
            try:
                await process.until_stopped(signals, root)
            except supervisor.ChildFailed as exc:
                print(f"failed: {exc}", flush=True)
                return 1
            return 0

        sys.exit(process.run(main(), name="component"))
        """
    )
    code = proc.wait(10)
    assert proc.stdout is not None
    out = proc.stdout.read()
    assert code == 1 and "failed: component/listener: OSError: the socket went away" in out


def test_neither_a_stubborn_task_nor_a_stuck_thread_keeps_the_process_alive() -> None:
    proc = spawn(
        """
        blocked = threading.Event()

        async def main() -> int:
            async def stubborn() -> None:
                while True:
                    try:
                        await asyncio.sleep(3600)
                    except asyncio.CancelledError:
                        pass  # ignores every cancellation

            asyncio.get_running_loop().create_task(stubborn())
            # A non-daemon thread stuck for ever (as a read on a FIFO nobody writes).
            threading.Thread(target=blocked.wait, name="stuck-reader").start()
            await asyncio.sleep(0.1)
            return 0

        sys.exit(process.run(main(), name="leaky"))
        """
    )
    began = time.monotonic()
    code = proc.wait(15)
    took = time.monotonic() - began
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert code == 0, err
    assert took < 2 * process_teardown() + 3, took
    assert "leaving 1 stuck thread(s) behind: stuck-reader" in err


def process_teardown() -> float:
    from pilothouse.cli import process

    return process.TEARDOWN_TIMEOUT
