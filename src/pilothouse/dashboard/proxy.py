"""``pilothouse dashboard``: the pages and a proxy of the API on 127.0.0.1.

Like ``kubectl proxy``: the browser talks to this local server without credentials,
and every API request (``/api``, ``/apis``, ``/history``, ``/version``) is sent on to
the API server with the user's kubeconfig (client certificate or token). Responses
are streamed through as they come (watches, ``follow`` logs); WebSocket upgrades
(exec) are bridged message by message. Requests are independent coroutines on one
event loop; each owns its upstream response or WebSocket and closes it when either
side goes away.

Only loopback may talk to it, and only by a loopback Host name: a page on another
site cannot reach it through DNS rebinding (as kubectl proxy's ``--accept-hosts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from pilothouse.client import config as client_config
from pilothouse.dashboard import pages

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PROXIED = ("/api", "/apis", "/history", "/version", "/openapi")
# Hop-by-hop headers (RFC 9110 §7.6.1) and what the proxy itself decides.
_DROP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
        "content-length",
        "cookie",
    }
)
_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class DashboardProxy:
    """The local dashboard server. ``start`` binds; ``stop`` closes everything."""

    def __init__(self, cluster: client_config.ClusterConfig, *, port: int = 0) -> None:
        self.cluster = cluster
        self.port = port
        self._pages = pages.Pages()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ui/"

    async def start(self) -> None:
        connector: aiohttp.BaseConnector
        if self.cluster.unix_socket:
            connector = aiohttp.UnixConnector(path=self.cluster.unix_socket)
        else:
            connector = aiohttp.TCPConnector(ssl=self.cluster.ssl_context() or False)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
        )
        app = web.Application(middlewares=[self._loopback_only], client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # Watches, followed logs and exec sessions never end by themselves: on stop, give
        # them a second and close them, rather than aiohttp's default minute.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if self.port == 0 and server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    @web.middleware
    async def _loopback_only(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = (
            request.host.rsplit(":", 1)[0]
            if not request.host.startswith("[")
            else request.host.split("]")[0] + "]"
        )
        if host not in _ALLOWED_HOSTS:
            return web.Response(
                status=403, text=f"pilothouse dashboard: Host {request.host!r} is not loopback\n"
            )
        return await handler(request)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/":
            raise web.HTTPFound("/ui/")
        if path == pages.PREFIX or path.startswith(pages.PREFIX + "/"):
            return await self._pages.handle(request)
        if any(path == p or path.startswith(p + "/") for p in PROXIED):
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await self._websocket(request)
            return await self._forward(request)
        raise web.HTTPNotFound()

    def _headers(self, request: web.Request) -> dict[str, str]:
        out = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        out["User-Agent"] = "pilothouse-dashboard"
        token = self.cluster.token_source() if self.cluster.token_source else self.cluster.token
        if token:
            out["Authorization"] = f"Bearer {token}"
        return out

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read() if request.can_read_body else None
        url = self.cluster.server + request.path_qs
        async with self._session.request(
            request.method, url, headers=self._headers(request), data=body, allow_redirects=False
        ) as upstream:
            headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP}
            resp = web.StreamResponse(status=upstream.status, headers=headers)
            await resp.prepare(request)
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientPayloadError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            with contextlib.suppress(ConnectionResetError):
                await resp.write_eof()
            return resp

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        offered = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        protocols = [p for p in offered if not p.startswith("base64url.bearer.")]
        url = self.cluster.server + request.path_qs
        headers = self._headers(request)
        for name in list(headers):
            if name.lower().startswith("sec-websocket"):
                del headers[name]
        try:
            upstream = await self._session.ws_connect(
                url, protocols=protocols, headers=headers, autoping=True
            )
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(
                status=exc.status or 502, text=f"upstream refused the upgrade: {exc.message}\n"
            )
        ws = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else ())
        await ws.prepare(request)

        async def pump(
            src: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
            dst: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        ) -> None:
            async for msg in src:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                else:
                    break
            await dst.close()

        try:
            await asyncio.gather(pump(ws, upstream), pump(upstream, ws), return_exceptions=True)
        finally:
            await upstream.close()
            await ws.close()
        return ws
