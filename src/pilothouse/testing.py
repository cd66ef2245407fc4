"""Public test helpers: an API server in a background thread, or as a process.

Tests and users build on the same seams the product uses. ``ServerThread``
runs a real :class:`~pilothouse.apiserver.server.APIServer` (HTTPS, real
store) on its own event loop in a daemon thread, so synchronous clients —
``kubectl`` in a subprocess, the ``kubernetes`` package — can talk to it from
ordinary test functions. ``ServerProcess`` runs ``pilothouse server`` as a
child process, for tests that kill it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse import looplanes
from pilothouse import supervisor as supervision
from pilothouse.apiserver import serverconfig
from pilothouse.cli import allinone
from pilothouse.client import rest
from pilothouse.controllers import manager

if TYPE_CHECKING:
    from pilothouse.node.agent import Agent
    from pilothouse.node.runtime.protocol import Runtime
    from pilothouse.node.servicenet import ServiceNetwork


# A node under test runs on the test machine's disk, and how full that disk is belongs to
# the machine, not to the test: a CI machine with less than 15 % free would otherwise put
# every test node under DiskPressure, and no pod would run. So disk-based eviction is off
# ("0%" turns a signal off, as upstream does; kind configures its nodes the same way) and
# image GC waits for a full disk. Memory eviction stays upstream's (named again: an
# evictionHard replaces upstream's whole default set, as upstream's). Tests of disk
# pressure give their nodes filesystems and thresholds of their own.
NODE_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
evictionHard:
  memory.available: 100Mi
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
  imagefs.inodesFree: "0%"
imageGCHighThresholdPercent: 100
"""


def node_config_file(directory: Path) -> Path:
    """:data:`NODE_CONFIG` written into ``directory``, for ``pilothouse agent --config`` or
    ``pilothouse server --kubelet-config``; its path."""
    path = directory / "test-node-config.yaml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(NODE_CONFIG)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    """A started API server on 127.0.0.1, served from a background thread."""

    def __init__(
        self,
        data_dir: Path,
        *,
        datastore_endpoint: str = "sqlite://",
        controllers: bool = False,
        **config: Any,
    ) -> None:
        self.config = serverconfig.ServerConfig(
            data_dir=data_dir,
            bind_address="127.0.0.1",
            https_port=config.pop("https_port", 0),
            datastore_endpoint=datastore_endpoint,
            advertise_address="127.0.0.1",
            **config,
        )
        self.cluster = allinone.AllInOne(self.config, allinone.Options(controllers=controllers))
        self.server = self.cluster.server
        # The loop ``pilothouse server`` runs on (two lanes: see looplanes).
        self.loop = looplanes.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="pilothouse-apiserver", daemon=True)
        self._started: Future[None] = Future()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def boot() -> None:
            try:
                await self.cluster.start()
            except BaseException as exc:
                self._started.set_exception(exc)
                raise
            self._started.set_result(None)

        try:
            self.loop.run_until_complete(boot())
        except BaseException:
            return  # start() raises it in the caller's thread
        self.loop.run_forever()

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        self._started.result(timeout)
        return self

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.call(self.cluster.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def kubeconfig(self) -> Path:
        return self.server.kubeconfig_path

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess:
    """``pilothouse server`` as a child process (for crash and restart tests)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        extra_args: list[str] | None = None,
        agent: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.data_dir = data_dir
        self.host = host  # the address it binds and advertises (a dev cluster's LAN address)
        self.port = port or free_port()
        self.extra_args = extra_args or []
        self.agent = agent
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def _node_args(self) -> list[str]:
        if not self.agent:
            return ["--disable-agent"]
        if "--kubelet-config" in self.extra_args:
            return []
        return ["--kubelet-config", str(node_config_file(self.data_dir.parent))]

    def start(self, timeout: float = 30.0) -> ServerProcess:
        # Ready is what this start prints, not an open port: a restarted server on a
        # shared datastore answers on its port (503) while it starts.
        seen = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pilothouse.cli.main",
                "server",
                "--data-dir",
                str(self.data_dir),
                "--bind-address",
                self.host,
                "--https-port",
                str(self.port),
                "--advertise-address",
                self.host,
                *self._node_args(),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            if (
                self.kubeconfig.exists()
                and _port_open(self.port, self.host)
                and b"API server ready at" in _tail(self.log_path, seen)
            ):
                return self
            time.sleep(0.02)
        raise TimeoutError(
            f"server not ready after {timeout}s: {self.log_path.read_text()[-2000:]}"
        )

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(path: Path, offset: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read()


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@contextlib.contextmanager
def server_thread(data_dir: Path, **config: Any) -> Iterator[ServerThread]:
    srv = ServerThread(data_dir, **config).start()
    try:
        yield srv
    finally:
        srv.stop()


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


async def namespace_set_up(client: rest.Client, namespace: str, *, timeout: float = 15.0) -> None:
    """Wait until a new namespace has its ``default`` ServiceAccount and ``kube-root-ca.crt``
    ConfigMap (as upstream's e2e framework waits for the account before using a namespace)."""
    from pilothouse.api import errors, resources

    accounts = resources.DEFAULT.by_path("", "v1", "serviceaccounts")
    configmaps = resources.DEFAULT.by_path("", "v1", "configmaps")
    assert accounts is not None and configmaps is not None

    async def ready() -> bool:
        try:
            await client.get(accounts, "default", namespace)
            await client.get(configmaps, ROOT_CA_CONFIGMAP, namespace)
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return False
            raise
        return True

    await eventually(ready, timeout=timeout)


@contextlib.asynccontextmanager
async def running_controllers(
    client: rest.Client, factories: dict[str, manager.Factory]
) -> AsyncIterator[manager.ControllerManager]:
    """Run the given controllers on the current loop until the block ends."""
    sup = supervision.Supervisor("controller-manager")
    cm = manager.ControllerManager(client, supervisor=sup, factories=factories)
    sup.start("main", cm.run)
    try:
        await asyncio.wait_for(cm.ready.wait(), 20)
        yield cm
    finally:
        await sup.stop()


@contextlib.contextmanager
def hollow_nodes(server: ServerThread, count: int, **options: Any) -> Iterator[Any]:
    """``count`` hollow nodes (:class:`pilothouse.node.hollow.HollowCluster`) for
    ``server``, run on the server's own loop so synchronous tests (the real kubectl)
    can use them; they run pods until the block ends, then unregister."""
    from pilothouse.client import config
    from pilothouse.node import hollow

    async def start() -> tuple[hollow.HollowCluster, rest.Client]:
        # On the server's loop, as the server's own components: its in-process transport.
        assert server.server.in_process is not None
        client = rest.Client(
            config.in_process(server.server.in_process).with_user_agent("pilothouse-hollow")
        )
        sim = hollow.HollowCluster(client, count=count, **options)
        await sim.start()
        return sim, client

    async def stop(sim: hollow.HollowCluster, client: rest.Client) -> None:
        await sim.stop(unregister=True)
        await client.close()

    sim, client = server.call(start())
    try:
        yield sim
    finally:
        server.call(stop(sim, client))


def node_agent(
    server: ServerThread,
    client: rest.Client,
    *,
    name: str,
    data_dir: Path,
    runtime: Runtime,
    supervisor: supervision.Supervisor | None = None,
    network: ServiceNetwork | None = None,
) -> Agent:
    """A node agent in this process for ``server``, with the runtime given (usually
    :class:`pilothouse.node.runtime.fake.FakeRuntime`) and a serving certificate from
    the server's CA, listening on a free port, configured by :data:`NODE_CONFIG`. Not
    started: ``await agent.start()``.
    ``network`` (e.g. with :class:`pilothouse.proxy.fake.FakeKernel`) runs the proxy
    and the host-gw routes too."""
    from pilothouse.apiserver.auth import certs
    from pilothouse.node import agent, kubeletconfig
    from pilothouse.node import server as agent_server

    pki = server.server.pki
    assert pki is not None, "the server has not started"
    cert, key = certs.issue_serving_cert(
        pki, common_name=f"system:node:{name}", hostnames=[name], ips=["127.0.0.1"]
    )
    return agent.Agent(
        client,
        node_name=name,
        address="127.0.0.1",
        data_dir=data_dir,
        runtime_factory=lambda _cidr: runtime,
        supervisor=supervisor or supervision.Supervisor(f"agent {name}"),
        tls=agent_server.AgentTLS(cert, key, pki.ca_cert.read_bytes()),
        port=0,
        heartbeat=1.0,
        memory_backed_secrets=False,
        network=network,
        config=kubeletconfig.parse(NODE_CONFIG, source="testing.NODE_CONFIG"),
    )


async def run_kubectl(
    kubeconfig: Path,
    *args: str,
    stdin: str | None = None,
    timeout: float = 90.0,
    check: bool = True,
) -> tuple[int, str, str]:
    """Run the real kubectl without blocking the event loop (controllers, hollow nodes
    or a scheduler may run on it); (exit code, stdout, stderr). With ``check``, a
    failure raises AssertionError with both outputs."""
    import shutil

    exe = shutil.which("kubectl")
    if exe is None:
        raise FileNotFoundError("kubectl is not installed (install kubectl 1.32)")
    proc = await asyncio.create_subprocess_exec(
        exe,
        *args,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECTL_EXTERNAL_DIFF": ""},
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), timeout
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    code = proc.returncode if proc.returncode is not None else -1
    if check and code != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({code}):\n{out.decode()}\n{err.decode()}"
        )
    return code, out.decode(), err.decode()
