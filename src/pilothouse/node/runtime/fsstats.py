"""Filesystem figures the node needs: how full a filesystem is, and what a tree uses.

:func:`fs_stats` is one ``statvfs`` (capacity, available bytes, inodes), what
upstream's cAdvisor reports for the node and image filesystems. :func:`disk_usage`
walks a directory tree as ``du`` does — allocated blocks, each hard-linked inode once,
never crossing into another filesystem — for container writable layers, logs and
emptyDir volumes. Both are blocking; async callers run them in a thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FsStats:
    """One filesystem: capacity and what is left of it, in bytes and inodes."""

    capacity: int
    available: int  # to unprivileged users, as df shows it
    inodes: int
    inodes_free: int
    device: int  # st_dev, to tell whether two paths share a filesystem

    @property
    def used(self) -> int:
        return self.capacity - self.available


def fs_stats(path: Path) -> FsStats:
    st = os.statvfs(path)
    return FsStats(
        capacity=st.f_blocks * st.f_frsize,
        available=st.f_bavail * st.f_frsize,
        inodes=st.f_files,
        inodes_free=st.f_favail,
        device=os.stat(path).st_dev,
    )


@dataclass(frozen=True)
class Usage:
    bytes: int
    inodes: int


def disk_usage(path: Path) -> Usage:
    """Allocated bytes and inodes under ``path`` (itself included); zeros if it is gone."""
    try:
        top = os.lstat(path)
    except OSError:
        return Usage(0, 0)
    device = top.st_dev
    seen: set[int] = set()
    total = top.st_blocks * 512
    inodes = 1
    stack = [str(path)]
    while stack:
        current = stack.pop()
        try:
            entries = os.scandir(current)
        except OSError:
            continue  # vanished or unreadable: count what can be read
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_dev != device:
                    continue  # a mount point inside: another filesystem's business
                if st.st_nlink > 1:
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                total += st.st_blocks * 512
                inodes += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return Usage(total, inodes)
