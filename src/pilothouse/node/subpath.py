"""Mounting a part of a volume (``subPath``) safely (upstream's ``subpath_linux.go``).

A volume is writable by the pods that use it, so a pod can replace a directory of it
with a symlink to anywhere on the host (``/``, ``/etc``) and wait for a pod that
mounts that path with ``subPath``: a plain bind mount would follow the link and hand
the host's directory to the container (CVE-2017-1002101). So the subpath is resolved
once, checked to lie inside the volume, then opened one component at a time with
``O_NOFOLLOW`` from the volume's root, and that descriptor — exactly the inode that
was checked, however the tree changes meanwhile — is bind-mounted (through
``/proc/self/fd``) on a path of the pod's own,
``<pod dir>/volume-subpaths/<volume>/<container>/<n>``, which the runtime then mounts
into the container. The pod's cleanup unmounts these before anything of the pod's
directory is removed.

Missing directories of a subpath are created on the way, each with the mode of the
volume's root (so an fsGroup-owned volume's subdirectories are writable by the group).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path, PurePosixPath

NOFOLLOW_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class SubPathError(Exception):
    """A subpath that cannot be mounted; the message is safe to show the user."""


def within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _components(sub_path: str) -> list[str]:
    if PurePosixPath(sub_path).is_absolute():
        raise SubPathError(f"error SubPath `{sub_path}` must not be an absolute path")
    parts = [p for p in sub_path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SubPathError(f"unable to provision SubPath `{sub_path}`: must not contain '..'")
    return parts


def make_dirs(root: Path, sub_path: str) -> None:
    """Create the missing directories of ``sub_path`` under ``root`` without following
    any symlink on the way (a symlink ends the walk; :func:`open_safely` judges it)."""
    parts = _components(sub_path)
    mode = stat.S_IMODE(os.stat(root).st_mode)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            try:
                child = os.open(part, NOFOLLOW_PATH, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, mode, dir_fd=fd)
                child = os.open(part, NOFOLLOW_PATH | os.O_DIRECTORY, dir_fd=fd)
                os.chmod(f"/proc/self/fd/{child}", mode)  # mkdir honours the umask
            kind = os.fstat(child).st_mode
            os.close(fd)
            fd = child
            if not stat.S_ISDIR(kind):
                return  # a file or a symlink: nothing more to create
    finally:
        os.close(fd)


def open_safely(root: Path, sub_path: str) -> int:
    """An ``O_PATH`` descriptor of ``root/sub_path`` after symlinks are resolved, refused
    unless it lies inside ``root``. The caller closes it."""
    parts = _components(sub_path)
    base = os.path.realpath(root)
    target = os.path.realpath(os.path.join(base, *parts))
    if not within(target, base):
        raise SubPathError(f"subpath {sub_path!r} points outside of its volume")
    fd = os.open(base, NOFOLLOW_PATH | os.O_DIRECTORY)
    try:
        for part in PurePosixPath(os.path.relpath(target, base)).parts:
            if part == ".":
                continue
            try:
                child = os.open(part, NOFOLLOW_PATH, dir_fd=fd)
            except OSError as exc:
                raise SubPathError(f"cannot open subpath {sub_path!r}: {exc.strerror}") from None
            os.close(fd)
            fd = child
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise SubPathError(f"unexpected symlink found in subpath {sub_path!r}")
        return fd
    except BaseException:
        os.close(fd)
        raise


MS_BIND = 4096
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _mount_bind(source: str, target: str) -> None:
    if _libc.mount(source.encode(), target.encode(), None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def mounted(target: Path) -> bool:
    """Whether something is mounted on ``target`` (from the mount table: a bind mount of
    a directory of the same filesystem is invisible to ``os.path.ismount``)."""
    wanted = str(target)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].replace("\\040", " ") == wanted for line in f)


def unmount(target: str) -> None:
    """Unmount ``target`` (lazily if it is busy)."""
    if _libc.umount2(target.encode(), 0) != 0:
        err = ctypes.get_errno()
        if err == errno.EINVAL:
            return  # not a mount point
        if _libc.umount2(target.encode(), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), target)


def bind(root: Path, sub_path: str, target: Path) -> bool:
    """Bind-mount ``root/sub_path`` (checked, see the module docstring) on ``target``;
    True when it is a file. Raises SubPathError."""
    try:
        make_dirs(root, sub_path)
        fd = open_safely(root, sub_path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise SubPathError(f'path "{root}" does not exist') from None
        raise SubPathError(f"cannot prepare subpath {sub_path!r}: {exc.strerror}") from None
    try:
        is_file = stat.S_ISREG(os.fstat(fd).st_mode)
        target.parent.mkdir(parents=True, exist_ok=True)
        while mounted(target):
            unmount(str(target))  # a restarted container gets a freshly checked one
        if is_file:
            target.touch(exist_ok=True)
        else:
            target.mkdir(exist_ok=True)
        _mount_bind(f"/proc/self/fd/{fd}", str(target))
    except OSError as exc:
        raise SubPathError(f"cannot mount subpath {sub_path!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return is_file
