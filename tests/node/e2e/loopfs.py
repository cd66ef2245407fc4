"""Small filesystems for disk tests: a sparse file, ext4 on a loop device, mounted where
the test says — made and removed by the test, even when it fails."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def loop_filesystem(image: Path, mountpoint: Path, *, size_mb: int) -> Iterator[Path]:
    """ext4 of ``size_mb`` MiB in ``image``, mounted at ``mountpoint`` until the block ends."""
    image.parent.mkdir(parents=True, exist_ok=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", str(image))
    device = _run("losetup", "--find", "--show", str(image))
    try:
        _run("mount", device, str(mountpoint))
        try:
            yield mountpoint
        finally:
            for _attempt in range(50):
                done = subprocess.run(["umount", str(mountpoint)], capture_output=True)
                if done.returncode == 0:
                    break
                time.sleep(0.2)
            else:
                subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True)
        image.unlink(missing_ok=True)
