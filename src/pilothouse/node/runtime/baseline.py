"""What a pod start costs on this machine, step by step, for the benchmark to compare against.

Two measurements, ``n`` pods each, one after the other:

* ``raw``: the bare steps any runtime must take, without our bookkeeping —
  pin a network namespace, CNI bridge ADD, mount the overlay rootfs,
  ``crun run --detach`` (no conmon);
* ``runtime``: the same pod through :class:`~.crun.CrunRuntime`'s API —
  ``run_pod_sandbox`` + ``create_container`` + ``start_container`` — which adds
  conmon, the pod's UTS/IPC namespaces, cgroup, /etc files and durable records.

Everything made is removed again. Figures are milliseconds (p50, p90, mean).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import statistics
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.node import cni
from pilothouse.node.runtime import cgroups, linux, ocispec, protocol

if TYPE_CHECKING:
    from pilothouse.node.runtime.crun import CrunRuntime


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


async def _raw_once(
    rt: CrunRuntime, image: protocol.Image, command: tuple[str, ...], work: Path
) -> dict[str, float]:
    cid = "baseline-" + secrets.token_hex(8)
    netns = cni.netns_path(f"pilothouse-{cid}")
    bundle = work / cid
    cgroup = f"{rt.cgroup_root}/baseline/{cid}"
    t: dict[str, float] = {}
    attached = mounted = False
    try:
        cni.NETNS_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        await linux.pin_new_namespaces({"net": netns})
        t1 = time.perf_counter()
        await rt.network.add(cid, netns)
        attached = True
        t2 = time.perf_counter()
        for sub in ("rootfs", "upper", "work"):
            (bundle / sub).mkdir(parents=True)
        await asyncio.to_thread(
            linux.mount_overlay,
            bundle / "rootfs",
            lower=[Path(p) for p in reversed(image.layers)],
            upper=bundle / "upper",
            work=bundle / "work",
        )
        mounted = True
        t3 = time.perf_counter()
        config = protocol.ContainerConfig(name="baseline", image=image, command=command)
        spec = ocispec.build(
            config,
            container_id=cid,
            rootfs=bundle / "rootfs",
            cgroups_path=cgroup,
            pod=ocispec.PodContext(
                hostname=cid,
                netns_path=str(netns),
                uts_path="",
                ipc_path="",
                hosts_path="",
                resolv_path="",
                hostname_path="",
                shm_path="",
            ),
            layout=rt.layout,
            user=ocispec.User(0, 0),
            seccomp_dir=rt.seccomp_dir,
        )
        (bundle / "config.json").write_text(json.dumps(spec))
        # The container inherits crun's stdio: a file, never a pipe we would wait on.
        err_fd = os.open(bundle / "crun.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            proc = await asyncio.create_subprocess_exec(
                rt.cli.path, f"--root={rt.cli.root}", "run", "--detach", "--bundle", str(bundle), cid,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=err_fd,
            )  # fmt: skip
            await proc.wait()
        finally:
            os.close(err_fd)
        t4 = time.perf_counter()
        if proc.returncode != 0:
            message = (bundle / "crun.err").read_bytes().decode(errors="replace")
            raise protocol.RuntimeError_("RunContainerError", message)
        t = {
            "netns": (t1 - t0) * 1000,
            "cni_add": (t2 - t1) * 1000,
            "overlay": (t3 - t2) * 1000,
            "crun_run": (t4 - t3) * 1000,
            "total": (t4 - t0) * 1000,
        }
    finally:
        await rt.cli.delete(cid, force=True)
        if attached:
            await rt.network.delete(cid, netns)
        linux.unpin(netns)
        if mounted:
            linux.umount(bundle / "rootfs")
        await asyncio.to_thread(cgroups.remove, rt.layout, cgroup)
        shutil.rmtree(bundle, ignore_errors=True)
    return t


async def _runtime_once(
    rt: CrunRuntime, image: protocol.Image, command: tuple[str, ...], work: Path
) -> dict[str, float]:
    uid = str(uuid.uuid4())
    t0 = time.perf_counter()
    sb = await rt.run_pod_sandbox(
        protocol.SandboxConfig(
            uid=uid,
            namespace="baseline",
            name=f"baseline-{uid[:8]}",
            hostname=f"baseline-{uid[:8]}",
            cgroup_parent=f"{rt.cgroup_root}/baseline/pod{uid}",
        )
    )
    try:
        t1 = time.perf_counter()
        cid = await rt.create_container(
            sb.id,
            protocol.ContainerConfig(
                name="c", image=image, command=command, log_path=str(work / uid / "c" / "0.log")
            ),
        )
        t2 = time.perf_counter()
        await rt.start_container(cid)
        t3 = time.perf_counter()
    finally:
        await rt.remove_pod_sandbox(sb.id)
        shutil.rmtree(work / uid, ignore_errors=True)
    return {
        "sandbox": (t1 - t0) * 1000,
        "create": (t2 - t1) * 1000,
        "start": (t3 - t2) * 1000,
        "total": (t3 - t0) * 1000,
    }


async def measure_baseline(
    runtime: CrunRuntime,
    image: protocol.Image,
    n: int,
    *,
    command: tuple[str, ...] = ("sleep", "3600"),
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """Time ``n`` pod starts both ways on a started runtime; returns ms summaries per step."""
    work = work_dir or runtime.state_dir / "baseline"
    work.mkdir(parents=True, exist_ok=True)
    raw: list[dict[str, float]] = []
    full: list[dict[str, float]] = []
    try:
        for _ in range(n):
            raw.append(await _raw_once(runtime, image, command, work))
            full.append(await _runtime_once(runtime, image, command, work))
    finally:
        await asyncio.to_thread(cgroups.remove, runtime.layout, f"{runtime.cgroup_root}/baseline")
        shutil.rmtree(work, ignore_errors=True)
    return {
        "n": n,
        "runtime": runtime.name,
        "raw_ms": {k: _summary([r[k] for r in raw]) for k in raw[0]} if raw else {},
        "runtime_ms": {k: _summary([r[k] for r in full]) for k in full[0]} if full else {},
    }
