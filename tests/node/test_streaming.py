"""exec, attach and port-forward through the API server to an agent with the fake runtime.

No root: the agent's runtime is the in-memory fake (``exec`` answers from a
handler, ``port_forward`` connects to a local server standing in for the pod),
so these check both protocol ends — the API server's WebSocket, SPDY and
tunnel endpoints and the agent's — with the real ``kubectl`` and the
``kubernetes`` Python client as clients.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from pilothouse import testing
from pilothouse.api import remotecommand as rc
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.controllers import nodeipam
from pilothouse.node import agent as agent_module
from pilothouse.node.runtime import fake, protocol
from pilothouse.testing import eventually, running_controllers


def _resource(plural: str) -> resources.Resource:
    found = resources.DEFAULT.by_path("", "v1", plural)
    assert found is not None
    return found


PODS, NS, NODES = _resource("pods"), _resource("namespaces"), _resource("nodes")
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.kubectl


class EchoProcess:
    """``cat`` in a fake container: stdin comes back on stdout; exits 0 at stdin's end."""

    def __init__(self) -> None:
        self.stdout: asyncio.StreamReader | None = asyncio.StreamReader()
        self.stderr: asyncio.StreamReader | None = asyncio.StreamReader()
        self.stdin: asyncio.StreamWriter | None = None
        self.resizes: list[tuple[int, int]] = []
        self.closed = False
        self._done = asyncio.get_running_loop().create_future()

    async def start(self) -> None:
        ours, self._theirs = await _socketpair()  # both writers stay referenced: GC closes them
        self._ours_reader, self.stdin = ours
        self._pump = asyncio.get_running_loop().create_task(self._echo(self._theirs[0]))

    async def _echo(self, reader: asyncio.StreamReader) -> None:
        assert self.stdout is not None and self.stderr is not None
        while data := await reader.read(65536):
            self.stdout.feed_data(data)
        self.stdout.feed_eof()
        self.stderr.feed_eof()
        self._done.set_result(0)

    async def wait(self) -> int:
        return int(await self._done)

    def resize(self, width: int, height: int) -> None:
        self.resizes.append((width, height))

    async def close(self) -> None:
        self.closed = True
        self._pump.cancel()


async def _socketpair() -> tuple[Any, Any]:
    import socket

    a, b = socket.socketpair()
    return await asyncio.open_unix_connection(sock=a), await asyncio.open_unix_connection(sock=b)


class Runtime(fake.FakeRuntime):
    """The fake runtime, with ``cat`` echoing its stdin."""

    def __init__(self) -> None:
        super().__init__(fake.FakeImageService([fake.FakeImageService.make("busybox:1.36")]))
        self.echoes: list[EchoProcess] = []

    async def exec(
        self, container_id: str, command: list[str], *, tty: bool, stdin: bool
    ) -> protocol.StreamingProcess:
        if command == ["cat"] and stdin:
            await super().exec(container_id, command, tty=tty, stdin=False)  # state checks
            proc = EchoProcess()
            await proc.start()
            self.echoes.append(proc)
            return proc
        return await super().exec(container_id, command, tty=tty, stdin=stdin)


def _handler(_cid: str, command: list[str]) -> tuple[int, bytes, bytes]:
    if command[:2] == ["sh", "-c"] and command[2].startswith("exit "):
        return int(command[2].split()[1]), b"", b""
    if command[0] == "echo":
        return 0, " ".join(command[1:]).encode() + b"\n", b""
    if command[0] == "fail":
        return 3, b"some output\n", b"it broke\n"
    return 127, b"", f"{command[0]}: not found\n".encode()


class Cluster:
    def __init__(self, client: rest.Client, api_server: testing.ServerThread, tmp: Path) -> None:
        self.client = client
        self.api_server = api_server
        self.tmp = tmp
        self.name = "stream-" + uuid.uuid4().hex[:6]
        self.runtime = Runtime()
        self.runtime.exec_handler = _handler
        self.agent: agent_module.Agent | None = None

    async def start(self) -> None:
        self.agent = testing.node_agent(
            self.api_server, self.client, name=self.name, data_dir=self.tmp, runtime=self.runtime
        )
        await self.agent.start()

    async def stop(self) -> None:
        if self.agent is not None:
            await self.agent.stop()

    async def run_pod(self, ns: str, name: str, *containers: str, **spec: Any) -> dict[str, Any]:
        pod = {
            "metadata": {"name": name},
            "spec": {
                "nodeName": self.name,
                "containers": [
                    {"name": c, "image": "busybox:1.36", "command": ["sleep", "3600"]}
                    for c in containers or ("main",)
                ],
                **spec,
            },
        }
        await self.client.create(PODS, pod, ns)

        async def running() -> dict[str, Any] | None:
            p = await self.client.get(PODS, name, ns)
            return p if (p.get("status") or {}).get("phase") == "Running" else None

        result: dict[str, Any] = await eventually(running)
        return result

    def sandbox_id(self, ns: str, name: str) -> str:
        return next(
            s.id for s in self.runtime.sandboxes.values() if (s.namespace, s.name) == (ns, name)
        )

    async def kubectl(
        self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL,
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "KUBECONFIG": str(self.api_server.kubeconfig), **(env or {})},
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    def ssl_context(self) -> ssl.SSLContext:
        pki = self.api_server.server.pki
        assert pki is not None
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        return ctx

    def python_client(self) -> Any:
        import kubernetes

        cfg = yaml.safe_load(self.api_server.kubeconfig.read_text())
        conf = kubernetes.client.Configuration()
        loader = kubernetes.config.kube_config.KubeConfigLoader(cfg)  # type: ignore[no-untyped-call]
        loader.load_and_set(conf)  # type: ignore[no-untyped-call]
        return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(conf))


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


@pytest.fixture
async def ns(client: rest.Client) -> str:
    name = "s-" + uuid.uuid4().hex[:8]
    await client.create(NS, {"metadata": {"name": name}})
    return name


@pytest.fixture
async def cluster(
    client: rest.Client, api_server: testing.ServerThread, tmp_path: Path
) -> AsyncIterator[Cluster]:
    c = Cluster(client, api_server, tmp_path)
    async with running_controllers(client, {"nodeipam": nodeipam.NodeIPAMController}):
        await c.start()
        yield c
        await c.stop()
    await client.delete(NODES, c.name)


# --- exec: the Python client (WebSocket v5/v4) -------------------------------------------------
async def test_python_client_exec_output_and_exit_codes(cluster: Cluster, ns: str) -> None:
    await cluster.run_pod(ns, "box")
    from kubernetes.stream import stream

    api = cluster.python_client()

    def run(command: list[str]) -> tuple[str, str, int]:
        resp = stream(
            api.connect_get_namespaced_pod_exec,
            "box",
            ns,
            command=command,
            stderr=True,
            stdout=True,
            stdin=False,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=10)
        return resp.read_stdout(), resp.read_stderr(), resp.returncode

    out, err, code = await asyncio.to_thread(run, ["echo", "hello", "world"])
    assert (out, err, code) == ("hello world\n", "", 0)
    out, err, code = await asyncio.to_thread(run, ["fail"])
    assert (out, err, code) == ("some output\n", "it broke\n", 3)
    whole = await asyncio.to_thread(
        stream, api.connect_get_namespaced_pod_exec, "box", ns, command=["echo", "hi"],
        stderr=True, stdout=True, stdin=False, tty=False,
    )  # fmt: skip
    assert whole == "hi\n"


# --- exec: kubectl, over WebSocket and over the SPDY fallback ---------------------------------
@needs_kubectl
@pytest.mark.parametrize("transport", ["websocket", "spdy"])
async def test_kubectl_exec_stdin_and_exit_code(cluster: Cluster, ns: str, transport: str) -> None:
    env = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"} if transport == "spdy" else {}
    await cluster.run_pod(ns, "box")
    code, out, err = await cluster.kubectl("-n", ns, "exec", "box", "--", "echo", "hi", env=env)
    assert (code, out) == (0, "hi\n"), err
    payload = b"line one\n" + b"x" * 200_000 + b"\nthe end\n"
    code, out, err = await cluster.kubectl(
        "-n", ns, "exec", "-i", "box", "--", "cat", stdin=payload, env=env
    )
    assert code == 0, err
    assert out.encode() == payload
    code, out, err = await cluster.kubectl(
        "-n", ns, "exec", "box", "--", "sh", "-c", "exit 7", env=env
    )
    assert code == 7
    assert "command terminated with exit code 7" in err
    code, out, err = await cluster.kubectl("-n", ns, "exec", "box", "--", "fail", env=env)
    assert (code, out) == (3, "some output\n")
    assert "it broke" in err


@needs_kubectl
@pytest.mark.parametrize("transport", ["websocket", "spdy"])
async def test_kubectl_exec_refusals(cluster: Cluster, ns: str, transport: str) -> None:
    env = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"} if transport == "spdy" else {}
    await cluster.run_pod(ns, "two", "main", "side")
    side = next(
        c.status.id
        for c in cluster.runtime.containers.values()
        if c.status.name == "side" and cluster.runtime.sandboxes[c.status.sandbox_id].name == "two"
    )
    cluster.runtime.exit(side, 0)
    code, _, err = await cluster.kubectl("-n", ns, "exec", "two", "-c", "nope", "--", "ls", env=env)
    assert code == 1 and "container nope is not valid for pod two" in err, err
    code, _, err = await cluster.kubectl("-n", ns, "exec", "two", "-c", "side", "--", "ls", env=env)
    assert code == 1 and 'unable to upgrade connection: container not found ("side")' in err, err
    code, _, err = await cluster.kubectl("-n", ns, "exec", "missing", "--", "ls", env=env)
    assert code == 1 and 'pods "missing" not found' in err, err
    # The agent carries on.
    code, out, err = await cluster.kubectl(
        "-n", ns, "exec", "two", "-c", "main", "--", "echo", "ok", env=env
    )
    assert (code, out) == (0, "ok\n"), err


# --- port-forward ------------------------------------------------------------------------------
class Backend:
    """A TCP server standing in for the pod's port: a tiny HTTP server, one answer per connection."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0
        self.concurrent = 0
        self.peak = 0
        self.release = asyncio.Event()  # answers wait for this when ``hold`` is set
        self.hold = False

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.concurrent += 1
        self.peak = max(self.peak, self.concurrent)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split()[1].decode()
            if self.hold:
                await asyncio.wait_for(self.release.wait(), 20)
            body = f"you asked for {path}\n".encode() + b"z" * 100_000
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        finally:
            self.concurrent -= 1
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    b = Backend()
    await b.start()
    yield b
    await b.stop()


async def _http_get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return data


async def _port_forward(
    cluster: Cluster, ns: str, pod: str, ports: str, env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, int]:
    """``kubectl port-forward`` on a free local port, once it says it is forwarding."""
    assert KUBECTL is not None
    local = testing.free_port()
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "-n", ns, "port-forward", f"pod/{pod}", f"{local}:{ports}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "KUBECONFIG": str(cluster.api_server.kubeconfig), **env},
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert b"Forwarding from" in line, line
    return proc, local


@needs_kubectl
@pytest.mark.parametrize("transport", ["websocket", "spdy"])
async def test_kubectl_port_forward_concurrent_connections(
    cluster: Cluster, ns: str, backend: Backend, transport: str
) -> None:
    env = {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"} if transport == "spdy" else {}
    await cluster.run_pod(ns, "web")
    sandbox = cluster.sandbox_id(ns, "web")
    cluster.runtime.port_targets[(sandbox, 8080)] = ("127.0.0.1", backend.port)
    proc, local = await _port_forward(cluster, ns, "web", "8080", env)
    try:
        backend.hold = True
        first = asyncio.ensure_future(_http_get(local, "/one"))
        second = asyncio.ensure_future(_http_get(local, "/two"))
        await eventually(_async(lambda: backend.concurrent == 2))
        backend.release.set()
        one, two = await asyncio.gather(first, second)
        assert one.startswith(b"HTTP/1.0 200 OK") and b"you asked for /one" in one
        assert two.endswith(b"z" * 100_000) and b"you asked for /two" in two
        assert backend.peak == 2
        # Sequential connections keep working on the same session.
        for i in range(3):
            assert b"you asked for /again%d" % i in await _http_get(local, f"/again{i}")
    finally:
        proc.terminate()
        await proc.wait()


@needs_kubectl
@pytest.mark.parametrize("transport", ["websocket", "spdy"])
async def test_kubectl_port_forward_to_a_closed_port(
    cluster: Cluster, ns: str, transport: str
) -> None:
    env = {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"} if transport == "spdy" else {}
    await cluster.run_pod(ns, "web")
    sandbox = cluster.sandbox_id(ns, "web")
    proc, local = await _port_forward(cluster, ns, "web", "81", env)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", local)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 20) == b""
        writer.close()
        assert proc.stderr is not None
        err = (await asyncio.wait_for(proc.stderr.read(), 20)).decode()
        assert (
            f"error forwarding port 81 to pod {sandbox}, uid : "
            "failed to connect to localhost:81 inside the pod" in err
        ), err
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
    # The agent is unaffected: exec still works.
    code, out, err = await cluster.kubectl("-n", ns, "exec", "web", "--", "echo", "fine")
    assert (code, out) == (0, "fine\n"), err


@needs_kubectl
async def test_kubectl_port_forward_needs_a_running_pod(cluster: Cluster, ns: str) -> None:
    await cluster.client.create(
        PODS,
        {"metadata": {"name": "idle"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        ns,
    )
    code, _, err = await cluster.kubectl("-n", ns, "port-forward", "pod/idle", "1234:80")
    assert code == 1 and "pod is not running" in err, err


async def test_python_client_port_forward(cluster: Cluster, ns: str, backend: Backend) -> None:
    from kubernetes.stream import portforward

    await cluster.run_pod(ns, "web")
    sandbox = cluster.sandbox_id(ns, "web")
    cluster.runtime.port_targets[(sandbox, 8080)] = ("127.0.0.1", backend.port)
    api = cluster.python_client()

    def fetch(port: int) -> tuple[bytes, str | None]:
        pf = portforward(api.connect_get_namespaced_pod_portforward, "web", ns, ports=str(port))
        sock = pf.socket(port)
        sock.setblocking(True)
        sock.sendall(b"GET /py HTTP/1.0\r\n\r\n")
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        sock.close()
        error = pf.error(port)
        pf.close()
        return b"".join(chunks), error

    body, error = await asyncio.to_thread(fetch, 8080)
    assert b"you asked for /py" in body and body.endswith(b"z" * 100_000)
    assert error is None
    body, error = await asyncio.to_thread(fetch, 81)
    assert body == b""
    assert error is not None and "error forwarding port 81" in error


def _async(check: Any) -> Any:
    async def wrapped() -> Any:
        return check()

    return wrapped


# --- attach, resize and the older channel protocols --------------------------------------------
def _container_id(cluster: Cluster, pod: str, name: str = "main") -> str:
    return next(
        c.status.id
        for c in cluster.runtime.containers.values()
        if c.status.name == name and cluster.runtime.sandboxes[c.status.sandbox_id].name == pod
    )


@needs_kubectl
async def test_kubectl_attach_streams_until_the_container_exits(cluster: Cluster, ns: str) -> None:
    await cluster.run_pod(ns, "ticker", restartPolicy="Never")
    cid = _container_id(cluster, "ticker")
    cluster.runtime.attach_output[cid] = b"tick 1\ntick 2\n"
    attach = asyncio.ensure_future(cluster.kubectl("-n", ns, "attach", "ticker"))
    await eventually(_async(lambda: any(not p.closed for p in cluster.runtime.processes)))
    cluster.runtime.exit(cid, 0)
    code, out, err = await attach
    assert code == 0, err
    assert out == "tick 1\ntick 2\n"


async def _ws(cluster: Cluster, path: str, protocol: str) -> Any:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(
        cluster.api_server.url + path, protocols=[protocol], ssl=cluster.ssl_context()
    )
    return session, ws


async def test_tty_resizes_reach_the_process(cluster: Cluster, ns: str) -> None:
    await cluster.run_pod(ns, "term")
    session, ws = await _ws(
        cluster,
        f"/api/v1/namespaces/{ns}/pods/term/exec?command=cat&stdin=true&stdout=true&tty=true",
        rc.V5,
    )
    async with session:
        assert ws.protocol == rc.V5
        assert (await ws.receive_bytes()) == b"\x01"  # "connected", on the lowest output channel
        await ws.send_bytes(b"\x04" + json.dumps({"Width": 100, "Height": 40}).encode())
        await ws.send_bytes(b'\x04{"Width":120,')  # one size split over two messages
        await ws.send_bytes(b'\x04"Height":50}')
        await ws.send_bytes(b"\x00typed\n")
        assert (await ws.receive_bytes()) == b"\x01typed\n"
        echo = cluster.runtime.echoes[-1]
        await eventually(_async(lambda: len(echo.resizes) == 2))
        assert echo.resizes == [(100, 40), (120, 50)]
        await ws.send_bytes(bytes((rc.CLOSE, rc.STDIN)))
        status = json.loads((await ws.receive_bytes())[1:])
        assert status["status"] == "Success"
        await ws.close()


@pytest.mark.parametrize("protocol", [rc.V4_BASE64, rc.V1])
async def test_older_channel_protocols(cluster: Cluster, ns: str, protocol: str) -> None:
    await cluster.run_pod(ns, "old")
    session, ws = await _ws(
        cluster,
        f"/api/v1/namespaces/{ns}/pods/old/exec?command=fail&stdout=true&stderr=true",
        protocol,
    )
    got: dict[int, bytes] = {}
    async with session:
        async for msg in ws:
            if protocol == rc.V4_BASE64:
                import base64

                assert msg.type == aiohttp.WSMsgType.TEXT
                channel, data = int(msg.data[0]), base64.b64decode(msg.data[1:])
            else:
                channel, data = msg.data[0], msg.data[1:]
            got[channel] = got.get(channel, b"") + data
    assert got[rc.STDOUT] == b"some output\n" and got[rc.STDERR] == b"it broke\n"
    if protocol == rc.V4_BASE64:
        assert rc.exit_code(json.loads(got[rc.ERROR])) == 3
    else:  # before v4 the error channel carries only the message
        assert got[rc.ERROR].startswith(b"command terminated with non-zero exit code")


async def test_bad_requests_are_answered_before_upgrading(
    cluster: Cluster, ns: str, api: Any
) -> None:
    await cluster.run_pod(ns, "box")
    base = f"/api/v1/namespaces/{ns}/pods"
    status, body = api.json("GET", f"{base}/box/exec?command=ls&stdout=true")
    assert status == 400 and body["message"] == "Upgrade request required"
    status, body = api.json("GET", f"{base}/box/exec?command=ls")
    assert status == 400 and "at least 1 of stdin, stdout, stderr" in body["message"]
    status, body = api.json("GET", f"{base}/nobody/exec?command=ls&stdout=true")
    assert status == 404 and body["reason"] == "NotFound"
    status, body = api.json("GET", f"{base}/box/portforward?ports=80")
    assert status == 400 and body["message"] == "Upgrade request required"


async def test_python_client_interactive_stdin_and_attach(cluster: Cluster, ns: str) -> None:
    from kubernetes.stream import stream

    await cluster.run_pod(ns, "talk")
    cluster.runtime.attach_output[_container_id(cluster, "talk")] = b"from the main process\n"
    api = cluster.python_client()

    def chat() -> tuple[str, str]:
        resp = stream(
            api.connect_get_namespaced_pod_exec, "talk", ns, command=["cat"],
            stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False,
        )  # fmt: skip
        resp.write_stdin("ping\n")  # a text message, as this client sends strings
        line = resp.readline_stdout(timeout=10)
        resp.write_stdin(b"pong\n")
        second = resp.readline_stdout(timeout=10)
        resp.close()
        return line, second

    assert await asyncio.to_thread(chat) == ("ping", "pong")
    attached = await asyncio.to_thread(
        lambda: stream(
            api.connect_get_namespaced_pod_attach,
            "talk",
            ns,
            stdin=False,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
        )
    )
    try:
        line = await asyncio.to_thread(attached.readline_stdout, 10)
        assert line == "from the main process"
    finally:
        attached.close()
    # Hanging up detaches (the agent closes its attach session) and stops exec'd processes.
    attach = cluster.runtime.processes[-1]
    await eventually(_async(lambda: attach.closed))
    await eventually(_async(lambda: all(e.closed for e in cluster.runtime.echoes)))
