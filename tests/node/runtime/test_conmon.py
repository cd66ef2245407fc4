"""conmon's files and process helpers (no containers)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pilothouse.node.runtime import conmon, linux


def test_sync_report(tmp_path: Path) -> None:
    assert conmon.read_sync(tmp_path) is None
    (tmp_path / conmon.SYNC_FILE).write_text("")
    assert conmon.read_sync(tmp_path) is None
    (tmp_path / conmon.SYNC_FILE).write_text('{"data": 4242}\n')
    assert conmon.read_sync(tmp_path) == {"data": 4242}
    (tmp_path / conmon.SYNC_FILE).write_text(
        '{"data": -1, "message": "executable file not found"}\n'
    )
    assert conmon.read_sync(tmp_path) == {"data": -1, "message": "executable file not found"}


def test_exit_file(tmp_path: Path) -> None:
    assert conmon.read_exit(tmp_path, "c1") is None
    (tmp_path / "c1").write_text("")  # being written
    assert conmon.read_exit(tmp_path, "c1") is None
    (tmp_path / "c1").write_text("137")
    code, when = conmon.read_exit(tmp_path, "c1") or (0, 0.0)
    assert code == 137 and abs(when - time.time()) < 60


def test_conmon_error_lines(tmp_path: Path) -> None:
    (tmp_path / conmon.CONMON_ERR).write_text(
        "[conmon:d]: failed to write to /proc/self/oom_score_adj\n"
        "[conmon:e]: Failed to create symlink for attach socket: No such file\n"
    )
    assert (
        conmon.conmon_error(tmp_path) == "Failed to create symlink for attach socket: No such file"
    )


def test_process_liveness() -> None:
    me = conmon.process_start_time(os.getpid())
    assert me is not None and conmon.alive(os.getpid(), me)
    assert not conmon.alive(os.getpid(), me + 1)  # a recycled pid is not ours
    assert conmon.process_start_time(2**22 + 17) is None


async def test_wait_exit_uses_pidfd() -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "0.3")
    start = conmon.process_start_time(proc.pid)
    assert start is not None
    assert not await conmon.wait_exit(proc.pid, start, 0.05)
    waiter = asyncio.create_task(conmon.wait_exit(proc.pid, start, 5))
    await proc.wait()  # reaped: the pidfd becomes readable
    assert await waiter


def test_reopen_log_without_conmon(tmp_path: Path) -> None:
    assert conmon.reopen_log(tmp_path) is False  # no FIFO
    os.mkfifo(tmp_path / "ctl")
    assert conmon.reopen_log(tmp_path) is False  # nobody reading


def test_reopen_log_writes_the_command(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "ctl")
    reader = os.open(tmp_path / "ctl", os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert conmon.reopen_log(tmp_path) is True
        assert os.read(reader, 100) == b"2 0 0\n"
    finally:
        os.close(reader)


async def test_wait_for_file(tmp_path: Path) -> None:
    target = tmp_path / "new.log"
    assert not await linux.wait_for_file(target, 0.05)
    asyncio.get_running_loop().call_later(0.05, target.write_text, "x")
    assert await linux.wait_for_file(target, 5)


def test_runtime_cli_state_checks(tmp_path: Path) -> None:
    cli = conmon.RuntimeCLI("crun", tmp_path)
    assert not cli.exists("c1")
    (tmp_path / "c1").mkdir()
    os.mkfifo(tmp_path / "c1" / "exec.fifo")
    assert cli.exists("c1") and cli.created_not_started("c1")
