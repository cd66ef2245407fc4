"""The REST client's one error type for "no answer" and its retries, against small
misbehaving servers: connections dropped mid-request, refused, TLS that does not
verify, 429 and 503 with Retry-After."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import web

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, rest

CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")
assert CONFIGMAPS is not None
FAST = rest.RetryPolicy(attempts=4, backoff_initial=0.01, backoff_max=0.02)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Flaky:
    """An HTTP server whose handler the test sets; counts what reaches it."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.calls: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(request.method)
        assert self.handler is not None
        return await self.handler(request)


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Flaky, str]]:
    app = web.Application()
    server = Flaky()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = testing.free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def configmap(name: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "default"}}


async def drop(request: web.Request) -> web.StreamResponse:
    """Read the request, then close the connection without a word."""
    await request.read()
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.05)
    return web.Response()


async def test_a_dropped_connection_is_a_transport_error_and_gets_are_retried(
    flaky: tuple[Flaky, str],
) -> None:
    server, url = flaky
    answers = [drop, drop]

    async def then_ok(request: web.Request) -> web.StreamResponse:
        if answers:
            return await answers.pop(0)(request)
        return web.json_response(configmap("a"))

    server.handler = then_ok
    async with rest.Client(config.ClusterConfig(server=url), retry=FAST) as client:
        got = await client.get(CONFIGMAPS, "a", "default")
        assert got["metadata"]["name"] == "a"
        # (aiohttp itself may resend once on a kept-alive connection it found closed)
        assert server.calls == ["GET", "GET", "GET"] and client.retries >= 1


async def test_a_write_whose_connection_dropped_is_not_sent_again(
    flaky: tuple[Flaky, str],
) -> None:
    server, url = flaky
    server.handler = drop
    async with rest.Client(config.ClusterConfig(server=url), retry=FAST) as client:
        with pytest.raises(rest.Disconnected) as info:
            await client.create(CONFIGMAPS, configmap("a"), "default")
    # The server saw it once: it may have been applied, so it is the caller's to decide.
    assert server.calls == ["POST"]
    assert info.value.sent and isinstance(info.value, rest.TransportError)
    assert not isinstance(info.value, OSError)  # one family, not aiohttp's or the socket's


async def test_refused_connections_are_retried_for_any_method_then_reported() -> None:
    port = testing.free_port()  # nothing listens there
    async with rest.Client(
        config.ClusterConfig(server=f"http://127.0.0.1:{port}"), retry=FAST
    ) as client:
        with pytest.raises(rest.ConnectError) as info:
            await client.create(CONFIGMAPS, configmap("a"), "default")
        assert not info.value.sent and client.requests == FAST.attempts
        assert "POST http://127.0.0.1" in str(info.value)


async def test_refused_then_listening_succeeds_without_the_caller_noticing() -> None:
    async def ok(request: web.Request) -> web.StreamResponse:
        return web.json_response(configmap("a"), status=201)

    # A port nobody listens on yet; the server starts there while the client retries.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    policy = rest.RetryPolicy(attempts=20, backoff_initial=0.05, backoff_max=0.05)
    async with rest.Client(
        config.ClusterConfig(server=f"http://127.0.0.1:{port}"), retry=policy
    ) as client:
        call = asyncio.ensure_future(client.create(CONFIGMAPS, configmap("a"), "default"))
        await asyncio.sleep(0.12)
        assert not call.done()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", ok)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            made = await asyncio.wait_for(call, 5)
        finally:
            await runner.cleanup()
    assert made["metadata"]["name"] == "a" and client.retries >= 1


async def test_429_and_503_with_retry_after_are_honoured_for_writes_too(
    flaky: tuple[Flaky, str],
) -> None:
    server, url = flaky
    loop = asyncio.get_running_loop()
    seen: list[float] = []

    async def busy_then_ok(request: web.Request) -> web.StreamResponse:
        seen.append(loop.time())
        if len(seen) == 1:
            err = errors.too_many_requests("Too many requests, please try again later.")
            return web.Response(
                body=orjson.dumps(err.status()),
                status=429,
                headers={"Retry-After": "1"},
                content_type="application/json",
            )
        if len(seen) == 2:
            return web.Response(
                text="shutting down", status=503, headers={"Retry-After": "1"}
            )  # not even a Status: the header alone is enough
        return web.json_response(configmap("a"), status=201)

    server.handler = busy_then_ok
    async with rest.Client(config.ClusterConfig(server=url), retry=FAST) as client:
        made = await client.create(CONFIGMAPS, configmap("a"), "default")
    assert made["metadata"]["name"] == "a"
    assert server.calls == ["POST"] * 3
    assert seen[1] - seen[0] >= 0.95 and seen[2] - seen[1] >= 0.95


async def test_errors_without_retry_after_are_not_retried(flaky: tuple[Flaky, str]) -> None:
    server, url = flaky

    async def unavailable(request: web.Request) -> web.StreamResponse:
        err = errors.service_unavailable("not now")
        return web.json_response(err.status(), status=503)

    server.handler = unavailable
    async with rest.Client(config.ClusterConfig(server=url), retry=FAST) as client:
        with pytest.raises(errors.StatusError) as info:
            await client.get(CONFIGMAPS, "a", "default")
    assert errors.is_server_unavailable(info.value) and server.calls == ["GET"]


async def test_a_retry_never_outlives_the_request_timeout(flaky: tuple[Flaky, str]) -> None:
    server, url = flaky

    async def always_busy(request: web.Request) -> web.StreamResponse:
        return web.Response(text="busy", status=429, headers={"Retry-After": "5"})

    server.handler = always_busy
    async with rest.Client(config.ClusterConfig(server=url), retry=FAST) as client:
        began = asyncio.get_running_loop().time()
        with pytest.raises(errors.StatusError) as info:
            await client.request("GET", "/api/v1/namespaces", timeout=1.0)
        assert asyncio.get_running_loop().time() - began < 1.0
    assert errors.is_too_many_requests(info.value) and errors.retry_after(info.value) == 5


async def test_a_slow_answer_is_a_timeout(flaky: tuple[Flaky, str]) -> None:
    server, url = flaky

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.Response()

    server.handler = slow
    async with rest.Client(config.ClusterConfig(server=url), retry=FAST) as client:
        with pytest.raises(rest.Timeout):
            await client.request("GET", "/x", timeout=0.2)
    assert server.calls == ["GET"]  # the time is spent: no retry


async def test_a_certificate_that_does_not_verify_is_a_tls_error(
    api_server: testing.ServerThread,
) -> None:
    trusted = config.load_kubeconfig(api_server.kubeconfig)
    untrusted = config.ClusterConfig(server=trusted.server)  # the system CAs, not the cluster's
    async with rest.Client(untrusted, retry=FAST) as client:
        with pytest.raises(rest.TLSError) as info:
            await client.get(CONFIGMAPS, "a", "default")
    assert client.requests == 1 and not info.value.sent


async def test_a_watch_cut_mid_stream_is_a_transport_error(flaky: tuple[Flaky, str]) -> None:
    server, url = flaky

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        event = {"type": "ADDED", "object": configmap("a")}
        await resp.write(orjson.dumps(event) + b"\n")
        assert request.transport is not None
        request.transport.close()
        return resp

    server.handler = cut
    async with rest.Client(config.ClusterConfig(server=url), retry=FAST) as client:
        seen = []
        with pytest.raises(rest.TransportError):
            async for event in client.watch(CONFIGMAPS, "default"):
                seen.append(event["type"])
    assert seen == ["ADDED"]
