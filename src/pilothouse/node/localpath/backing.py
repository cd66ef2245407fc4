"""What a local-path volume is on disk: a loop-mounted ext4 image (capacity enforced) or a
plain directory (capacity not enforced).

Measured on the development machine (see BENCHMARKS.md, "Local volume backings"):
a plain directory costs ~0.1 ms and enforces nothing; XFS or ext4 project quotas
would enforce capacity for ~1 ms but need a filesystem mounted with ``prjquota``
and a kernel built with quota support (``CONFIG_XFS_QUOTA``/``CONFIG_QFMT_V2``),
which that machine's kernel lacks — so quotas could not be used, or tested, there;
a loop-mounted ext4 image per volume costs ~15 ms, enforces capacity on any
filesystem and can grow online (``resize2fs``). Images are the default where the
node can loop-mount (root, ``/dev/loop-control``, ``mkfs.ext4``); elsewhere, and
when a StorageClass asks for ``backing: directory``, volumes are directories and
the provisioner says so in the volume's events.

An image is ``<storage>/.images/<volume name>.ext4``, allocated up front
(``posix_fallocate``: the space is the volume's, the host disk cannot run out under
it), grown until the filesystem offers at least the capacity asked for, and mounted
on the volume's directory. Mounts survive the agent; after a reboot the agent
mounts an image again before a container uses it (:meth:`ImageBacking.ensure_ready`).
The directory of an unmounted image is never handed to a container.

These are blocking calls: the caller runs them in a thread. A per-volume lock keeps
two threads from mounting one image twice.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

MiB = 1024 * 1024
IMAGES_DIR = ".images"
# ext4 keeps journal, inode tables and growth reserve: images are grown until the
# filesystem offers the capacity asked for, in at most this many rounds.
GROW_ROUNDS = 4


class BackingError(Exception):
    """The volume could not be created, grown, deleted or made ready (message says why)."""


class Backing(Protocol):
    name: str
    enforced: bool
    # Why capacity is not enforced (empty when it is).
    not_enforced_because: str

    def create(self, path: Path, size: int) -> None: ...

    def delete(self, path: Path) -> None: ...

    def expand(self, path: Path, size: int) -> None: ...

    def ensure_ready(self, path: Path) -> None: ...


def _run(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        raise BackingError(f"{argv[0]} failed: {message[-1] if message else proc.returncode}")


def is_mounted(path: Path) -> bool:
    return os.path.ismount(path)


def _make_world_writable_dir(path: Path) -> None:
    path.mkdir(mode=0o777, exist_ok=True)
    path.chmod(0o777)  # mkdir honours the umask


class DirectoryBacking:
    """A plain directory: nothing enforces its capacity."""

    name = "directory"
    enforced = False

    def __init__(self, why: str) -> None:
        self.not_enforced_because = why

    def create(self, path: Path, size: int) -> None:
        _make_world_writable_dir(path)

    def delete(self, path: Path) -> None:
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        elif path.exists():
            if is_mounted(path):
                raise BackingError(f"{path} is a mount point; not removing it")
            shutil.rmtree(path)

    def expand(self, path: Path, size: int) -> None:
        return None  # nothing to grow: the size was never enforced

    def ensure_ready(self, path: Path) -> None:
        if not path.is_dir():
            raise BackingError(f'path "{path}" does not exist')


class ImageBacking:
    """A loop-mounted ext4 image per volume: capacity enforced, online growth."""

    name = "image"
    enforced = True
    not_enforced_because = ""

    def __init__(self, storage_dir: Path) -> None:
        self.images = storage_dir / IMAGES_DIR
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def image_of(self, path: Path) -> Path:
        # A volume's directory is "<volume>_<namespace>_<claim>"; its image is named
        # after the volume alone (the directory's name may use all 255 bytes).
        return self.images / f"{path.name.split('_', 1)[0]}.ext4"

    def _lock(self, path: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(str(path), threading.Lock())

    def create(self, path: Path, size: int) -> None:
        image = self.image_of(path)
        with self._lock(path):
            if image.exists():
                # Made before the agent stopped half-way: use it, never format it again.
                self._ensure_mounted(path)
                self._grow_until(path, image, size)
                return
            self.images.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.mkdir(mode=0o755, exist_ok=True)
            try:
                # ext4 keeps ~3-13 % for itself (journal, inode tables): start above the
                # size asked for, so growing is the exception.
                _allocate(image, _round_up(size + size // 14 + 16 * MiB, MiB))
                _run(
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-m",
                    "0",
                    "-E",
                    "lazy_itable_init=1,lazy_journal_init=1",
                    str(image),
                )
                _run("mount", "-o", "loop", str(image), str(path))
                self._grow_until(path, image, size)
                # Empty and writable by anyone, as a fresh local-path directory is.
                with contextlib.suppress(OSError):
                    (path / "lost+found").rmdir()
                path.chmod(0o777)
            except BaseException:
                with contextlib.suppress(BackingError, OSError):
                    self._remove(path, image)
                raise

    def _grow_until(self, path: Path, image: Path, size: int) -> None:
        """Grow a filesystem nobody else uses yet until it offers ``size`` bytes (offline:
        resizing a mounted ext4 needs CAP_SYS_RESOURCE, which some hosts withhold)."""
        for _ in range(GROW_ROUNDS):
            missing = size - _available(path)
            if missing <= 0:
                return
            _run("umount", str(path))
            _allocate(image, image.stat().st_size + _round_up(missing + missing // 8, MiB))
            _run("resize2fs", "-f", str(image))
            _run("mount", "-o", "loop", str(image), str(path))
        raise BackingError(f"the filesystem on {image} did not reach {size} bytes")

    def delete(self, path: Path) -> None:
        with self._lock(path):
            self._remove(path, self.image_of(path))

    def _remove(self, path: Path, image: Path) -> None:
        if is_mounted(path):
            _run("umount", str(path))
        if is_mounted(path):
            raise BackingError(f"{path} is still mounted; not removing it")
        with contextlib.suppress(FileNotFoundError):
            image.unlink()
        with contextlib.suppress(FileNotFoundError):
            path.rmdir()

    def expand(self, path: Path, size: int) -> None:
        """Grow a volume that may be in use: online when the kernel lets us, else offline
        once no container has it mounted (the caller retries until then)."""
        with self._lock(path):
            self._ensure_mounted(path)
            image = self.image_of(path)
            missing = size - _available(path)
            if missing <= 0:
                return
            if not _mounted_elsewhere(path):
                self._grow_until(path, image, size)
                return
            _allocate(image, image.stat().st_size + _round_up(missing + missing // 8, MiB))
            device = _loop_device(path)
            _run("losetup", "-c", device)
            try:
                _run("resize2fs", device)
            except BackingError as exc:
                raise BackingError(
                    f"{exc}; growing a volume in use needs CAP_SYS_RESOURCE, which the node "
                    "agent lacks: it grows once no pod uses it"
                ) from None
            if _available(path) < size:
                raise BackingError(f"the filesystem on {image} did not reach {size} bytes")

    def ensure_ready(self, path: Path) -> None:
        with self._lock(path):
            self._ensure_mounted(path)

    def _ensure_mounted(self, path: Path) -> None:
        if is_mounted(path):
            return
        image = self.image_of(path)
        if not image.exists():
            raise BackingError(f'the image of "{path}" is missing ({image})')
        path.mkdir(mode=0o755, exist_ok=True)
        _run("mount", "-o", "loop", str(image), str(path))


def free_space(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    return _available(path)


def human(size: int) -> str:
    """``1.5Gi``-style, as quantities are written."""
    value = float(size)
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if value < 1024 or unit == "Ti":
            return f"{value:.0f}{unit}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _available(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _mounted_elsewhere(path: Path) -> bool:
    """Whether the filesystem mounted on ``path`` is also mounted in another mount
    namespace (a container's): then it may not be unmounted to be resized."""
    device = ""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path):
            device = fields[2]
    if not device:
        return False
    ours = os.readlink("/proc/self/ns/mnt")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/ns/mnt") == ours:
                continue
            text = Path(f"/proc/{entry.name}/mountinfo").read_text()
        except OSError:
            continue  # gone, or not ours to read
        if any(line.split()[2] == device for line in text.splitlines()):
            return True
    return False


def _allocate(image: Path, size: int) -> None:
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise BackingError(f"not enough space on the node for {size} bytes") from None
        raise BackingError(f"cannot allocate {image}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _loop_device(path: Path) -> str:
    """The loop device mounted on ``path`` (from the mount table)."""
    target = str(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[4] == target:
            return fields[sep + 2]
    raise BackingError(f"{path} is not mounted")


def probe(images: ImageBacking) -> str:
    """ "" if this node can loop-mount images (tried once, for real), else why not."""
    if os.geteuid() != 0:
        return "the node agent does not run as root (loop devices need it)"
    if not Path("/dev/loop-control").exists():
        return "the node has no loop devices (/dev/loop-control is missing)"
    for tool in ("mkfs.ext4", "resize2fs", "losetup", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed on the node (Debian: e2fsprogs, util-linux)"
    storage_dir = images.images.parent
    storage_dir.mkdir(parents=True, exist_ok=True)
    trial = Path(tempfile.mkdtemp(prefix=".probe-", dir=storage_dir))
    try:
        images.create(trial, 4 * MiB)
        images.delete(trial)
    except (BackingError, OSError) as exc:
        with contextlib.suppress(BackingError, OSError):
            images.delete(trial)
        return f"the node cannot loop-mount an ext4 image ({exc})"
    finally:
        with contextlib.suppress(OSError):
            trial.rmdir()
    return ""
