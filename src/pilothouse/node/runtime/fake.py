"""An in-memory Runtime and ImageService for unit tests of the agent.

Nothing runs: sandboxes get addresses from the pod CIDR, containers move
``created → running → exited`` as the agent asks and as the test decides
(:meth:`FakeRuntime.exit`), every call is recorded in ``calls``, and any method
can be made to fail once (:meth:`FakeRuntime.fail_next`). The same object can
be handed to a second agent to simulate a restart: state lives here, not in
the agent.

    rt = FakeRuntime()
    ...                                   # the agent starts a pod
    cid = rt.find("web").id
    rt.exit(cid, 137, reason="OOMKilled")  # the container dies

With ``scripted=True`` containers also end by themselves when their command says
so (``sleep 2``, ``sh -c 'exit 3'``; see :mod:`pilothouse.node.runtime.scripted`),
after that many seconds of the event loop's time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import ipaddress
import itertools
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pilothouse.node.runtime import protocol, scripted

ExecHandler = Callable[[str, list[str]], tuple[int, bytes, bytes]]


class FakeImageService:
    """Images by reference; pulls succeed (making an image up) unless told to fail."""

    def __init__(self, images: list[protocol.Image] | None = None) -> None:
        self._images: dict[str, protocol.Image] = {}
        self._errors: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.pull_delay = 0.0
        for image in images or []:
            self.add(image)

    def add(self, image: protocol.Image) -> None:
        self._images[image.id] = image

    def fail(self, reference: str, message: str = "manifest unknown") -> None:
        """Pulls of ``reference`` raise ImagePullError(message) until :meth:`heal`."""
        self._errors[reference] = message

    def heal(self, reference: str) -> None:
        self._errors.pop(reference, None)

    @staticmethod
    def make(reference: str, **fields: Any) -> protocol.Image:
        digest = "sha256:" + hashlib.sha256(reference.encode()).hexdigest()
        repo = (
            reference.split("@")[0].rsplit(":", 1)[0]
            if "@" in reference or ":" in reference.rsplit("/", 1)[-1]
            else reference
        )
        defaults: dict[str, Any] = {
            "id": digest,
            "repo_tags": (reference,) if "@" not in reference else (),
            "repo_digests": (f"{repo}@{digest}",),
            "size": 1024,
            "layers": (),
            "cmd": ("/bin/sh",),
        }
        defaults.update(fields)
        return protocol.Image(**defaults)

    async def pull(
        self,
        reference: str,
        *,
        auth: list[protocol.RegistryAuth] | None = None,
        progress: Callable[[protocol.PullProgress], None] | None = None,
    ) -> protocol.Image:
        self.calls.append(("pull", reference))
        if self.pull_delay:
            await asyncio.sleep(self.pull_delay)
        if reference in self._errors:
            raise protocol.ImagePullError(self._errors[reference])
        image = self.get(reference)
        if image is None:
            image = self.make(reference)
            self.add(image)
        if progress is not None:
            progress(
                protocol.PullProgress(reference, image.id, image.size, image.size, finished=True)
            )
        return image

    def get(self, reference: str) -> protocol.Image | None:
        for image in self._images.values():
            if (
                reference == image.id
                or reference in image.repo_tags
                or reference in image.repo_digests
            ):
                return image
        return None

    def list(self) -> list[protocol.Image]:
        return list(self._images.values())

    async def remove(self, reference: str) -> None:
        self.calls.append(("remove", reference))
        image = self.get(reference)
        if image is not None:
            del self._images[image.id]


class FakeProcess:
    """A StreamingProcess whose output is given up front; what is written to stdin is kept.

    ``await proc.stdin_data()`` returns everything the caller wrote once it closed stdin.
    """

    def __init__(
        self,
        *,
        stdout: bytes = b"",
        stderr: bytes = b"",
        tty: bool = False,
        exit_code: Callable[[], Awaitable[int]] | int = 0,
    ) -> None:
        self.stdout: asyncio.StreamReader | None = asyncio.StreamReader()
        self.stdout.feed_data(stdout)
        self.stdout.feed_eof()
        self.stderr: asyncio.StreamReader | None = None
        if not tty:
            self.stderr = asyncio.StreamReader()
            self.stderr.feed_data(stderr)
            self.stderr.feed_eof()
        self.stdin: asyncio.StreamWriter | None = None
        self.resizes: list[tuple[int, int]] = []
        self.closed = False
        self._exit = exit_code
        self._input: socket.socket | None = None

    async def open_stdin(self) -> None:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        self._input = theirs
        _, self.stdin = await asyncio.open_unix_connection(sock=ours)

    async def stdin_data(self) -> bytes:
        if self._input is None:
            return b""
        loop = asyncio.get_running_loop()
        chunks = []
        while data := await loop.sock_recv(self._input, 65536):
            chunks.append(data)
        return b"".join(chunks)

    async def wait(self) -> int:
        return self._exit if isinstance(self._exit, int) else await self._exit()

    def resize(self, width: int, height: int) -> None:
        self.resizes.append((width, height))

    async def close(self) -> None:
        self.closed = True
        if self.stdin is not None:
            self.stdin.close()
        if self._input is not None:
            self._input.close()


@dataclass
class FakeContainer:
    """One container's configuration and state."""

    status: protocol.ContainerStatus
    config: protocol.ContainerConfig
    exec_calls: list[list[str]] = field(default_factory=list)


class FakeRuntime:
    """protocol.Runtime in memory, with call records and controllable exits."""

    name = "fake"
    version = "0.1.0"

    def __init__(
        self,
        images: FakeImageService | None = None,
        *,
        pod_cidr: str = "10.42.0.0/24",
        clock: Callable[[], float] = time.time,
        scripted: bool = False,
    ) -> None:
        # The same object twice: typed as the protocol says, and as the fake it is.
        self.fake_images = images or FakeImageService()
        self.images: protocol.ImageService = self.fake_images
        self.clock = clock
        self.calls: list[tuple[Any, ...]] = []
        self.sandboxes: dict[str, protocol.Sandbox] = {}
        self.sandbox_configs: dict[str, protocol.SandboxConfig] = {}
        self.containers: dict[str, FakeContainer] = {}
        self.exec_handler: ExecHandler = lambda _cid, _cmd: (0, b"", b"")
        self.term_exit_code = 143  # what a stopped container reports when SIGTERM ends it
        self.exit_on_start: dict[str, tuple[int, str]] = {}  # container name -> (code, message)
        self.attach_output: dict[str, bytes] = {}  # container id -> what attach shows
        self.port_targets: dict[
            tuple[str, int], tuple[str, int]
        ] = {}  # (sandbox, port) -> real address
        self.stats: dict[str, protocol.ContainerStats] = {}
        self.fs_usage: dict[str, tuple[int, int]] = {}  # container id → (bytes, inodes)
        self.processes: list[FakeProcess] = []  # every exec/attach handed out
        self.started = False
        self.scripted = scripted
        self._timers: list[asyncio.TimerHandle] = []
        self._failures: dict[str, list[BaseException]] = {}
        self._hosts = ipaddress.ip_network(pod_cidr).hosts()
        next(self._hosts)  # .1 is the gateway
        self._ids = itertools.count(1)
        self.changed = asyncio.Event()

    # --- test controls -----------------------------------------------------------------------
    def fail_next(self, method: str, error: BaseException | None = None) -> None:
        """Make the next call of ``method`` raise ``error`` (default: a RuntimeError_)."""
        self._failures.setdefault(method, []).append(
            error or protocol.RuntimeError_("RunContainerError", f"injected failure of {method}")
        )

    def exit(
        self, container_id: str, code: int = 0, *, reason: str = "", message: str = ""
    ) -> None:
        """The container's process ends now with ``code``."""
        c = self.containers.get(container_id)
        if c is None or c.status.state == "exited":
            return
        self._set(
            c,
            state="exited",
            exit_code=code,
            finished_at=self.clock(),
            reason=reason or ("Completed" if code == 0 else "Error"),
            message=message,
            pid=0,
        )

    def find(self, name: str, *, sandbox_id: str | None = None) -> protocol.ContainerStatus:
        """The newest container called ``name`` (raises KeyError if none)."""
        found = [
            c.status
            for c in self.containers.values()
            if c.status.name == name and (sandbox_id is None or c.status.sandbox_id == sandbox_id)
        ]
        if not found:
            raise KeyError(name)
        return max(found, key=lambda s: (s.attempt, s.created_at))

    def write_log(self, container_id: str, line: str, *, stream: str = "stdout") -> None:
        """Append one CRI log line to the container's log file (if it has one)."""
        path = self.containers[container_id].status.log_path
        if not path:
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        with open(path, "a") as f:
            f.write(f"{stamp} {stream} F {line}\n")

    def calls_of(self, method: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == method]

    # --- helpers -------------------------------------------------------------------------------
    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, *args))
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    def _set(self, c: FakeContainer, **changes: Any) -> None:
        c.status = dataclasses.replace(c.status, **changes)
        self.changed.set()
        self.changed = asyncio.Event()

    def _get(self, container_id: str) -> FakeContainer:
        c = self.containers.get(container_id)
        if c is None:
            raise protocol.RuntimeError_("NotFound", f"container {container_id} not found")
        return c

    # --- protocol.Runtime ------------------------------------------------------------------------
    async def start(self) -> None:
        self._enter("start")
        self.started = True

    async def close(self) -> None:
        self._enter("close")
        for timer in self._timers:
            timer.cancel()

    async def run_pod_sandbox(self, config: protocol.SandboxConfig) -> protocol.Sandbox:
        self._enter("run_pod_sandbox", config.uid)
        sid = f"sandbox-{next(self._ids)}"
        sb = protocol.Sandbox(
            id=sid,
            uid=config.uid,
            namespace=config.namespace,
            name=config.name,
            ip="" if config.host_network else str(next(self._hosts)),
            netns_path="" if config.host_network else f"/run/netns/fake-{sid}",
            state="ready",
            created_at=self.clock(),
            hostname=config.hostname,
        )
        self.sandboxes[sid] = sb
        self.sandbox_configs[sid] = config
        return sb

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._enter("stop_pod_sandbox", sandbox_id)
        for c in list(self.containers.values()):
            if c.status.sandbox_id == sandbox_id and c.status.state in ("created", "running"):
                self.exit(c.status.id, 137)
        sb = self.sandboxes.get(sandbox_id)
        if sb is not None:
            self.sandboxes[sandbox_id] = dataclasses.replace(sb, state="notready")

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._enter("remove_pod_sandbox", sandbox_id)
        await self.stop_pod_sandbox(sandbox_id)
        for cid in [
            c.status.id for c in self.containers.values() if c.status.sandbox_id == sandbox_id
        ]:
            del self.containers[cid]
        self.sandboxes.pop(sandbox_id, None)
        self.sandbox_configs.pop(sandbox_id, None)

    async def list_sandboxes(self) -> list[protocol.Sandbox]:
        self._enter("list_sandboxes")
        return list(self.sandboxes.values())

    async def create_container(self, sandbox_id: str, config: protocol.ContainerConfig) -> str:
        self._enter("create_container", sandbox_id, config.name)
        sb = self.sandboxes.get(sandbox_id)
        if sb is None or sb.state != "ready":
            raise protocol.RuntimeError_(
                "CreateContainerError", f"sandbox {sandbox_id} is not ready"
            )
        cid = f"container-{next(self._ids)}"
        self.containers[cid] = FakeContainer(
            status=protocol.ContainerStatus(
                id=cid,
                sandbox_id=sandbox_id,
                name=config.name,
                attempt=config.attempt,
                image_id=config.image.id,
                image_ref=config.image.repo_digests[0]
                if config.image.repo_digests
                else config.image.id,
                state="created",
                created_at=self.clock(),
                log_path=config.log_path,
            ),
            config=config,
        )
        return cid

    async def start_container(self, container_id: str) -> None:
        self._enter("start_container", container_id)
        c = self._get(container_id)
        if c.status.state != "created":
            raise protocol.RuntimeError_(
                "RunContainerError", f"container {container_id} is {c.status.state}"
            )
        self._set(c, state="running", started_at=self.clock(), pid=10_000 + len(self.containers))
        if c.status.name in self.exit_on_start:
            code, message = self.exit_on_start[c.status.name]
            self.exit(container_id, code, message=message)
        elif self.scripted:
            end = scripted.outcome(c.config.command)
            if end is not None and end.seconds <= 0:
                self.exit(container_id, end.exit_code)
            elif end is not None:
                self._timers.append(
                    asyncio.get_running_loop().call_later(
                        end.seconds, self.exit, container_id, end.exit_code
                    )
                )

    async def stop_container(self, container_id: str, *, timeout: float) -> None:
        self._enter("stop_container", container_id, timeout)
        c = self.containers.get(container_id)
        if c is not None and c.status.state in ("created", "running"):
            self.exit(container_id, self.term_exit_code if timeout > 0 else 137)

    async def remove_container(self, container_id: str) -> None:
        self._enter("remove_container", container_id)
        c = self.containers.get(container_id)
        if c is not None and c.status.state in ("created", "running"):
            self.exit(container_id, 137)
        self.containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> protocol.ContainerStatus:
        self._enter("container_status", container_id)
        return self._get(container_id).status

    async def list_containers(
        self, sandbox_id: str | None = None
    ) -> list[protocol.ContainerStatus]:
        self._enter("list_containers", sandbox_id)
        return [
            c.status
            for c in self.containers.values()
            if sandbox_id is None or c.status.sandbox_id == sandbox_id
        ]

    async def exec_sync(
        self, container_id: str, command: list[str], *, timeout: float
    ) -> tuple[int, bytes, bytes]:
        self._enter("exec_sync", container_id, tuple(command))
        c = self._get(container_id)
        if c.status.state != "running":
            raise protocol.RuntimeError_(
                "ContainerNotRunning", f"container {container_id} is {c.status.state}"
            )
        c.exec_calls.append(list(command))
        return self.exec_handler(container_id, list(command))

    async def reopen_log(self, container_id: str) -> None:
        self._enter("reopen_log", container_id)
        self._get(container_id)

    async def exec(
        self, container_id: str, command: list[str], *, tty: bool, stdin: bool
    ) -> protocol.StreamingProcess:
        """Answers with :attr:`exec_handler`'s output (stderr joins stdout with a tty)."""
        self._enter("exec", container_id, tuple(command))
        c = self._get(container_id)
        if c.status.state != "running":
            raise protocol.RuntimeError_(
                "ContainerNotRunning", f"container {container_id} is {c.status.state}"
            )
        c.exec_calls.append(list(command))
        code, out, err = self.exec_handler(container_id, list(command))
        proc = FakeProcess(stdout=out + err if tty else out, stderr=err, tty=tty, exit_code=code)
        if stdin:
            await proc.open_stdin()
        self.processes.append(proc)
        return proc

    async def attach(
        self, container_id: str, *, stdin: bool, tty: bool
    ) -> protocol.StreamingProcess:
        """Shows :attr:`attach_output`; ``wait`` returns when the container exits."""
        self._enter("attach", container_id)
        c = self._get(container_id)
        if c.status.state != "running":
            raise protocol.RuntimeError_(
                "ContainerNotRunning", f"container {container_id} is {c.status.state}"
            )

        async def exit_code() -> int:
            while self._get(container_id).status.state != "exited":
                await self.changed.wait()
            return self._get(container_id).status.exit_code

        proc = FakeProcess(
            stdout=self.attach_output.get(container_id, b""), tty=tty, exit_code=exit_code
        )
        if stdin:
            await proc.open_stdin()
        self.processes.append(proc)
        return proc

    async def port_forward(
        self, sandbox_id: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connects to the real address :attr:`port_targets` maps ``(sandbox_id, port)`` to."""
        self._enter("port_forward", sandbox_id, port)
        target = self.port_targets.get((sandbox_id, port))
        if target is None:
            raise protocol.RuntimeError_(
                "PortForwardError",
                f"failed to connect to localhost:{port} inside the pod: connection refused",
            )
        return await asyncio.open_connection(*target)

    async def container_fs_usage(self, container_id: str) -> tuple[int, int]:
        """What tests put in ``fs_usage`` (bytes, inodes) for the container; zeros otherwise."""
        self._get(container_id)
        return self.fs_usage.get(container_id, (0, 0))

    async def container_stats(self, container_id: str) -> protocol.ContainerStats:
        self._enter("container_stats", container_id)
        self._get(container_id)
        return self.stats.get(container_id) or protocol.ContainerStats(
            timestamp=self.clock(), cpu_usage_ns=0, memory_working_set=0
        )


if TYPE_CHECKING:

    def _conforms(rt: FakeRuntime) -> protocol.Runtime:
        return rt

    def _images_conform(svc: FakeImageService) -> protocol.ImageService:
        return svc
