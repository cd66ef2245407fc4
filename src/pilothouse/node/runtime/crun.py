"""The real runtime: pods as crun (or runc) containers under conmon, on a CNI bridge.

Layout on disk (``state_dir``, durable) and in ``run_dir`` (tmpfs on most hosts)::

    <state_dir>/sandboxes/<id>/      sandbox.json, hostname, hosts, resolv.conf, uts, ipc, shm/
    <state_dir>/containers/<id>/     the OCI bundle: config.json, container.json, rootfs/
                                     (overlay), upper/, work/, conmon's files and FIFOs
    <state_dir>/exits/<id>           conmon's exit files
    <state_dir>/cni/                 host-local leases
    <run_dir>/<runtime>/             crun's (or runc's) own state
    <run_dir>/s/                     conmon's attach sockets
    /run/netns/pilothouse-<id>       the pods' network namespaces

Concurrency: every method may be called concurrently (one pod worker each).
Operations on one container or one sandbox are serialised by a lock of that
id; waiting for a container to stop holds no lock, so status stays readable
during a grace period. Containers do not depend on this process: a new
CrunRuntime on the same directories finds every sandbox and container again
and reads the exits that happened meanwhile from conmon's exit files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.node import cni
from pilothouse.node.runtime import (
    bundles,
    cgroups,
    conmon,
    fsstats,
    linux,
    ocispec,
    protocol,
    streams,
)
from pilothouse.node.runtime.baseline import measure_baseline
from pilothouse.node.runtime.records import ContainerRecord
from pilothouse.node.runtime.sandbox import Sandboxes

__all__ = ["CrunRuntime", "measure_baseline"]

RuntimeError_ = protocol.RuntimeError_
KILL_WAIT = 10.0  # after SIGKILL, how long a container may take to be gone


class CrunRuntime:
    """protocol.Runtime on this machine with crun (or runc), conmon and CNI.

    ``pod_cidr`` is this node's pod range (the bridge takes its first address as
    the pods' gateway); ``cluster_cidr`` (default: the pod CIDR) is what is not
    masqueraded. ``run_dir`` must be short: conmon's attach sockets live under it.
    ``cgroup_root`` parents the pod cgroups of sandboxes that name none.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        images: protocol.ImageService,
        pod_cidr: str,
        cluster_cidr: str | None = None,
        runtime_binary: str = "crun",
        conmon_binary: str = "conmon",
        run_dir: Path = Path("/run/pilothouse"),
        bridge: str = "ph0",
        cni_plugin_dirs: tuple[Path, ...] = cni.DEFAULT_PLUGIN_DIRS,
        cgroup_root: str = "/pilothouse",
        seccomp_dir: Path = Path("/var/lib/pilothouse/seccomp"),
        mtu: int | None = None,
        masquerade: bool = True,
    ) -> None:
        self.images = images
        self.state_dir = state_dir
        self.run_dir = run_dir
        self.name = Path(runtime_binary).name
        self.version = ""
        self.conmon_binary = shutil.which(conmon_binary) or conmon_binary
        self.cli = conmon.RuntimeCLI(runtime_binary, run_dir / self.name)
        self.seccomp_dir = seccomp_dir
        self.containers_dir = state_dir / "containers"
        self.exit_dir = state_dir / "exits"
        self.socket_dir = run_dir / "s"
        self.network = cni.BridgeNetwork(
            pod_cidr=pod_cidr,
            cluster_cidr=cluster_cidr,
            data_dir=state_dir / "cni",
            bridge=bridge,
            plugin_dirs=cni_plugin_dirs,
            mtu=mtu,
            masquerade=masquerade,
        )
        self.cgroup_root = cgroup_root
        self.layout = cgroups.Layout(mode="v1")
        self.sandboxes: Sandboxes | None = None
        self._containers: dict[str, ContainerRecord] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_cap = ocispec.last_capability()

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        for d in (self.containers_dir, self.exit_dir, self.socket_dir, self.cli.root):
            d.mkdir(parents=True, exist_ok=True)
        self.layout = cgroups.detect()
        stuck = cgroups.conflicting_v2_controllers(self.layout)
        if stuck:
            raise RuntimeError_(
                "RuntimeNotReady",
                f"hybrid cgroups with {', '.join(stuck)} on cgroup2: crun cannot start containers; "
                "run host preparation (pilothouse.node.host.prepare_host) first",
            )
        if not shutil.which(self.cli.path):
            raise RuntimeError_(
                "RuntimeNotFound",
                f"{self.name} not found: apt-get install {self.name}, or run `make install`",
            )
        if not os.access(self.conmon_binary, os.X_OK):
            raise RuntimeError_(
                "RuntimeNotFound", "conmon not found: apt-get install conmon, or run `make install`"
            )
        self.version = await self.cli.version()
        try:
            await self.network.setup()
        except cni.CNIError as exc:
            raise RuntimeError_("NetworkNotReady", str(exc)) from exc
        self.sandboxes = Sandboxes(
            self.state_dir / "sandboxes",
            network=self.network,
            layout=self.layout,
            cgroup_root=self.cgroup_root,
        )
        await asyncio.to_thread(self.sandboxes.load)
        await asyncio.to_thread(self._load_containers)

    def _load_containers(self) -> None:
        for bundle in self.containers_dir.iterdir():
            rec = ContainerRecord.load(bundle)
            if rec is None:
                # Died before the record was written: nothing ran yet, only a directory.
                if not os.path.ismount(bundle / "rootfs"):
                    shutil.rmtree(bundle, ignore_errors=True)
                continue
            self._containers[rec.id] = rec

    async def close(self) -> None:
        """Nothing to stop: containers and sandboxes keep running without us."""

    def _sb(self) -> Sandboxes:
        if self.sandboxes is None:
            raise RuntimeError_("RuntimeNotReady", "the runtime has not been started")
        return self.sandboxes

    # --- sandboxes -----------------------------------------------------------------------------
    async def run_pod_sandbox(self, config: protocol.SandboxConfig) -> protocol.Sandbox:
        rec = await self._sb().create(config)
        return rec.to_sandbox()

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        sb = self._sb()
        rec = sb.records.get(sandbox_id)
        if rec is None:
            return
        ids = [c.id for c in self._containers.values() if c.sandbox_id == sandbox_id]
        await asyncio.gather(*(self.stop_container(cid, timeout=0) for cid in ids))
        async with self._locks[sandbox_id]:
            try:
                await sb.detach_network(rec)
            except cni.CNIError as exc:
                # The agent retries: a lease released twice is fine, a leaked one is not.
                raise RuntimeError_("StopPodSandboxError", str(exc)) from exc

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        sb = self._sb()
        if sandbox_id not in sb.records:
            return
        await self.stop_pod_sandbox(sandbox_id)
        ids = [c.id for c in self._containers.values() if c.sandbox_id == sandbox_id]
        await asyncio.gather(*(self.remove_container(cid) for cid in ids))
        async with self._locks[sandbox_id]:
            rec = sb.records.get(sandbox_id)
            if rec is not None:
                await sb.release(rec)
        self._locks.pop(sandbox_id, None)

    async def list_sandboxes(self) -> list[protocol.Sandbox]:
        return [r.to_sandbox() for r in self._sb().records.values()]

    # --- containers ----------------------------------------------------------------------------
    def _bundle(self, container_id: str) -> Path:
        return self.containers_dir / container_id

    def _rec(self, container_id: str) -> ContainerRecord:
        rec = self._containers.get(container_id)
        if rec is None:
            raise RuntimeError_("NotFound", f"container {container_id} not found")
        return rec

    async def create_container(self, sandbox_id: str, config: protocol.ContainerConfig) -> str:
        sb = self._sb()
        box = sb.records.get(sandbox_id)
        if box is None or box.state != "ready":
            raise RuntimeError_("CreateContainerError", f"sandbox {sandbox_id} is not ready")
        for other in self._containers.values():
            if (other.sandbox_id, other.name, other.attempt) == (
                sandbox_id,
                config.name,
                config.attempt,
            ):
                raise RuntimeError_(
                    "CreateContainerError",
                    f'the container name "{config.name}" (attempt {config.attempt}) is already in use by {other.id}',
                )
        cid = secrets.token_hex(32)
        bundle = self._bundle(cid)
        image = config.image
        rec = ContainerRecord(
            id=cid,
            sandbox_id=sandbox_id,
            name=config.name,
            attempt=config.attempt,
            image_id=image.id,
            image_ref=image.repo_digests[0] if image.repo_digests else image.id,
            log_path=config.log_path or str(bundle / "container.log"),
            cgroup_path=f"{box.cgroup_parent.rstrip('/')}/{cid}",
            created_at=time.time(),
            tty=config.tty,
            labels=dict(config.labels),
        )
        async with self._locks[cid]:
            self._containers[cid] = rec
            try:
                await asyncio.to_thread(
                    bundles.prepare,
                    bundle,
                    rec,
                    box,
                    config,
                    sandbox_dir=self._sb().dir(box.id),
                    layout=self.layout,
                    seccomp_dir=self.seccomp_dir,
                    last_cap=self._last_cap,
                )
                pid, conmon_pid, conmon_start = await conmon.launch(
                    conmon=self.conmon_binary,
                    runtime_path=self.cli.path,
                    runtime_root=self.cli.root,
                    container_id=cid,
                    name=f"{box.namespace}_{box.name}_{config.name}_{config.attempt}",
                    bundle=bundle,
                    exit_dir=self.exit_dir,
                    socket_dir=self.socket_dir,
                    log_path=rec.log_path,
                    tty=config.tty,
                    stdin=config.stdin,
                    stdin_once=config.stdin_once,
                )
            except BaseException as exc:
                # If even this fails the record stays (reported exited), and removal retries.
                with contextlib.suppress(Exception):
                    await self._discard(rec)
                if isinstance(exc, RuntimeError_):
                    raise
                if isinstance(exc, (OSError, ValueError)):
                    raise RuntimeError_("CreateContainerError", str(exc)) from exc
                raise
            rec.pid, rec.conmon_pid, rec.conmon_start = pid, conmon_pid, conmon_start
            rec.pid_start = conmon.process_start_time(pid) or 0
            rec.save(bundle)
        return cid

    async def start_container(self, container_id: str) -> None:
        rec = self._rec(container_id)
        async with self._locks[container_id]:
            state = await self._refresh(rec)
            if state != "created":
                raise RuntimeError_(
                    "RunContainerError", f"container {container_id} is {state}, not created"
                )
            # The process may run (and even exit) before `start` returns: take the time first.
            began = time.time()
            await self.cli.start(container_id)
            rec.started_at = began
            rec.save(self._bundle(container_id))

    async def stop_container(self, container_id: str, *, timeout: float) -> None:
        rec = self._containers.get(container_id)
        if rec is None:
            return
        async with self._locks[container_id]:
            state = await self._refresh(rec)
        if state not in ("created", "running"):
            return
        if state == "running" and timeout > 0:
            await self.cli.kill(container_id, "TERM")
            if not await self._wait_gone(rec, timeout):
                await self.cli.kill(container_id, "KILL")
                await self._wait_gone(rec, KILL_WAIT)
        else:
            await self.cli.kill(container_id, "KILL")
            await self._wait_gone(rec, KILL_WAIT)
        async with self._locks[container_id]:
            await self._refresh(rec)

    async def _wait_gone(self, rec: ContainerRecord, timeout: float | None) -> bool:
        """Wait for conmon (it exits after writing the exit file), or the container if conmon died."""
        if conmon.alive(rec.conmon_pid, rec.conmon_start):
            return await conmon.wait_exit(rec.conmon_pid, rec.conmon_start, timeout)
        return await conmon.wait_exit(rec.pid, rec.pid_start, timeout)

    async def remove_container(self, container_id: str) -> None:
        rec = self._containers.get(container_id)
        if rec is None:
            return
        await self.stop_container(container_id, timeout=0)
        async with self._locks[container_id]:
            await self._discard(rec)
        self._locks.pop(container_id, None)

    async def _discard(self, rec: ContainerRecord) -> None:
        """Remove a container and all it holds: crun state, rootfs, cgroup, files."""
        if self.cli.exists(rec.id):
            await self.cli.delete(rec.id, force=True)
        if conmon.alive(rec.conmon_pid, rec.conmon_start):
            await conmon.wait_exit(rec.conmon_pid, rec.conmon_start, KILL_WAIT)
        await asyncio.to_thread(
            bundles.remove,
            self._bundle(rec.id),
            rec,
            layout=self.layout,
            exit_dir=self.exit_dir,
            socket_dir=self.socket_dir,
        )
        self._containers.pop(rec.id, None)

    # --- status ----------------------------------------------------------------------------------
    async def _refresh(self, rec: ContainerRecord) -> str:
        """The container's state now; records an exit (and releases crun's state) once."""
        if rec.finished:
            return "exited"
        bundle = self._bundle(rec.id)
        if rec.pid == 0:
            report = conmon.read_sync(bundle)
            data = report.get("data") if report else None
            if isinstance(data, int) and data > 0:
                # The agent died between conmon's report and our record: adopt it.
                rec.pid, rec.pid_start = data, conmon.process_start_time(data) or 0
                rec.conmon_pid = conmon.conmon_pid(bundle) or 0
                rec.conmon_start = conmon.process_start_time(rec.conmon_pid) or 0
                rec.save(bundle)
            elif report is None and conmon.process_start_time(conmon.conmon_pid(bundle) or 0):
                return "created"  # conmon is still creating it
            else:
                message = (report or {}).get("message") or conmon.conmon_error(bundle)
                await self._finish(
                    rec,
                    128,
                    time.time(),
                    reason="ContainerCannotRun",
                    message=str(message or "the container was never created").strip(),
                )
                return "exited"
        exited = conmon.read_exit(self.exit_dir, rec.id)
        if exited is not None:
            await self._finish(rec, exited[0], exited[1])
            return "exited"
        if conmon.alive(rec.conmon_pid, rec.conmon_start) or conmon.alive(rec.pid, rec.pid_start):
            if rec.started_at:
                return "running"
            if self.cli.created_not_started(rec.id):
                return "created"
            rec.started_at = time.time()  # started by an agent that died before recording it
            rec.save(bundle)
            return "running"
        # Neither conmon nor the container is there and no exit was written (conmon
        # was killed, or the node restarted): the exit code is lost.
        await self._finish(
            rec,
            255,
            time.time(),
            reason="Unknown",
            message="the container's monitor (conmon) disappeared; exit code unknown",
        )
        return "exited"

    async def _finish(
        self, rec: ContainerRecord, code: int, when: float, *, reason: str = "", message: str = ""
    ) -> None:
        if await asyncio.to_thread(self._oom_killed, rec):
            reason = "OOMKilled"
        elif not reason:
            reason = "Completed" if code == 0 else "Error"
        rec.finished, rec.exit_code, rec.finished_at = True, code, max(when, rec.started_at)
        rec.reason, rec.message = reason, message
        rec.save(self._bundle(rec.id))
        # Frees crun's state and the container's cgroup; our record keeps the outcome.
        if self.cli.exists(rec.id) and not await self.cli.delete(rec.id):
            await self.cli.delete(rec.id, force=True)

    def _oom_killed(self, rec: ContainerRecord) -> bool:
        if cgroups.oom_kills(self.layout, rec.cgroup_path) > 0:
            return True
        return (self._bundle(rec.id) / "oom").exists()  # conmon's own witness

    async def container_status(self, container_id: str) -> protocol.ContainerStatus:
        rec = self._rec(container_id)
        async with self._locks[container_id]:
            state = await self._refresh(rec)
        return rec.status(state)

    async def list_containers(
        self, sandbox_id: str | None = None
    ) -> list[protocol.ContainerStatus]:
        ids = [
            c.id
            for c in self._containers.values()
            if sandbox_id is None or c.sandbox_id == sandbox_id
        ]
        out = await asyncio.gather(
            *(self.container_status(cid) for cid in ids), return_exceptions=True
        )
        return [s for s in out if isinstance(s, protocol.ContainerStatus)]

    # --- exec, attach, port-forward, logs, stats ------------------------------------------------
    async def _running(self, container_id: str) -> ContainerRecord:
        rec = self._rec(container_id)
        async with self._locks[container_id]:
            state = await self._refresh(rec)
        if state != "running":
            raise RuntimeError_("ContainerNotRunning", f"container {container_id} is {state}")
        return rec

    def _process_file(self, container_id: str, command: list[str], *, tty: bool) -> Path:
        """The container's own process (user, env, caps…) with another argv, for ``crun exec``."""
        bundle = self._bundle(container_id)
        process = ocispec.exec_process(json.loads((bundle / "config.json").read_text()), command)
        process["terminal"] = tty
        fd, path = tempfile.mkstemp(prefix="exec-", suffix=".json", dir=bundle)
        with os.fdopen(fd, "w") as f:
            json.dump(process, f)
        return Path(path)

    async def exec_sync(
        self, container_id: str, command: list[str], *, timeout: float
    ) -> tuple[int, bytes, bytes]:
        """Run ``command`` in the container; TimeoutError (after killing it) when it overruns."""
        await self._running(container_id)
        proc = await streams.exec_process(
            runtime_path=self.cli.path,
            runtime_root=self.cli.root,
            container_id=container_id,
            process_file=self._process_file(container_id, command, tty=False),
            work_dir=self.run_dir,
            tty=False,
            stdin=False,
        )
        try:
            assert proc.stdout is not None and proc.stderr is not None
            out, err, code = await asyncio.wait_for(
                asyncio.gather(proc.stdout.read(), proc.stderr.read(), proc.wait()), timeout
            )
        except TimeoutError:
            raise TimeoutError(f"command {command!r} timed out after {timeout}s") from None
        finally:
            await proc.close()  # kills it when it overran
        return code, out, err

    async def exec(
        self, container_id: str, command: list[str], *, tty: bool, stdin: bool
    ) -> protocol.StreamingProcess:
        await self._running(container_id)
        return await streams.exec_process(
            runtime_path=self.cli.path,
            runtime_root=self.cli.root,
            container_id=container_id,
            process_file=self._process_file(container_id, command, tty=tty),
            work_dir=self.run_dir,
            tty=tty,
            stdin=stdin,
        )

    async def attach(
        self, container_id: str, *, stdin: bool, tty: bool
    ) -> protocol.StreamingProcess:
        rec = await self._running(container_id)

        async def exit_code() -> int:
            await self._wait_gone(rec, None)
            return (await self.container_status(container_id)).exit_code

        return await streams.attach(
            conmon.attach_socket(self.socket_dir, container_id),
            ctl=self._bundle(container_id) / "ctl",
            tty=rec.tty,
            stdin=stdin,
            wait_exit=exit_code,
        )

    async def port_forward(
        self, sandbox_id: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        box = self._sb().records.get(sandbox_id)
        if box is None or box.state != "ready":
            raise RuntimeError_("PortForwardError", f"sandbox {sandbox_id} is not ready")
        return await streams.port_forward(box.netns_path, port)

    async def container_stats(self, container_id: str) -> protocol.ContainerStats:
        rec = self._rec(container_id)
        use = await asyncio.to_thread(cgroups.usage, self.layout, rec.cgroup_path)
        return protocol.ContainerStats(
            timestamp=time.time(),
            cpu_usage_ns=use["cpu_usage_ns"],
            memory_working_set=use["memory_working_set"],
            memory_usage=use["memory_usage"],
            cpu_throttled_periods=use["nr_throttled"],
        )

    async def container_fs_usage(self, container_id: str) -> tuple[int, int]:
        self._rec(container_id)
        used = await asyncio.to_thread(fsstats.disk_usage, self._bundle(container_id) / "upper")
        return used.bytes, used.inodes

    async def reopen_log(self, container_id: str) -> None:
        rec = self._rec(container_id)
        if not conmon.reopen_log(self._bundle(container_id)):
            return
        # conmon reopens asynchronously; return once the new file is there.
        await linux.wait_for_file(Path(rec.log_path), 2.0)


if TYPE_CHECKING:

    def _conforms(rt: CrunRuntime) -> protocol.Runtime:
        return rt
