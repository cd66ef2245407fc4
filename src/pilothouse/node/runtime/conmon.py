"""conmon, the per-container monitor, and the OCI runtime's command line.

Each container runs under its own ``conmon`` so it outlives the agent:
conmon runs ``crun create``, holds the container's stdout and stderr and
writes them to the CRI log file, waits for the container and writes its exit
code into ``--exit-dir``. What it does and what it leaves to us (measured on
conmon 2.1.6 with crun 1.8.1):

* the launching process forks the monitor and exits at once (always 0); it
  must be waited for, and writes the monitor's pid to ``--conmon-pidfile``;
* the container's pid arrives as one JSON line (``{"data": pid}`` or
  ``{"data": -1, "message": …}``) on the descriptor named by ``_OCI_SYNCPIPE``;
  it is never closed, so we hand it a regular file, which a restarted agent
  can still read if it died half-way through a start;
* errors before that go to conmon's stderr, kept in ``conmon.err``;
* the attach socket lives under ``--socket-dir-path``/<short id> (a symlink to
  the bundle), so the directory must exist and the path stay short;
* signals sent to conmon go to the container: stop with ``crun kill``;
* writing ``2 0 0`` to the bundle's ``ctl`` FIFO makes it reopen its log file;
* on an OOM kill it creates ``oom`` in its working directory (we start it in
  the bundle, a second witness beside the memory cgroup's counter);
* cleanup (``crun delete``, exit file, FIFOs) is the caller's, once conmon is gone.

Liveness is checked with the process's start time (``/proc/<pid>/stat``) so
that a recycled pid is never taken for our conmon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from pilothouse.node.runtime import linux
from pilothouse.node.runtime.protocol import RuntimeError_

SYNC_FILE = "sync"
CONMON_PIDFILE = "conmon.pid"
CONTAINER_PIDFILE = "pidfile"
CONMON_ERR = "conmon.err"


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot), or None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data.rpartition(b")")[2].split()
    # fields[0] is the state (field 3); a zombie has exited already.
    if not fields or fields[0] == b"Z":
        return None
    return int(fields[19])


def alive(pid: int, start_time: int) -> bool:
    return pid > 0 and process_start_time(pid) == start_time


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def conmon_pid(bundle: Path) -> int | None:
    return _read_int(bundle / CONMON_PIDFILE)


def read_sync(bundle: Path) -> dict[str, Any] | None:
    """conmon's report on ``crun create``, once written."""
    try:
        line = (bundle / SYNC_FILE).read_text().strip().splitlines()
    except OSError:
        return None
    if not line:
        return None
    try:
        report = json.loads(line[0])
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def read_exit(exit_dir: Path, container_id: str) -> tuple[int, float] | None:
    """(exit code, when) from conmon's exit file, or None while the container runs."""
    path = exit_dir / container_id
    code = _read_int(path)
    if code is None:
        return None
    try:
        return code, path.stat().st_mtime
    except OSError:
        return None


def conmon_error(bundle: Path) -> str:
    try:
        text = (bundle / CONMON_ERR).read_text(errors="replace")
    except OSError:
        return ""
    lines = [ln.removeprefix("[conmon:e]: ").strip() for ln in text.splitlines() if ":e]" in ln]
    return "; ".join(lines) or text.strip()[-500:]


async def launch(
    *,
    conmon: str,
    runtime_path: str,
    runtime_root: Path,
    container_id: str,
    name: str,
    bundle: Path,
    exit_dir: Path,
    socket_dir: Path,
    log_path: str,
    tty: bool = False,
    stdin: bool = False,
    stdin_once: bool = False,
    timeout: float = 60.0,
) -> tuple[int, int, int]:
    """Start conmon, which creates the container; returns (container pid, conmon pid, its start time).

    Raises RuntimeError_("CreateContainerError") with crun's or conmon's message.
    """
    args = [
        conmon,
        "--api-version", "1",
        "-c", container_id,
        "-u", container_id[:12],
        "-n", name,
        "-r", runtime_path,
        "-b", str(bundle),
        "-p", str(bundle / CONTAINER_PIDFILE),
        "-P", str(bundle / CONMON_PIDFILE),
        "--exit-dir", str(exit_dir),
        "--socket-dir-path", str(socket_dir),
        "-l", f"k8s-file:{log_path}",
        "--runtime-arg", f"--root={runtime_root}",
    ]  # fmt: skip
    if tty:
        args.append("-t")
    if stdin:
        args.append("-i")
        if not stdin_once:
            # Kubernetes' stdinOnce=false: stdin stays open when an attached client leaves.
            args.append("--leave-stdin-open")
    sync_fd = os.open(bundle / SYNC_FILE, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    err_fd = os.open(
        bundle / CONMON_ERR, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
    )
    env = {
        "_OCI_SYNCPIPE": str(sync_fd),
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    }
    started = time.monotonic()
    # Woken by the write itself (inotify), not by polling: it saves 5-10 ms a start.
    with linux.FileWatch(bundle / SYNC_FILE) as watch:
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err_fd,
                env=env,
                pass_fds=(sync_fd,),
                start_new_session=True,
                # conmon drops an "oom" file in its working directory when the
                # container's cgroup runs out of memory: keep it in the bundle.
                cwd=bundle,
            )
            await proc.wait()
        finally:
            os.close(sync_fd)
            os.close(err_fd)
        pid = conmon_pid(bundle)
        if pid is None:
            raise RuntimeError_(
                "CreateContainerError",
                f"conmon did not start: {conmon_error(bundle) or 'no pid file'}",
            )
        start_time = process_start_time(pid)
        report = await _wait_report(bundle, watch, pid, start_time, started + timeout)
    if report is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        raise RuntimeError_(
            "CreateContainerError", f"creating the container took more than {timeout:.0f}s"
        )
    data = report.get("data")
    if not isinstance(data, int) or data <= 0:
        message = str(report.get("message") or conmon_error(bundle) or "crun create failed").strip()
        raise RuntimeError_("CreateContainerError", message)
    return data, pid, start_time or 0


async def _wait_report(
    bundle: Path, watch: linux.FileWatch, pid: int, start_time: int | None, deadline: float
) -> dict[str, Any] | None:
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        while True:
            report = read_sync(bundle)
            if report is not None:
                return report
            if start_time is None or process_start_time(pid) != start_time:
                report = read_sync(bundle)
                if report is not None:
                    return report
                raise RuntimeError_(
                    "CreateContainerError",
                    conmon_error(bundle) or "conmon exited before creating the container",
                )
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            fds = [watch.fd] + ([pidfd] if pidfd >= 0 else [])
            # The timeout is a safety net only; writes and conmon's exit wake us.
            await linux.wait_readable(fds, min(left, 0.25))
            watch.drain()
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def attach_socket(socket_dir: Path, container_id: str) -> Path:
    """Where conmon listens for attach clients (through its short symlink to the bundle)."""
    return socket_dir / container_id[:12] / "attach"


def reopen_log(bundle: Path) -> bool:
    """Ask conmon to reopen its log file; False when conmon is gone."""
    try:
        fd = os.open(bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        # ENXIO: nobody reads the FIFO any more; ENOENT: never created.
        return False
    try:
        os.write(fd, b"2 0 0\n")
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


async def wait_exit(pid: int, start_time: int, timeout: float | None) -> bool:
    """Wait until process ``pid`` is gone (a pidfd, no polling); False on timeout."""
    if not alive(pid, start_time):
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    try:
        if process_start_time(pid) != start_time:
            return True
        loop.add_reader(fd, ready)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
        return True
    finally:
        os.close(fd)


# --- the OCI runtime's command line -----------------------------------------------------------
class RuntimeCLI:
    """crun (or runc) commands for containers kept under ``root``."""

    def __init__(self, binary: str, root: Path) -> None:
        path = shutil.which(binary)
        self.name = Path(binary).name
        self.path = path or binary
        self.root = root

    async def run(self, *args: str, timeout: float = 30.0) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            self.path, f"--root={self.root}", *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return -1, f"{self.name} {args[0]} timed out after {timeout:.0f}s"
        return proc.returncode or 0, out.decode(errors="replace").strip()

    async def version(self) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.path,
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        for line in out.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "version":
                return parts[2]
        return ""

    async def start(self, container_id: str) -> None:
        rc, out = await self.run("start", container_id)
        if rc != 0:
            raise RuntimeError_("RunContainerError", out or f"{self.name} start failed")

    async def kill(self, container_id: str, signal: str) -> bool:
        rc, _ = await self.run("kill", container_id, signal)
        return rc == 0

    async def delete(self, container_id: str, *, force: bool = False) -> bool:
        args = ["delete", "--force", container_id] if force else ["delete", container_id]
        rc, _ = await self.run(*args)
        return rc == 0

    def exists(self, container_id: str) -> bool:
        return (self.root / container_id).is_dir()

    def created_not_started(self, container_id: str) -> bool:
        """crun and runc both keep ``exec.fifo`` until ``start`` opens it."""
        return (self.root / container_id / "exec.fifo").exists()
