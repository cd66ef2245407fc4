"""The agent's side of ``kubectl exec``, ``attach`` and ``port-forward``.

The API server terminates whatever its client speaks (WebSocket channels, SPDY)
and reaches the agent over one simple link per session: a WebSocket on
``/exec/{namespace}/{pod}/{container}?command=…&stdin=1&tty=1``,
``/attach/{namespace}/{pod}/{container}?stdin=1&tty=1`` or
``/portForward/{namespace}/{pod}?port=N``, framed as
:mod:`pilothouse.api.remotecommand` describes. Every session runs in the
request's own task: its output copiers and its input reader are child tasks,
and hanging up (either side) stops the process (exec), detaches (attach) or
closes the connection (port-forward). Refusals use the kubelet's words
(``pod does not exist``, ``container not found ("x")``, ``error forwarding
port 81 to pod …``) so the API server can pass them on unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import WSMsgType, web

from pilothouse.api import remotecommand as rc
from pilothouse.node.runtime import protocol

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CHUNK = 32 * 1024


class _Refused(Exception):
    """The session cannot start; ``status`` says why (the kubelet's words)."""

    def __init__(self, message: str, *, code: int = 500) -> None:
        super().__init__(message)
        self.status = rc.failure(message, code=code)


class StreamingService:
    """Serves the streaming endpoints for the pods ``pods()`` lists.

    ``sandboxes`` maps pod uid to its sandbox (the pod syncer's table), and
    ``drain_timeout`` bounds how long output is still copied after a command
    exits (a background child may hold its stdout open forever).
    """

    def __init__(
        self,
        *,
        runtime: protocol.Runtime,
        pods: Callable[[], list[Obj]],
        sandboxes: Mapping[str, protocol.Sandbox],
        drain_timeout: float = 5.0,
    ) -> None:
        self.runtime = runtime
        self.pods = pods
        self.sandboxes = sandboxes
        self.drain_timeout = drain_timeout

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/exec/{namespace}/{pod}/{container}", self.exec)
        router.add_get("/attach/{namespace}/{pod}/{container}", self.attach)
        router.add_get("/portForward/{namespace}/{pod}", self.port_forward)

    # --- lookups -----------------------------------------------------------------------------
    def _pod(self, namespace: str, name: str) -> Obj:
        for pod in self.pods():
            md = pod["metadata"]
            if md.get("namespace") == namespace and md.get("name") == name:
                return pod
        raise _Refused("pod does not exist", code=404)

    def _sandbox(self, pod: Obj) -> protocol.Sandbox:
        sandbox = self.sandboxes.get(pod["metadata"]["uid"])
        if sandbox is None or sandbox.state != "ready":
            md = pod["metadata"]
            raise _Refused(f'pod not found ("{md["name"]}_{md["namespace"]}")', code=404)
        return sandbox

    async def _container_id(self, namespace: str, pod_name: str, container: str) -> str:
        pod = self._pod(namespace, pod_name)
        sandbox = self.sandboxes.get(pod["metadata"]["uid"])
        if sandbox is not None:
            running = [
                c
                for c in await self.runtime.list_containers(sandbox.id)
                if c.name == container and c.state == "running"
            ]
            if running:
                return max(running, key=lambda c: c.attempt).id
        raise _Refused(f'container not found ("{container}")', code=404)

    # --- exec and attach -------------------------------------------------------------------
    async def exec(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        command = request.query.getall("command", [])
        tty = rc.parse_bool(request.query.get("tty"))
        stdin = rc.parse_bool(request.query.get("stdin"))
        ws = await _accept(request)
        try:
            if not command:
                raise _Refused("you must specify at least one command for the container", code=400)
            cid = await self._container_id(ns, pod, container)
            try:
                proc = await self.runtime.exec(cid, command, tty=tty, stdin=stdin)
            except protocol.RuntimeError_ as exc:
                raise _Refused(f"error executing command in container: {exc.message}") from None
        except _Refused as refused:
            await _finish(ws, refused.status)
            return ws

        def status(code: int) -> rc.Status:
            return rc.success() if code == 0 else rc.exit_status(code, command)

        await self._session(ws, proc, status)
        return ws

    async def attach(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        tty = rc.parse_bool(request.query.get("tty"))
        stdin = rc.parse_bool(request.query.get("stdin"))
        ws = await _accept(request)
        try:
            cid = await self._container_id(ns, pod, container)
            try:
                proc = await self.runtime.attach(cid, stdin=stdin, tty=tty)
            except protocol.RuntimeError_ as exc:
                raise _Refused(f"error attaching to container: {exc.message}") from None
        except _Refused as refused:
            await _finish(ws, refused.status)
            return ws
        # Upstream's attach ends in success whatever the container's exit code.
        await self._session(ws, proc, lambda _code: rc.success())
        return ws

    async def _session(
        self,
        ws: web.WebSocketResponse,
        proc: protocol.StreamingProcess,
        status: Callable[[int], rc.Status],
    ) -> None:
        loop = asyncio.get_running_loop()
        outputs = [
            loop.create_task(_copy_out(reader, ws, channel))
            for reader, channel in ((proc.stdout, rc.STDOUT), (proc.stderr, rc.STDERR))
            if reader is not None
        ]
        inbound = loop.create_task(_copy_in(ws, proc))
        exited = loop.create_task(proc.wait())
        try:
            await ws.send_bytes(rc.frame(rc.STARTED))
            await asyncio.wait({exited, inbound}, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                if outputs:
                    await asyncio.wait(outputs, timeout=self.drain_timeout)
                await _finish(ws, status(exited.result()))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("stream session ended: %s", exc)
        finally:
            for task in (*outputs, inbound, exited):
                task.cancel()
            for task in (*outputs, inbound, exited):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await proc.close()
            await ws.close()

    # --- port-forward ----------------------------------------------------------------------
    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        ws = await _accept(request)
        try:
            port = int(request.query.get("port", ""))
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            await _refuse_forward(ws, f"invalid port {request.query.get('port', '')!r}")
            return ws
        try:
            sandbox = self._sandbox(self._pod(ns, name))
        except _Refused as refused:
            await _refuse_forward(ws, str(refused))
            return ws
        try:
            reader, writer = await self.runtime.port_forward(sandbox.id, port)
        except protocol.RuntimeError_ as exc:
            # The CRI streaming server's words: the pod is named by its sandbox, uid left empty.
            await _refuse_forward(
                ws, f"error forwarding port {port} to pod {sandbox.id}, uid : {exc.message}"
            )
            return ws
        try:
            await ws.send_bytes(rc.frame(rc.STARTED))
            await _forward(ws, reader, writer)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("port-forward to %s/%s:%d ended: %s", ns, name, port, exc)
        finally:
            writer.close()
            await ws.close()
        return ws


async def _accept(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(rc.V5,), compress=False, max_msg_size=16 << 20)
    await ws.prepare(request)
    return ws


async def _finish(ws: web.WebSocketResponse, status: rc.Status) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_bytes(rc.frame(rc.ERROR, rc.encode_status(status)))
    await ws.close()


async def _refuse_forward(ws: web.WebSocketResponse, message: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_bytes(rc.frame(rc.PF_ERROR, message.encode()))
    await ws.close()


async def _copy_out(reader: asyncio.StreamReader, ws: web.WebSocketResponse, channel: int) -> None:
    while data := await reader.read(CHUNK):
        await ws.send_bytes(rc.frame(channel, data))


async def _copy_in(ws: web.WebSocketResponse, proc: protocol.StreamingProcess) -> None:
    """Stdin, half-close and resizes from the API server, until it hangs up."""
    sizes = rc.ResizeDecoder()
    stdin = proc.stdin
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, data = msg.data[0], msg.data[1:]
        if channel == rc.STDIN and stdin is not None:
            try:
                stdin.write(data)
                await stdin.drain()
            except (ConnectionError, RuntimeError):
                stdin = None  # the process closed its stdin: drop what follows
        elif channel == rc.CLOSE and data[:1] == bytes((rc.STDIN,)) and stdin is not None:
            stdin.close()
            stdin = None
        elif channel == rc.RESIZE:
            for width, height in sizes.feed(data):
                proc.resize(width, height)


async def _forward(
    ws: web.WebSocketResponse, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Copy both ways; each direction half-closes on its own. Ends when both did or on hang-up."""
    loop = asyncio.get_running_loop()
    client_done = loop.create_future()

    async def from_pod() -> None:
        while data := await reader.read(CHUNK):
            await ws.send_bytes(rc.frame(rc.PF_DATA, data))
        await ws.send_bytes(rc.close_frame(rc.PF_DATA))

    async def to_pod() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            if msg.data[0] == rc.PF_DATA:
                writer.write(msg.data[1:])
                await writer.drain()
            elif msg.data == rc.close_frame(rc.PF_DATA) and not client_done.done():
                with contextlib.suppress(OSError):
                    writer.write_eof()
                client_done.set_result(None)

    outbound = loop.create_task(from_pod())
    inbound = loop.create_task(to_pod())
    try:
        await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
        if not inbound.done():
            await asyncio.wait({inbound, client_done}, return_when=asyncio.FIRST_COMPLETED)
        elif not outbound.done():
            outbound.cancel()  # the API server hung up
    finally:
        for task in (inbound, outbound):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
