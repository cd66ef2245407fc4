"""Streams into running containers: ``kubectl exec``, ``attach`` and ``port-forward``.

* exec without a terminal is ``crun exec`` with pipes; with a terminal, crun
  hands the pseudo-terminal's master over a console socket (SCM_RIGHTS) and
  we read and write it directly (resize: TIOCSWINSZ on it).
* attach talks to conmon's attach socket (SOCK_SEQPACKET): each message from
  conmon starts with a byte naming the stream (2 stdout, 3 stderr), what we send
  goes to the container's stdin; a resize is ``1 <rows> <cols>`` on the ``ctl`` FIFO.
* port-forward opens a TCP socket *inside* the pod's network namespace (made
  in a short-lived thread that joins it) and connects to localhost there.

Each returns objects satisfying :class:`protocol.StreamingProcess`: asyncio
streams plus ``wait``, ``resize`` and ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import secrets
import socket
import struct
import termios
from collections.abc import Awaitable, Callable
from pathlib import Path

from pilothouse.node.runtime import linux
from pilothouse.node.runtime.protocol import RuntimeError_

STDOUT_PIPE = 2
STDERR_PIPE = 3
_SEQPACKET_MAX = 8192 + 1  # conmon's buffer plus the stream byte


def _fd_reader(fd: int) -> tuple[asyncio.StreamReader, Callable[[], None]]:
    """A StreamReader fed from ``fd`` (a pty master: EIO, not EOF, when the other side closes)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    os.set_blocking(fd, False)

    def ready() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                reader.set_exception(exc)
            data = b""
        if data:
            reader.feed_data(data)
        else:
            loop.remove_reader(fd)
            reader.feed_eof()

    def stop() -> None:
        loop.remove_reader(fd)

    loop.add_reader(fd, ready)
    return reader, stop


async def _fd_writer(fd: int) -> asyncio.StreamWriter:
    """A StreamWriter onto ``fd`` (takes ownership of it)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", buffering=0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


def _kill_pid_file(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(path.read_text().strip()), 9)


class ExecProcess:
    """``crun exec`` of one command; pipes, or a pseudo-terminal with ``tty``."""

    def __init__(self, proc: asyncio.subprocess.Process, files: list[Path]) -> None:
        self.proc = proc
        self.stdin: asyncio.StreamWriter | None = proc.stdin
        self.stdout: asyncio.StreamReader | None = proc.stdout
        self.stderr: asyncio.StreamReader | None = proc.stderr
        self.master = -1
        self._files = files
        self._stop_reading: Callable[[], None] = lambda: None

    async def wait(self) -> int:
        return await self.proc.wait()

    def resize(self, width: int, height: int) -> None:
        if self.master >= 0:
            with contextlib.suppress(OSError):
                fcntl.ioctl(
                    self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0)
                )

    async def close(self) -> None:
        if self.proc.returncode is None:
            _kill_pid_file(self._files[1])
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5)
        if self.stdin is not None:
            self.stdin.close()
        self._stop_reading()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        for f in self._files:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()


async def exec_process(
    *,
    runtime_path: str,
    runtime_root: Path,
    container_id: str,
    process_file: Path,
    work_dir: Path,
    tty: bool,
    stdin: bool,
) -> ExecProcess:
    """Start the process described by ``process_file`` in the container."""
    pid_file = process_file.with_suffix(".pid")
    args = [
        runtime_path, f"--root={runtime_root}", "exec",
        f"--process={process_file}", f"--pid-file={pid_file}",
    ]  # fmt: skip
    if not tty:
        proc = await asyncio.create_subprocess_exec(
            *args, container_id,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return ExecProcess(proc, [process_file, pid_file])

    # The runtime connects here and sends the pty master; short path (108-byte limit).
    sock_path = work_dir / f"c-{secrets.token_hex(4)}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(1)
    listener.setblocking(False)
    files = [process_file, pid_file, sock_path]
    loop = asyncio.get_running_loop()
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, "--tty", f"--console-socket={sock_path}", container_id,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        accept = asyncio.ensure_future(loop.sock_accept(listener))
        exited = asyncio.ensure_future(proc.wait())
        await asyncio.wait([accept, exited], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if not accept.done():
            accept.cancel()
            err = b""
            if proc.stderr is not None and exited.done():
                err = await proc.stderr.read()
            if not exited.done():
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            raise RuntimeError_(
                "ExecError", err.decode(errors="replace").strip() or "exec did not start"
            )
        exited.cancel()
        conn, _ = accept.result()
        with conn:
            conn.setblocking(True)
            conn.settimeout(10)
            _msg, fds, _flags, _addr = await asyncio.to_thread(socket.recv_fds, conn, 4096, 1)
    except BaseException:
        for f in files:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        raise
    finally:
        listener.close()
    if not fds:
        raise RuntimeError_("ExecError", "the runtime sent no terminal")
    out = ExecProcess(proc, files)
    out.master = fds[0]
    out.stdout, out._stop_reading = _fd_reader(out.master)
    out.stderr = None
    out.stdin = await _fd_writer(os.dup(out.master)) if stdin else None
    return out


class AttachSession:
    """A connection to conmon's attach socket: the container's own stdio."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        ctl: Path,
        tty: bool,
        wait_exit: Callable[[], Awaitable[int]],
    ) -> None:
        self.sock = sock
        self.ctl = ctl
        self.tty = tty
        self._wait_exit = wait_exit
        self.stdout: asyncio.StreamReader | None = asyncio.StreamReader()
        self.stderr: asyncio.StreamReader | None = None if tty else asyncio.StreamReader()
        self.stdin: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._local: socket.socket | None = None

    async def _pump_out(self) -> None:
        loop = asyncio.get_running_loop()
        readers = [r for r in (self.stdout, self.stderr) if r is not None]
        try:
            while True:
                data = await loop.sock_recv(self.sock, _SEQPACKET_MAX)
                if not data:
                    break
                target = self.stderr if data[0] == STDERR_PIPE and self.stderr else self.stdout
                if target is not None:
                    target.feed_data(data[1:])
        except OSError:
            pass
        finally:
            for r in readers:
                r.feed_eof()

    async def _pump_in(self, local: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.sock_recv(local, 8192):
                await loop.sock_sendall(self.sock, data)
            # stdin closed by the caller: conmon closes the container's stdin (stdinOnce).
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    async def open_stdin(self) -> None:
        """A writer whose bytes go to the container's stdin (through a socketpair)."""
        ours, pump = socket.socketpair()
        pump.setblocking(False)
        self._local = pump
        _reader, self.stdin = await asyncio.open_unix_connection(sock=ours)
        self._tasks.append(asyncio.ensure_future(self._pump_in(pump)))

    def start(self) -> None:
        self._tasks.append(asyncio.ensure_future(self._pump_out()))

    async def wait(self) -> int:
        return await self._wait_exit()

    def resize(self, width: int, height: int) -> None:
        if self.tty:
            _write_ctl(self.ctl, f"1 {height} {width}\n")

    async def close(self) -> None:
        if self.stdin is not None:
            self.stdin.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await t
        if self._local is not None:
            self._local.close()
        self.sock.close()


def _write_ctl(ctl: Path, line: str) -> None:
    try:
        fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, line.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


async def attach(
    socket_path: Path,
    *,
    ctl: Path,
    tty: bool,
    stdin: bool,
    wait_exit: Callable[[], Awaitable[int]],
) -> AttachSession:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, str(socket_path))
    except OSError as exc:
        sock.close()
        raise RuntimeError_("AttachError", f"cannot attach: {exc.strerror or exc}") from exc
    session = AttachSession(sock, ctl=ctl, tty=tty, wait_exit=wait_exit)
    session.start()
    if stdin:
        await session.open_stdin()
    return session


async def port_forward(
    netns_path: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to localhost:``port`` in the namespace (the host's if no path)."""
    sock = await linux.socket_in_netns(netns_path) if netns_path else socket.socket()
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise RuntimeError_(
            "PortForwardError",
            f"failed to connect to localhost:{port} inside the pod: {exc.strerror or exc}",
        ) from exc
    return await asyncio.open_connection(sock=sock)
