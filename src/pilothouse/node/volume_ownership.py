"""Giving a volume to the pod's ``fsGroup`` (upstream's ``SetVolumeOwnership``).

Every file and directory of the volume gets the group, group read/write (read only for
read-only mounts), and directories also group execute and setgid (new files inherit the
group). Symlinks get the group but keep their mode (a chmod would go through them).
``fsGroupChangePolicy: OnRootMismatch`` skips the walk when the volume's root already
has the group and those bits — large volumes then start without touching every file;
``Always`` (the default) walks every time the volume is set up for a pod.

Blocking: the node agent calls it in a thread.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

RW_MASK = 0o660
RO_MASK = 0o440
EXEC_MASK = 0o110


def needs_change(root: Path, fs_group: int, *, readonly: bool) -> bool:
    info = os.stat(root)
    if info.st_gid != fs_group or not stat.S_ISDIR(info.st_mode):
        return True
    wanted = (RO_MASK if readonly else RW_MASK) | EXEC_MASK
    return (info.st_mode & wanted) != wanted or not info.st_mode & stat.S_ISGID


def _change(path: str, fs_group: int, readonly: bool) -> None:
    info = os.lstat(path)
    os.lchown(path, -1, fs_group)
    if stat.S_ISLNK(info.st_mode):
        return
    mask = RO_MASK if readonly else RW_MASK
    if stat.S_ISDIR(info.st_mode):
        mask |= stat.S_ISGID | EXEC_MASK
    os.chmod(path, stat.S_IMODE(info.st_mode) | mask)


def set_volume_ownership(
    root: Path, fs_group: int, *, policy: str = "Always", readonly: bool = False
) -> bool:
    """Apply ``fs_group`` to the volume at ``root``; True when it walked the volume."""
    if policy == "OnRootMismatch" and not needs_change(root, fs_group, readonly=readonly):
        return False
    _change(str(root), fs_group, readonly)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            _change(os.path.join(dirpath, name), fs_group, readonly)
    return True
