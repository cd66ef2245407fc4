"""``pods/portforward``: TCP connections into a running pod.

Three ways in, one way to the node:

* kubectl 1.32: a WebSocket with sub-protocol ``SPDY/3.1+portforward.k8s.io``
  whose binary messages carry a SPDY session; plain ``Upgrade: SPDY/3.1`` when
  that fails. Every local connection kubectl accepts opens a pair of SPDY
  streams (``error`` and ``data``, matched by their ``requestID`` header), so
  one session carries any number of connections at once.
* the Python clients: the kubelet's older WebSocket protocol on
  ``?ports=80,443``: per port a data channel ``2n`` and an error channel ``2n+1``,
  each opened by the port number (two bytes, little-endian); no half-close, so
  a connection ends when the pod closes it.

Each forwarded connection is one WebSocket to the agent's ``/portForward``
(a child task per connection, two per direction inside it). A port nobody
listens on is reported on that connection's error stream, in the kubelet's
words, and the rest of the session carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from pilothouse.api import errors
from pilothouse.api import remotecommand as rc
from pilothouse.api.meta import Obj
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.handlers.nodeproxy import NodeProxy
from pilothouse.apiserver.handlers.streaming import agent, channels, spdy, upgrade
from pilothouse.apiserver.registry.store import ResourceStore

log = logging.getLogger(__name__)

Connect = Callable[[int], Awaitable[agent.AgentLink]]
GOODBYE_TIMEOUT = 5.0


class PortForward:
    """The portforward subresource handler."""

    def __init__(self, proxy: NodeProxy) -> None:
        self.proxy = proxy

    async def handle(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed("")
        pod = await store.get(info.namespace, info.name)
        if not (pod.get("spec") or {}).get("nodeName"):
            raise errors.bad_request(f"pod {info.name} does not have a host assigned")
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if phase != "Running":
            raise errors.bad_request(
                f"unable to forward port because pod is not running. Current status={phase}"
            )
        path = f"/portForward/{info.namespace}/{info.name}"

        async def connect(port: int) -> agent.AgentLink:
            return await agent.AgentLink.open(self.proxy, pod, path, [("port", str(port))])

        if channels.is_websocket(request):
            tunneled = [
                p.removeprefix(rc.TUNNELING_PREFIX)
                for p in channels.requested_protocols(request)
                if p.startswith(rc.TUNNELING_PREFIX)
            ]
            if tunneled:
                return await _tunnel(request, tunneled, connect, pod)
            return await _legacy_websocket(request, connect)
        if upgrade.is_spdy(request):
            protocol = upgrade.stream_protocol(request, (rc.PORT_FORWARD_V1,))
            conn = await upgrade.UpgradedConnection.upgrade(request, protocol)
            await _serve_spdy(conn, connect, pod)
            return conn.response
        raise errors.bad_request("Upgrade request required")


async def _tunnel(
    request: web.Request, offered: list[str], connect: Connect, pod: Obj
) -> web.StreamResponse:
    if rc.PORT_FORWARD_V1 not in offered:
        raise errors.bad_request(
            f"unable to upgrade: unable to negotiate protocol: client supports [{' '.join(offered)}], "
            f"server accepts [{rc.PORT_FORWARD_V1}]"
        )
    ws = web.WebSocketResponse(
        protocols=(rc.TUNNELING_PREFIX + rc.PORT_FORWARD_V1,), compress=False, max_msg_size=16 << 20
    )
    await ws.prepare(request)
    pipe = upgrade.WebSocketPipe(ws)
    pipe.start()
    await _serve_spdy(pipe, connect, pod)
    return ws


async def _serve_spdy(pipe: upgrade.Pipe, connect: Connect, pod: Obj) -> None:
    """Pair the streams kubectl opens and forward each pair, until the session ends."""
    session = spdy.Session(pipe.reader, pipe.write)
    loop = asyncio.get_running_loop()
    reading = loop.create_task(session.run())
    pairs: dict[str, dict[str, spdy.Stream]] = {}
    forwards: set[asyncio.Task[None]] = set()
    try:
        while (stream := await session.accept()) is not None:
            kind = stream.header(rc.STREAM_TYPE)
            try:
                port = int(stream.header(rc.PORT))
                if not 0 < port < 65536:
                    raise ValueError
            except ValueError:
                await stream.reset(spdy.PROTOCOL_ERROR)
                continue
            if kind not in (rc.TYPE_DATA, rc.TYPE_ERROR):
                await stream.reset(spdy.PROTOCOL_ERROR)
                continue
            # Clients too old to send a requestID open error then data with consecutive ids.
            request_id = stream.header(rc.REQUEST_ID) or str(
                stream.id if kind == rc.TYPE_ERROR else stream.id - 2
            )
            pair = pairs.setdefault(request_id, {})
            if kind in pair:
                await stream.reset(spdy.PROTOCOL_ERROR)
                continue
            pair[kind] = stream
            if len(pair) == 2:
                del pairs[request_id]
                task = loop.create_task(
                    _forward_pair(session, pair[rc.TYPE_DATA], pair[rc.TYPE_ERROR], port, connect)
                )
                forwards.add(task)
                task.add_done_callback(forwards.discard)
    finally:
        for task in list(forwards):
            task.cancel()
        for task in list(forwards):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await session.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reading), GOODBYE_TIMEOUT)
        reading.cancel()
        await pipe.close()


async def _forward_pair(
    session: spdy.Session, data: spdy.Stream, error: spdy.Stream, port: int, connect: Connect
) -> None:
    """One forwarded connection: kubectl's stream pair ↔ one agent session."""
    try:
        try:
            link = await connect(port)
        except (agent.AgentUnavailable, errors.StatusError) as exc:
            await error.write(f"error forwarding port {port}: {exc}".encode())
            return
        try:
            failure = await link.started()
            if failure is not None:
                await error.write(failure[1:])
                return
            await _pump_pair(data, error, link)
        finally:
            await link.close()
    except ConnectionError:
        pass  # the session went away
    finally:
        await data.close()
        await error.close()
        session.forget(data)
        session.forget(error)


async def _pump_pair(data: spdy.Stream, error: spdy.Stream, link: agent.AgentLink) -> None:
    async def up() -> None:
        while chunk := await data.read():
            await link.send(rc.frame(rc.PF_DATA, chunk))
        if data.was_reset:
            await link.close()  # kubectl is done with this connection
        else:
            await link.send(rc.close_frame(rc.PF_DATA))

    async def down() -> None:
        while (msg := await link.receive()) is not None:
            if msg[0] == rc.PF_DATA:
                await data.write(msg[1:])
            elif msg == rc.close_frame(rc.PF_DATA):
                await data.close()
            elif msg[0] == rc.PF_ERROR:
                await error.write(msg[1:])

    loop = asyncio.get_running_loop()
    sending, receiving = loop.create_task(up()), loop.create_task(down())
    try:
        await receiving  # the agent closes the session once both directions are done
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sending


async def _legacy_websocket(request: web.Request, connect: Connect) -> web.StreamResponse:
    ports = _ports(request)
    client = await channels.ChannelSocket.accept(request, channels.PORT_FORWARD_PROTOCOLS)
    loop = asyncio.get_running_loop()
    # What the client sends for a port waits here until its agent session is up.
    inboxes: list[asyncio.Queue[bytes]] = [asyncio.Queue() for _ in ports]
    try:
        for i, port in enumerate(ports):
            number = struct.pack("<H", port)
            await client.send(2 * i, number)
            await client.send(2 * i + 1, number)
        forwards = [
            loop.create_task(_legacy_port(client, i, port, connect, inboxes[i]))
            for i, port in enumerate(ports)
        ]
        inbound = loop.create_task(_legacy_inbound(client, inboxes))
        try:
            await asyncio.wait(
                {inbound, loop.create_task(_all(forwards))}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (*forwards, inbound):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
    except ConnectionError:
        pass
    finally:
        await client.close()
    return client.ws


async def _all(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


async def _legacy_port(
    client: channels.ChannelSocket,
    index: int,
    port: int,
    connect: Connect,
    inbox: asyncio.Queue[bytes],
) -> None:
    try:
        link = await connect(port)
    except (agent.AgentUnavailable, errors.StatusError) as exc:
        await client.send(2 * index + 1, f"error forwarding port {port}: {exc}".encode())
        return

    async def to_pod() -> None:
        while True:
            await link.send(rc.frame(rc.PF_DATA, await inbox.get()))

    sending = asyncio.get_running_loop().create_task(to_pod())
    try:
        failure = await link.started()
        if failure is not None:
            await client.send(2 * index + 1, failure[1:])
            return
        while (msg := await link.receive()) is not None:
            if msg[0] == rc.PF_DATA:
                await client.send(2 * index, msg[1:])
            elif msg[0] == rc.PF_ERROR:
                await client.send(2 * index + 1, msg[1:])
            elif msg == rc.close_frame(rc.PF_DATA):
                break  # no half-close in this protocol: the pod closing ends the connection
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sending
        await link.close()


async def _legacy_inbound(
    client: channels.ChannelSocket, inboxes: list[asyncio.Queue[bytes]]
) -> None:
    while (event := await client.receive()) is not None:
        channel, data = event
        if channel % 2 == 0 and channel // 2 < len(inboxes) and data:
            inboxes[channel // 2].put_nowait(data)


def _ports(request: web.Request) -> list[int]:
    """The kubelet's ``NewV4Options``: ``ports`` is required, each 1…65535."""
    values = request.query.getall("ports", [])
    if not values:
        raise errors.bad_request('query parameter "ports" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise errors.bad_request('query parameter "ports" cannot be empty')
        for part in value.split(","):
            try:
                port = int(part)
                if not 0 <= port < 65536:
                    raise ValueError
            except ValueError:
                raise errors.bad_request(f"unable to parse {value!r} as a port") from None
            if port < 1:
                raise errors.bad_request(f"port {value!r} must be > 0")
            ports.append(port)
    return ports
