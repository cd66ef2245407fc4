"""``pods/exec`` and ``pods/attach``: a client's streams joined to a process on the node.

The API server checks what upstream's registry checks (the pod exists, the
container is one of its own, it has a node), then serves the protocol the
client asked for:

* a WebSocket (``v5.channel.k8s.io`` for kubectl, ``v4`` and older for the
  Python clients): upgraded first, like upstream's stream translator, so a
  failure on the node arrives as a Status on the error channel
  (``Internal error occurred: unable to upgrade connection: container not
  found ("x")``);
* SPDY/3.1 (kubectl's fallback, ``POST`` with ``Upgrade: SPDY/3.1``): the agent
  is asked first, so a refusal is the plain HTTP answer a kubelet gives, which
  kubectl shows as ``unable to upgrade connection: …``.

Then :func:`bridge` copies stdin, resizes and stdin's half-close to the agent
and stdout, stderr and the final Status back, until either side hangs up.
Each session runs in its request's task, with one child task per direction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from pilothouse.api import errors
from pilothouse.api import remotecommand as rc
from pilothouse.api.meta import Obj
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.handlers.nodeproxy import NodeProxy
from pilothouse.apiserver.handlers.streaming import agent, channels, spdy, upgrade
from pilothouse.apiserver.registry.store import ResourceStore

SPDY_PROTOCOLS = (rc.V4, rc.V3, rc.V2, rc.V1)
STREAM_CREATION_TIMEOUT = 30.0
GOODBYE_TIMEOUT = 5.0  # how long we wait for a client to hang up after the final Status
Connect = Callable[[], Awaitable[agent.AgentLink]]


class Client(Protocol):
    """The client's end of a session, whatever protocol it speaks."""

    async def receive(self) -> tuple[int, bytes] | None:
        """(channel, data) — STDIN, RESIZE, or (CLOSE, [channel]); None once it hung up."""

    async def send(self, channel: int, data: bytes) -> None: ...

    async def send_status(self, status: rc.Status) -> None: ...

    async def close(self) -> None: ...


class RemoteCommand:
    """The exec and attach subresource handlers."""

    def __init__(self, proxy: NodeProxy) -> None:
        self.proxy = proxy

    async def exec(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        return await self._serve(request, store, info, attach=False)

    async def attach(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        return await self._serve(request, store, info, attach=True)

    async def _serve(
        self,
        request: web.Request,
        store: ResourceStore,
        info: request_info.RequestInfo,
        *,
        attach: bool,
    ) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed("")
        pod = await store.get(info.namespace, info.name)
        query = request.query
        container = container_of(pod, query.get("container", ""))
        stdin, stdout, tty = (rc.parse_bool(query.get(k)) for k in ("stdin", "stdout", "tty"))
        stderr = rc.parse_bool(query.get("stderr")) and not tty  # a terminal has one output
        if not (stdin or stdout or stderr):
            raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        command = [] if attach else query.getall("command", [])
        if not attach and not command:
            raise errors.bad_request("you must specify at least one command for the container")
        if not (pod.get("spec") or {}).get("nodeName"):
            raise errors.bad_request(f"pod {info.name} does not have a host assigned")
        params = [("command", c) for c in command] + [
            (k, "1") for k, on in (("stdin", stdin), ("tty", tty)) if on
        ]
        kind = "attach" if attach else "exec"
        path = f"/{kind}/{info.namespace}/{info.name}/{container}"

        async def connect() -> agent.AgentLink:
            return await agent.AgentLink.open(self.proxy, pod, path, params)

        first = rc.STDOUT if stdout else rc.STDERR if stderr else rc.ERROR
        if channels.is_websocket(request):
            return await _websocket(request, connect, first_channel=first)
        if upgrade.is_spdy(request):
            return await _spdy(request, connect, stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)
        raise errors.bad_request("Upgrade request required")


def container_of(pod: Obj, name: str) -> str:
    """Upstream's ``validateContainer``: the named container must be the pod's; by default its only one."""
    spec = pod.get("spec") or {}
    names = [
        c["name"]
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]
    pod_name = pod["metadata"]["name"]
    if name:
        if name not in names:
            raise errors.bad_request(f"container {name} is not valid for pod {pod_name}")
        return name
    main = [c["name"] for c in spec.get("containers") or []]
    if len(main) == 1:
        return str(main[0])
    if not main:
        raise errors.bad_request(f"a container name must be specified for pod {pod_name}")
    raise errors.bad_request(
        f"a container name must be specified for pod {pod_name}, choose one of: [{' '.join(names)}]"
    )


def _upgrade_failure(status: rc.Status) -> rc.Status:
    """What an agent's refusal looks like once the client's connection is already upgraded."""
    if agent.is_refusal(status):
        return rc.internal_error(f"unable to upgrade connection: {status.get('message', '')}")
    return status


async def _websocket(
    request: web.Request, connect: Connect, *, first_channel: int
) -> web.StreamResponse:
    client = await channels.ChannelSocket.accept(request)
    try:
        await client.send(first_channel, b"")  # upstream's "connection established"
        try:
            link = await connect()
        except agent.AgentUnavailable as exc:
            await client.send_status(rc.internal_error(str(exc)))
            return client.ws
        except errors.StatusError as exc:  # the pod's node has no address
            await client.send_status(exc.status())
            return client.ws
        try:
            failure = await link.started()
            if failure is not None:
                await client.send_status(_upgrade_failure(agent.status_of(failure)))
                return client.ws
            await bridge(client, link)
        finally:
            await link.close()
    except ConnectionError:
        pass
    finally:
        await client.close()
    return client.ws


async def _spdy(
    request: web.Request,
    connect: Connect,
    *,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> web.StreamResponse:
    protocol = upgrade.stream_protocol(request, SPDY_PROTOCOLS)
    try:
        link = await connect()
    except agent.AgentUnavailable as exc:
        raise errors.internal(str(exc)) from None
    early: rc.Status | None = None
    try:
        failure = await link.started()
        if failure is not None:
            early = agent.status_of(failure)
            if agent.is_refusal(early):
                # The kubelet's answer to a request it cannot serve: plain text, not a Status.
                return web.Response(status=int(early.get("code") or 500), text=early["message"])
        conn = await upgrade.UpgradedConnection.upgrade(request, protocol)
        session = spdy.Session(conn.reader, conn.write)
        reading = asyncio.get_running_loop().create_task(session.run())
        try:
            wanted = {rc.TYPE_ERROR}
            wanted |= {t for t, on in ((rc.TYPE_STDIN, stdin), (rc.TYPE_STDOUT, stdout)) if on}
            wanted |= {rc.TYPE_STDERR} if stderr else set()
            wanted |= {rc.TYPE_RESIZE} if tty and protocol not in (rc.V2, rc.V1, "") else set()
            streams = await _expect_streams(session, wanted)
            if streams is not None:
                client = SpdyClient(session, streams, protocol=protocol, reading=reading)
                if early is not None:
                    await client.send_status(early)
                    await client.close()
                else:
                    await bridge(client, link)
        finally:
            await session.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reading), GOODBYE_TIMEOUT)
            reading.cancel()
            await conn.close()
        return conn.response
    finally:
        await link.close()


async def _expect_streams(session: spdy.Session, wanted: set[str]) -> dict[str, spdy.Stream] | None:
    """The streams the client opens for a session (as the kubelet counts them), or None."""
    streams: dict[str, spdy.Stream] = {}

    async def collect() -> None:
        while len(streams) < len(wanted):
            stream = await session.accept()
            if stream is None:
                return
            kind = stream.header(rc.STREAM_TYPE)
            if kind in wanted:
                streams[kind] = stream
            else:
                await stream.reset(spdy.REFUSED_STREAM)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), STREAM_CREATION_TIMEOUT)
    return streams if len(streams) == len(wanted) else None


class SpdyClient:
    """A :class:`Client` made of the SPDY streams kubectl opened."""

    def __init__(
        self,
        session: spdy.Session,
        streams: dict[str, spdy.Stream],
        *,
        protocol: str,
        reading: asyncio.Task[None],
    ) -> None:
        self.session = session
        self.streams = streams
        self.status_json = protocol == rc.V4
        self._events: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._pumps = [
            loop.create_task(self._pump(streams[kind], channel))
            for kind, channel in ((rc.TYPE_STDIN, rc.STDIN), (rc.TYPE_RESIZE, rc.RESIZE))
            if kind in streams
        ]
        reading.add_done_callback(lambda _t: self._events.put_nowait(None))

    async def _pump(self, stream: spdy.Stream, channel: int) -> None:
        while data := await stream.read():
            self._events.put_nowait((channel, data))
        if channel == rc.STDIN and not self.session.closed:
            self._events.put_nowait((rc.CLOSE, bytes((rc.STDIN,))))

    async def receive(self) -> tuple[int, bytes] | None:
        event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)
        return event

    async def send(self, channel: int, data: bytes) -> None:
        kind = rc.TYPE_STDOUT if channel == rc.STDOUT else rc.TYPE_STDERR
        stream = self.streams.get(kind)
        if stream is not None:
            await stream.write(data)

    async def send_status(self, status: rc.Status) -> None:
        error = self.streams[rc.TYPE_ERROR]
        if self.status_json:
            await error.write(rc.encode_status(status))
        elif status.get("status") != "Success":
            await error.write(str(status.get("message", "")).encode())

    async def close(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        for kind in (rc.TYPE_STDOUT, rc.TYPE_STDERR, rc.TYPE_ERROR):
            stream = self.streams.get(kind)
            if stream is not None:
                await stream.close()


async def bridge(client: Client, link: agent.AgentLink) -> None:
    """Copy a session both ways until the agent sends its Status (which the client then gets)
    or the client hangs up (which stops the process on the node)."""

    async def upstream() -> None:
        while (event := await client.receive()) is not None:
            channel, data = event
            if channel == rc.CLOSE:
                if data == bytes((rc.STDIN,)):
                    await link.send(rc.close_frame(rc.STDIN))
            elif channel in (rc.STDIN, rc.RESIZE):
                await link.send(rc.frame(channel, data))

    async def downstream() -> rc.Status:
        status: rc.Status | None = None
        while (msg := await link.receive()) is not None:
            channel = msg[0]
            if channel in (rc.STDOUT, rc.STDERR):
                await client.send(channel, msg[1:])
            elif channel == rc.ERROR:
                status = agent.status_of(msg)
        return status or rc.internal_error("the node agent closed the stream without a status")

    loop = asyncio.get_running_loop()
    up, down = loop.create_task(upstream()), loop.create_task(downstream())
    try:
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if up.done() and up.exception() is not None and not down.done():
            # Writing to the agent failed: its end says why (or that it is gone).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(down), 2.0)
        if down.done() and down.exception() is None:
            await client.send_status(down.result())
    finally:
        for task in (up, down):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await client.close()
