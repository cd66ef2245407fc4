"""How a local volume can be kept on this machine, measured: plain directories, project
quotas (XFS, or ext4 with ``project``), and a loop-mounted ext4 image per volume.

For each: the time to create and to delete one volume of ``--size`` (p50 of
``--volumes``), and whether writing past the size fails (capacity enforced). A way the
machine cannot offer is reported with the reason (a tool or kernel feature missing),
found by trying it. The local-path provisioner's choice (node/localpath/backing.py) rests
on these figures.

Needs root. Usage: sudo .venv/bin/python bench/storage_backings.py [--volumes 20]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import gzip
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FS_XFLAG_PROJINHERIT = 0x200
Q_SETQUOTA = 0x800008
PRJQUOTA = 2
SYS_QUOTACTL_FD = 443  # x86_64


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def overflows(path: Path, size: int) -> bool:
    """True when writing twice ``size`` into ``path`` fails with ENOSPC/EDQUOT."""
    try:
        with open(path / "fill", "wb") as f:
            for _ in range(2 * size // MiB):
                f.write(b"\0" * MiB)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    finally:
        with contextlib.suppress(OSError):
            (path / "fill").unlink()
    return False


def timed(
    n: int, create: Callable[[int], Path], delete: Callable[[int, Path], None]
) -> dict[str, float]:
    made, removed = [], []
    for i in range(n):
        t0 = time.perf_counter()
        path = create(i)
        made.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        delete(i, path)
        removed.append((time.perf_counter() - t0) * 1000)
    return {
        "create_ms": round(statistics.median(made), 3),
        "delete_ms": round(statistics.median(removed), 3),
    }


def directories(root: Path, n: int, size: int) -> dict[str, Any]:
    def create(i: int) -> Path:
        path = root / f"dir-{i}"
        path.mkdir(mode=0o777)
        return path

    def delete(i: int, path: Path) -> None:
        shutil.rmtree(path)

    out: dict[str, Any] = timed(n, create, delete)
    probe = create(n)
    out["enforced"] = overflows(probe, size)
    delete(n, probe)
    return out


def images(root: Path, n: int, size: int) -> dict[str, Any]:
    def create(i: int) -> Path:
        image, path = root / f"img-{i}.ext4", root / f"img-{i}"
        path.mkdir()
        with open(image, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, size + size // 14 + 16 * MiB)
        run(
            "mkfs.ext4",
            "-q",
            "-F",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1",
            str(image),
        )
        run("mount", "-o", "loop", str(image), str(path))
        return path

    def delete(i: int, path: Path) -> None:
        run("umount", str(path))
        (root / f"img-{i}.ext4").unlink()
        path.rmdir()

    out: dict[str, Any] = timed(n, create, delete)
    probe = create(n)
    out["enforced"] = overflows(probe, size)
    delete(n, probe)
    return out


def _kernel_config(option: str) -> str:
    with contextlib.suppress(OSError), gzip.open("/proc/config.gz", "rt") as f:
        for line in f:
            if line.startswith((option + "=", f"# {option} is not set")):
                return line.strip()
    return f"{option}: unknown (no /proc/config.gz)"


def project_quotas(root: Path, n: int, size: int, fs: str) -> dict[str, Any]:
    """Project quotas on one filesystem of that type made for the purpose (an image)."""
    mkfs = {
        "xfs": ["mkfs.xfs", "-q", "-f"],
        "ext4": ["mkfs.ext4", "-q", "-F", "-O", "quota,project"],
    }[fs]
    if shutil.which(mkfs[0]) is None:
        return {"available": False, "why": f"{mkfs[0]} is not installed"}
    image, mnt = root / f"{fs}-quota.img", root / f"{fs}-quota"
    mnt.mkdir()
    with open(image, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(512 * MiB, 4 * size))
    try:
        run(*mkfs, str(image))
        run("mount", "-o", "loop,prjquota", str(image), str(mnt))
    except subprocess.CalledProcessError as exc:
        image.unlink()
        dmesg = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()[-2:]
        option = "CONFIG_XFS_QUOTA" if fs == "xfs" else "CONFIG_QFMT_V2"
        return {
            "available": False,
            "why": f"mount -o prjquota failed ({(exc.stderr or b'').decode().strip()[:120]}); "
            f"kernel: {_kernel_config(option)}; dmesg: {' | '.join(dmesg)}",
        }
    libc = ctypes.CDLL(None, use_errno=True)

    class Dqblk(ctypes.Structure):
        _fields_ = [
            (f, ctypes.c_uint64) for f in ("bh", "bs", "cs", "ih", "is_", "ci", "bt", "it")
        ] + [("valid", ctypes.c_uint32)]

    def create(i: int) -> Path:
        path = mnt / f"vol-{i}"
        path.mkdir(mode=0o777)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            buf = bytearray(28)
            fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf)
            xflags, ext, nexts, _proj, cow = struct.unpack_from("IIIII", buf)
            struct.pack_into(
                "IIIII", buf, 0, xflags | FS_XFLAG_PROJINHERIT, ext, nexts, 1000 + i, cow
            )
            fcntl.ioctl(fd, FS_IOC_FSSETXATTR, buf)
            limit = Dqblk(bh=size // 1024, bs=size // 1024, valid=1)
            if libc.syscall(
                SYS_QUOTACTL_FD, fd, Q_SETQUOTA | PRJQUOTA, 1000 + i, ctypes.byref(limit)
            ):
                raise OSError(ctypes.get_errno(), "quotactl_fd")
        finally:
            os.close(fd)
        return path

    def delete(i: int, path: Path) -> None:
        shutil.rmtree(path)

    try:
        out: dict[str, Any] = {"available": True, **timed(n, create, delete)}
        probe = create(n)
        out["enforced"] = overflows(probe, size)
        delete(n, probe)
        return out
    finally:
        run("umount", str(mnt))
        image.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--volumes", type=int, default=20)
    parser.add_argument("--size-mib", type=int, default=64)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/storage_backings.py mounts filesystems: run it as root")
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="pilothouse-backings-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        result = {
            "directory": directories(root, args.volumes, size),
            "image_ext4_loop": images(root, args.volumes, size),
            "xfs_project_quota": project_quotas(root, args.volumes, size, "xfs"),
            "ext4_project_quota": project_quotas(root, args.volumes, size, "ext4"),
            "filesystem": subprocess.run(
                ["stat", "-f", "-c", "%T", tmp], capture_output=True, text=True
            ).stdout.strip(),
            "kernel": os.uname().release,
            "volumes": args.volumes,
            "size_mib": args.size_mib,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
