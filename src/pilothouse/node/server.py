"""The agent's own HTTPS API (the kubelet's port 10250), for the API server.

Mutual TLS: only clients with a certificate from the cluster CA in the
``system:masters`` group (the API server's kubelet client) are served
(:class:`AgentTLS` makes the listener's context, :func:`is_apiserver` checks the peer).
``GET /containerLogs/{namespace}/{pod}/{container}`` streams logs with the
kubelet's query options; ``GET /stats/summary`` answers the resource usage
``kubectl top`` shows (a trimmed kubelet Summary) and ``GET /metrics`` the
agent's Prometheus metrics, when the agent gives the callables for them;
``/healthz`` answers ok; ``/exec``, ``/attach`` and ``/portForward`` are the
WebSocket sessions of :mod:`pilothouse.node.streaming`. Each request runs as its
own task; a followed log is a long-lived streaming response.

:meth:`AgentServer.serve` is the listener as a supervised child. :meth:`stop`
ends every request still running — followed logs, exec, attach, port-forward
sessions — so the API server's end of them closes too, then closes the server
within ``SHUTDOWN_TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from pilothouse import supervisor as supervision
from pilothouse.node import logs, metrics, streaming

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 2.0

Locator = Callable[[str, str, str, bool], Path | None]


@dataclass(frozen=True)
class AgentTLS:
    """The agent's serving certificate and the CA its clients must come from (PEM)."""

    cert: bytes
    key: bytes
    ca: bytes

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory(prefix="pilothouse-agent-") as tmp:
            cert, key = Path(tmp) / "c.crt", Path(tmp) / "c.key"
            cert.write_bytes(self.cert)
            key.touch(mode=0o600)
            key.write_bytes(self.key)
            ctx.load_cert_chain(str(cert), str(key))
        ctx.load_verify_locations(cadata=self.ca.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def is_apiserver(ssl_obj: ssl.SSLObject | None) -> bool:
    """Only clients in group system:masters (the API server's kubelet client)."""
    if ssl_obj is None:
        return False
    cert = ssl_obj.getpeercert()
    if not cert:
        return False
    subject: Any = cert.get("subject", ())
    return any(
        attr[0] == "organizationName" and attr[1] == "system:masters"
        for rdn in subject
        for attr in rdn
    )


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"invalid {name}: {raw!r}") from None


def _options(request: web.Request) -> logs.LogOptions:
    since = None
    seconds = _int(request, "sinceSeconds")
    if seconds is not None:
        import time

        since = time.time() - seconds
    elif request.query.get("sinceTime"):
        from pilothouse.api import meta

        since = meta.parse_time(request.query["sinceTime"])
    return logs.LogOptions(
        follow=request.query.get("follow") in ("true", "1"),
        tail_lines=_int(request, "tailLines"),
        since=since,
        timestamps=request.query.get("timestamps") in ("true", "1"),
        limit_bytes=_int(request, "limitBytes"),
    )


class AgentServer:
    def __init__(
        self,
        *,
        locate_log: Locator,
        authorized: Callable[[ssl.SSLObject | None], bool],
        stats: Callable[[], dict[str, Any]] | None = None,
        metrics: Callable[[], bytes] | None = None,
        streams: streaming.StreamingService | None = None,
    ) -> None:
        self.locate_log = locate_log
        self.authorized = authorized
        self.stats = stats
        self.metrics = metrics
        self.streams = streams  # exec, attach, portForward
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._active: set[asyncio.Task[Any]] = set()  # the tasks serving requests now
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        if self.stats is not None:
            app.router.add_get("/stats/summary", self._summary)
        if self.metrics is not None:
            app.router.add_get("/metrics", self._metrics)
        if self.streams is not None:
            self.streams.add_routes(app.router)
        return app

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], object]
    ) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)  # type: ignore[misc, no-any-return]
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        if not self.authorized(ssl_obj):
            raise web.HTTPForbidden(text="Forbidden: only the API server may use this endpoint")
        task = asyncio.current_task()
        assert task is not None
        self._active.add(task)
        try:
            return await handler(request)  # type: ignore[misc, no-any-return]
        finally:
            self._active.discard(task)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _summary(self, request: web.Request) -> web.Response:
        assert self.stats is not None
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        return web.Response(body=self.metrics(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        previous = request.query.get("previous") in ("true", "1")
        path = self.locate_log(ns, pod, container, previous)
        if path is None:
            what = "previous terminated container" if previous else "container"
            raise web.HTTPNotFound(text=f'{what} "{container}" in pod "{pod}" not found')
        opts = _options(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            async for line in logs.read_logs(path, opts):
                await resp.write(line)
        except ConnectionResetError:
            pass
        return resp

    async def start(self, *, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self._listener = server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def serve(self) -> None:
        """The listener, as a supervised child (FATAL: an agent nobody reaches is no agent)."""
        assert self._listener is not None, "start() first"
        await supervision.listening(self._listener, "agent server")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()  # no new connections
        tasks = list(self._active)
        for task in tasks:
            task.cancel()  # each stream closes its websocket or response as it unwinds
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
