"""The runtime protocol the node agent speaks — shaped like Kubernetes' CRI.

The agent decides *what* should run (pods, restarts, volumes, status); a
:class:`Runtime` makes it so on this machine: pod sandboxes (a network
namespace with an address, the pod's cgroup, its hostname/hosts/resolv.conf
files) and containers inside them. Runtimes keep their own durable record, so
an agent that restarts lists sandboxes and containers and carries on where it
was: containers outlive the agent.

All methods are coroutines; a runtime may run many calls concurrently (one per
pod worker), and must serialise whatever it needs to internally.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class RuntimeError_(Exception):
    """A runtime operation failed; ``reason`` is what pod status shows
    (e.g. CreateContainerError, RunContainerError, ErrImagePull)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ImagePullError(RuntimeError_):
    def __init__(self, message: str) -> None:
        super().__init__("ErrImagePull", message)


# --- images ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry host (from imagePullSecrets)."""

    registry: str
    username: str = ""
    password: str = ""
    token: str = ""


@dataclass(frozen=True)
class PullProgress:
    reference: str
    layer: str
    done_bytes: int
    total_bytes: int
    finished: bool = False


@dataclass(frozen=True)
class Image:
    """An image ready to run: its config and its unpacked, shared, read-only layers."""

    id: str  # "sha256:…" of the image config
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int
    layers: tuple[Path, ...]  # unpacked layer directories, lowest first
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    pulled_at: float = 0.0  # unix time it came to this machine (0: unknown)


class ImageService(Protocol):
    async def pull(
        self,
        reference: str,
        *,
        auth: list[RegistryAuth] | None = None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> Image:
        """Pull (or find) ``reference``; raises ImagePullError with a message users can act on."""

    def get(self, reference: str) -> Image | None:
        """The local image a reference (name:tag, name@digest, or id) names, if any."""

    def list(self) -> list[Image]: ...

    async def remove(self, reference: str) -> None: ...


# --- pods and containers -----------------------------------------------------------------
@dataclass(frozen=True)
class DNSConfig:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxConfig:
    uid: str
    namespace: str
    name: str
    hostname: str  # the pod's hostname, as /etc/hosts names it
    dns: DNSConfig = DNSConfig()
    domain: str = ""  # <subdomain>.<ns>.svc.<cluster domain>: the FQDN line in /etc/hosts
    kernel_hostname: str = ""  # the UTS nodename when not ``hostname`` (setHostnameAsFQDN)
    host_network: bool = False
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (ip, hostnames)
    cgroup_parent: str = ""  # absolute cgroup path of the pod, e.g. /pilothouse/burstable/pod<uid>
    cpu_shares: int = 0
    cpu_quota: int = 0  # microseconds per period; 0: no limit
    cpu_period: int = 100_000
    memory_limit: int = 0  # bytes; 0: no limit
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sandbox:
    id: str
    uid: str  # the pod's uid
    namespace: str
    name: str
    ip: str  # "" with host networking
    netns_path: str
    state: str  # ready | notready
    created_at: float
    hostname: str = ""


@dataclass(frozen=True)
class Mount:
    container_path: str
    host_path: str
    readonly: bool = False
    propagation: str = "private"  # private | rslave | rshared
    sub_path_file: bool = False  # a single file (configMap subPath, termination log)


@dataclass(frozen=True)
class ContainerConfig:
    name: str
    image: Image
    command: tuple[str, ...]  # the final argv (entrypoint/cmd already resolved by the agent)
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    mounts: tuple[Mount, ...] = ()
    log_path: str = ""
    attempt: int = 0  # restart count: logs go to <attempt>.log
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    # resources
    cpu_shares: int = 2
    cpu_quota: int = 0
    cpu_period: int = 100_000
    memory_limit: int = 0
    pids_limit: int = 0
    oom_score_adj: int = 0
    # security
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    privileged: bool = False
    read_only_rootfs: bool = False
    add_capabilities: tuple[str, ...] = ()
    drop_capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = False
    seccomp: str = "RuntimeDefault"  # RuntimeDefault | Unconfined | Localhost/<path>
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerStatus:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    image_id: str
    image_ref: str
    state: str  # created | running | exited | unknown
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # OOMKilled | Error | Completed | …
    message: str = ""
    pid: int = 0
    log_path: str = ""


class StreamingProcess(Protocol):
    """A process whose standard streams the caller drives (exec, attach).

    With ``tty`` there is no separate stderr: everything comes on stdout."""

    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int:
        """The exit code (for attach: the container's, when it exits)."""

    def resize(self, width: int, height: int) -> None:
        """A terminal resize (tty only)."""

    async def close(self) -> None:
        """Detach / stop the process and release its streams."""


@dataclass(frozen=True)
class ContainerStats:
    """Resource use of one container (or a pod's cgroup), read from its cgroup."""

    timestamp: float
    cpu_usage_ns: int  # cumulative CPU time
    memory_working_set: int  # bytes: usage minus inactive file cache, as upstream's cadvisor
    memory_usage: int = 0
    cpu_throttled_periods: int = 0


class Runtime(Protocol):
    """Pod sandboxes and containers on this machine."""

    images: ImageService
    name: str  # "crun", "runc", "fake"
    version: str

    async def start(self) -> None:
        """Prepare (directories, networks); find what survived a restart."""

    async def close(self) -> None: ...

    async def run_pod_sandbox(self, config: SandboxConfig) -> Sandbox: ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stop every container in it and release its network (idempotent)."""

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Remove it and everything it used: netns, cgroup, files (idempotent)."""

    async def list_sandboxes(self) -> list[Sandbox]: ...

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, *, timeout: float) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds (idempotent)."""

    async def remove_container(self, container_id: str) -> None: ...

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...

    async def exec_sync(
        self, container_id: str, command: list[str], *, timeout: float
    ) -> tuple[int, bytes, bytes]:
        """Run a command in the container and wait (exec probes, hooks)."""

    async def reopen_log(self, container_id: str) -> None:
        """The log file was rotated (renamed): start writing a new one."""

    # --- streaming (kubectl exec / attach / port-forward) and stats ------------------------
    async def exec(
        self, container_id: str, command: list[str], *, tty: bool, stdin: bool
    ) -> StreamingProcess:
        """Start ``command`` in the container with its streams connected to the caller."""

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> StreamingProcess:
        """Connect to the container's main process streams (as ``kubectl attach``)."""

    async def port_forward(
        self, sandbox_id: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection to ``port`` inside the pod's network namespace."""

    async def container_stats(self, container_id: str) -> ContainerStats: ...

    async def container_fs_usage(self, container_id: str) -> tuple[int, int]:
        """Bytes and inodes the container's writable layer uses (CRI's WritableLayer)."""
