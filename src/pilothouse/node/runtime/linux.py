"""The few Linux system calls the runtime makes itself, through ctypes.

Mounting an overlay, pinning a namespace or unmounting are single system
calls; running ``mount``/``ip netns``/``umount`` for each would cost a process
start (2-10 ms) per step on the pod start-up path. Everything here is
synchronous and quick; callers run it in a worker thread (``asyncio.to_thread``)
so the event loop never waits on the kernel.

New namespaces are made in a *dedicated* thread that exits afterwards:
``unshare`` moves only the calling thread, and a pooled thread would go on
serving other work inside the pod's namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import os
import queue
import socket
import struct
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
_CLONE_FLAGS = {"net": CLONE_NEWNET, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC}

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

# Longest option string the kernel takes for mount(2): one page, with a NUL.
MAX_MOUNT_DATA = 4095

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]

IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_TO = 0x80
IN_CREATE = 0x100


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value: str | Path | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(
    source: str | Path | None,
    target: str | Path,
    fstype: str | None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """mount(2); raises OSError with the kernel's errno."""
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
        f"mount {source} on {target}",
    )


def umount(target: str | Path, *, detach: bool = True) -> bool:
    """Unmount ``target``; False when it was not mounted (or is gone)."""
    if _libc.umount2(_b(target), MNT_DETACH if detach else 0) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):
        return False
    raise OSError(err, f"umount {target}: {os.strerror(err)}")


def mount_overlay(target: Path, *, lower: list[Path], upper: Path, work: Path) -> None:
    """Mount an overlay of ``lower`` (topmost first) with a writable ``upper``."""
    options = f"lowerdir={':'.join(str(p) for p in lower)},upperdir={upper},workdir={work}"
    if len(options) > MAX_MOUNT_DATA:
        # Many layers with long paths overflow the option page: point at them
        # through short symlinks next to the container (the kernel resolves them).
        links = target.parent / "l"
        links.mkdir(exist_ok=True)
        short = []
        for i, layer in enumerate(lower):
            link = links / format(i, "x")
            if not link.is_symlink():
                link.symlink_to(layer)
            short.append(link)
        options = f"lowerdir={':'.join(str(p) for p in short)},upperdir={upper},workdir={work}"
    mount("overlay", target, "overlay", 0, options)


def mounted_paths() -> set[str]:
    """Every mount point of this mount namespace."""
    out = set()
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split(" ", 5)
            # Mount points escape spaces and tabs as octal sequences.
            out.add(fields[4].encode().decode("unicode_escape"))
    return out


def set_link_up(name: str) -> None:
    """Bring interface ``name`` up in the calling thread's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(
            s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | _IFF_UP)
        )


def _pin(kinds: dict[str, Path], hostname: str, loopback_up: bool) -> None:
    flags = 0
    for kind in kinds:
        flags |= _CLONE_FLAGS[kind]
    _check(_libc.unshare(flags), "unshare")
    if "uts" in kinds and hostname:
        name = hostname.encode()
        _check(_libc.sethostname(name, len(name)), "sethostname")
    if "net" in kinds and loopback_up:
        set_link_up("lo")
    tid = threading.get_native_id()
    done: list[Path] = []
    try:
        for kind, path in kinds.items():
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
            os.close(fd)
            mount(f"/proc/self/task/{tid}/ns/{kind}", path, None, MS_BIND)
            done.append(path)
    except BaseException:
        for path in done:
            umount(path)
        raise


async def pin_new_namespaces(
    kinds: dict[str, Path], *, hostname: str = "", loopback_up: bool = True
) -> None:
    """Create new namespaces (``{"net"|"uts"|"ipc": path}``) and bind-mount each at its path.

    The namespaces live as long as the bind mounts do (see :func:`unpin`). The
    UTS namespace gets ``hostname``; the network namespace gets ``lo`` up (the
    whole job of the CNI loopback plugin, without starting it).
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            _pin(kinds, hostname, loopback_up)
        except BaseException as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(_settle, fut, exc)
        else:
            loop.call_soon_threadsafe(_settle, fut, None)

    threading.Thread(target=run, name="pin-namespaces", daemon=True).start()
    await fut


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.cancelled():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)


async def socket_in_netns(netns_path: str) -> socket.socket:
    """A TCP socket that lives in the network namespace at ``netns_path``.

    A socket belongs to the namespace it was made in for good, so a throwaway
    thread joins the namespace, makes it, and ends.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[socket.socket] = loop.create_future()

    def run() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _check(_libc.setns(fd, CLONE_NEWNET), f"setns {netns_path}")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except BaseException as exc:
            loop.call_soon_threadsafe(_fail, fut, exc)
        else:
            loop.call_soon_threadsafe(_deliver, fut, sock)

    threading.Thread(target=run, name="netns-socket", daemon=True).start()
    return await fut


def _deliver(fut: asyncio.Future[socket.socket], sock: socket.socket) -> None:
    if fut.cancelled():
        sock.close()
    else:
        fut.set_result(sock)


def _fail(fut: asyncio.Future[socket.socket], exc: BaseException) -> None:
    if not fut.cancelled():
        fut.set_exception(exc)


def unpin(path: Path) -> None:
    """Release a pinned namespace: unmount its bind mount and remove the file."""
    umount(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class _Closer:
    """One daemon thread closing file descriptors in order, off the event loop. Daemon:
    a close still queued when the process exits is done by the exit itself, and a
    close that hangs must not keep the process alive."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def close(self, fd: int) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inotify-close", daemon=True)
                self._thread.start()
        self._queue.put(fd)

    def _run(self) -> None:
        while True:
            fd = self._queue.get()
            with contextlib.suppress(OSError):
                os.close(fd)


_CLOSER = _Closer()


class FileWatch:
    """inotify on one file: wake up when it is written, instead of polling it."""

    def __init__(self, path: Path, mask: int = IN_MODIFY | IN_CLOSE_WRITE) -> None:
        fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        if _libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close in the background: closing an inotify instance waits for an SRCU grace
        period in the kernel (~15 ms measured here), which would otherwise be added to
        every container start. One worker thread does the closes, in order."""
        _CLOSER.close(self.fd)

    def __enter__(self) -> FileWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def wait_readable(fds: list[int], timeout: float) -> bool:
    """Wait until any of ``fds`` is readable; False on timeout."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    for fd in fds:
        loop.add_reader(fd, ready)
    try:
        await asyncio.wait_for(fut, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        for fd in fds:
            loop.remove_reader(fd)


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


async def wait_for_file(path: Path, timeout: float) -> bool:
    """Wait until ``path`` exists (inotify on its directory); False on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with FileWatch(path.parent, IN_CREATE | IN_MOVED_TO) as watch:
        while not _exists(path):
            left = deadline - loop.time()
            if left <= 0:
                return False
            await wait_readable([watch.fd], min(left, 0.25))
            watch.drain()
    return True
