"""A container's OCI bundle on disk: made before ``crun create``, removed after ``crun delete``.

The bundle directory (0700: config.json holds the container's environment,
secrets included) has the overlay root filesystem (``rootfs/``: the image's
layers read-only below, ``upper/`` and ``work/`` here), config.json, our
record, and the files conmon adds (FIFOs, pid files, attach socket). Both
functions are synchronous (a mount, small writes): run them in a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from pilothouse.node.runtime import cgroups, linux, logs, ocispec, protocol
from pilothouse.node.runtime.records import ContainerRecord, write_atomic
from pilothouse.node.runtime.sandbox import SandboxRecord


def prepare(
    bundle: Path,
    rec: ContainerRecord,
    box: SandboxRecord,
    config: protocol.ContainerConfig,
    *,
    sandbox_dir: Path,
    layout: cgroups.Layout,
    seccomp_dir: Path,
    last_cap: int,
) -> None:
    """Directories, the overlay mount, config.json and the log directory."""
    bundle.mkdir(parents=True, mode=0o700)
    rec.save(bundle)
    for sub in ("rootfs", "upper", "work"):
        (bundle / sub).mkdir()
    lower = [Path(p) for p in reversed(config.image.layers)]
    if not lower:
        (bundle / "empty").mkdir()
        lower = [bundle / "empty"]
    linux.mount_overlay(
        bundle / "rootfs", lower=lower, upper=bundle / "upper", work=bundle / "work"
    )
    rec.mounted = True
    rec.save(bundle)
    user = ocispec.resolve_user(bundle / "rootfs", config)
    spec = ocispec.build(
        config,
        container_id=rec.id,
        rootfs=bundle / "rootfs",
        cgroups_path=rec.cgroup_path,
        pod=ocispec.PodContext(
            hostname=box.hostname,
            netns_path=box.netns_path,
            uts_path=box.uts_path,
            ipc_path=box.ipc_path,
            hosts_path=str(sandbox_dir / "hosts"),
            resolv_path=str(sandbox_dir / "resolv.conf"),
            hostname_path=str(sandbox_dir / "hostname"),
            shm_path=box.shm_path,
            sandbox_id=box.id,
        ),
        layout=layout,
        user=user,
        seccomp_dir=seccomp_dir,
        last_cap=last_cap,
    )
    write_atomic(bundle / "config.json", json.dumps(spec).encode(), mode=0o600)
    logs.ensure_dir(rec.log_path)


def remove(
    bundle: Path,
    rec: ContainerRecord,
    *,
    layout: cgroups.Layout,
    exit_dir: Path,
    socket_dir: Path,
) -> None:
    """Unmount the rootfs and remove the cgroup, exit file, attach link and bundle."""
    linux.umount(bundle / "rootfs")
    left = cgroups.remove(layout, rec.cgroup_path)
    if left:
        raise protocol.RuntimeError_(
            "RemoveContainerError", f"cgroup {rec.cgroup_path} still busy in {left[0]}"
        )
    with contextlib.suppress(FileNotFoundError):
        (exit_dir / rec.id).unlink()
    with contextlib.suppress(FileNotFoundError):
        (socket_dir / rec.id[:12]).unlink()
    if os.path.ismount(bundle / "rootfs"):
        # Never rmtree through a mounted root filesystem.
        raise protocol.RuntimeError_(
            "RemoveContainerError", f"{bundle / 'rootfs'} is still mounted"
        )
    shutil.rmtree(bundle, ignore_errors=True)
