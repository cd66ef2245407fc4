"""Image-test fixtures: a recording (and optionally corrupting) proxy in front of a registry."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

_BLOB_PATH = re.compile(r"/v2/.+/blobs/(sha256:[0-9a-f]{64})$")


@dataclass
class RegistryProxy:
    """Forwards to ``upstream``; records every request; flips a byte in chosen blobs."""

    upstream: str
    corrupt: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)
    host: str = ""

    def blob_gets(self) -> list[str]:
        out = []
        for method, path in self.requests:
            match = _BLOB_PATH.search(path)
            if method == "GET" and match:
                out.append(match.group(1))
        return out

    def manifest_gets(self) -> int:
        return sum(1 for m, p in self.requests if m == "GET" and "/manifests/" in p)


@pytest.fixture
async def registry_proxy() -> AsyncIterator[Callable[..., Awaitable[RegistryProxy]]]:
    """``await registry_proxy(upstream_host, corrupt={digest})`` → a proxy on 127.0.0.1."""
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession(auto_decompress=False)

    async def start(upstream: str, *, corrupt: set[str] | None = None) -> RegistryProxy:
        proxy = RegistryProxy(upstream, set(corrupt or ()))

        async def forward(request: web.Request) -> web.StreamResponse:
            proxy.requests.append((request.method, request.path))
            headers = {
                k: v
                for k, v in request.headers.items()
                if k.lower() not in ("host", "content-length")
            }
            async with session.request(
                request.method,
                f"http://{upstream}{request.path_qs}",
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                match = _BLOB_PATH.search(request.path)
                if match and match.group(1) in proxy.corrupt and body:
                    body = bytes([body[0] ^ 0x01]) + body[1:]
                out_headers = {
                    k: v
                    for k, v in resp.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                }
                return web.Response(status=resp.status, body=body, headers=out_headers)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        proxy.host = f"127.0.0.1:{port}"
        return proxy

    yield start
    for runner in runners:
        await runner.cleanup()
    await session.close()
