"""The in-process transport: a component's request reaches the server's whole handler
chain without a socket, and answers exactly as the private Unix socket does — who it
is, what it may do, the error answers, watches and their end — plus the aiohttp
shapes the transport relies on, so an aiohttp upgrade that changes them fails here."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import streams, web
from aiohttp.http import HttpVersion11, RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from pilothouse.api import errors, rbac, resources
from pilothouse.apiserver import inprocess, serverconfig
from pilothouse.apiserver import server as apiserver
from pilothouse.apiserver.authn import user as user_module
from pilothouse.client import config, rest
from pilothouse.client import inprocess as client_inprocess


def _resource(group: str, plural: str) -> resources.Resource:
    found = resources.DEFAULT.by_path(group, "v1", plural)
    assert found is not None
    return found


CONFIGMAPS = _resource("", "configmaps")
SELF_REVIEWS = _resource("authentication.k8s.io", "selfsubjectreviews")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[apiserver.APIServer]:
    s = apiserver.APIServer(
        serverconfig.ServerConfig(
            data_dir=tmp_path,
            bind_address="127.0.0.1",
            https_port=0,
            advertise_address="127.0.0.1",
        )
    )
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def client_of(server: apiserver.APIServer, user: user_module.UserInfo | None) -> rest.Client:
    assert server.in_process is not None
    cfg = config.in_process(server.in_process)
    if user is not None:
        assert server.identity is not None
        cfg = cfg.with_token(server.identity.component_token(user))
    return rest.Client(cfg, retry=rest.NO_RETRIES)


async def who(client: rest.Client) -> tuple[str, list[str]]:
    review = await client.create(
        SELF_REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    info = review["status"]["userInfo"]
    return info["username"], info.get("groups") or []


async def test_identity_is_the_private_sockets(server: apiserver.APIServer) -> None:
    """No token: the server itself, as on the Unix socket; a token: whom it names; a
    token nobody issued: 401, never anonymous."""
    assert server.identity is not None
    async with client_of(server, None) as plain:
        assert await who(plain) == (
            "system:apiserver",
            ["system:masters", "system:authenticated"],
        )
    scheduler = user_module.UserInfo(rbac.KUBE_SCHEDULER)
    async with client_of(server, scheduler) as component:
        name, groups = await who(component)
        assert (name, groups) == (rbac.KUBE_SCHEDULER, ["system:authenticated"])
    socket_client = rest.Client(
        config.local_socket(server.socket_path).with_token(
            server.identity.component_token(scheduler)
        )
    )
    async with socket_client:
        assert await who(socket_client) == (name, groups)
    assert server.in_process is not None
    stranger = rest.Client(config.in_process(server.in_process).with_token("not-a-token"))
    async with stranger:
        with pytest.raises(errors.StatusError) as caught:
            await stranger.get(CONFIGMAPS, "x", "default")
    assert caught.value.code == 401 and caught.value.reason == errors.UNAUTHORIZED


async def test_authorization_and_error_answers_are_the_sockets(
    server: apiserver.APIServer,
) -> None:
    """RBAC decides, and refusals, misses and conflicts come back as the same Status
    errors (code, reason, message) the socket gives."""
    assert server.identity is not None
    scheduler = user_module.UserInfo(rbac.KUBE_SCHEDULER)
    socket_client = rest.Client(
        config.local_socket(server.socket_path).with_token(
            server.identity.component_token(scheduler)
        ),
        retry=rest.NO_RETRIES,
    )
    async with (
        client_of(server, scheduler) as local,
        socket_client,
        client_of(server, None) as admin,
    ):
        answers = []
        for c in (local, socket_client):
            with pytest.raises(errors.StatusError) as forbidden:
                await c.create(CONFIGMAPS, {"metadata": {"name": "nope"}}, "default")
            answers.append((forbidden.value.code, forbidden.value.reason, forbidden.value.message))
        assert answers[0] == answers[1]
        assert answers[0][0] == 403 and "cannot create resource" in answers[0][2]

        with pytest.raises(errors.StatusError) as missing:
            await admin.get(CONFIGMAPS, "absent", "default")
        assert errors.is_not_found(missing.value)
        made = await admin.create(CONFIGMAPS, {"metadata": {"name": "one"}}, "default")
        assert made["metadata"]["uid"]
        with pytest.raises(errors.StatusError) as twice:
            await admin.create(CONFIGMAPS, {"metadata": {"name": "one"}}, "default")
        assert errors.is_already_exists(twice.value)
        stale = {**made, "metadata": {**made["metadata"], "resourceVersion": "1"}}
        with pytest.raises(errors.StatusError) as conflict:
            await admin.update(CONFIGMAPS, stale)
        assert errors.is_conflict(conflict.value)
        with pytest.raises(errors.StatusError) as bad:
            await admin.request("POST", "/api/v1/namespaces/default/configmaps", body=b"{not json")
        assert bad.value.code == 400
        # A body over the server's limit is refused as on a socket (413).
        with pytest.raises(errors.StatusError) as large:
            await admin.create(
                CONFIGMAPS,
                {"metadata": {"name": "big"}, "data": {"k": "x" * (4 * 1024 * 1024)}},
                "default",
            )
        assert large.value.code == 413


async def test_reads_writes_and_the_answer_is_the_callers(server: apiserver.APIServer) -> None:
    """A create, a patch, a list with a selector (query parameters arrive), a delete; the
    caller's object is never the server's, nor the answer the cache's."""
    async with client_of(server, None) as c:
        obj = {"metadata": {"name": "mine", "labels": {"a": "b"}}, "data": {"k": "v"}}
        made = await c.create(CONFIGMAPS, obj, "default")
        assert obj["metadata"] == {"name": "mine", "labels": {"a": "b"}}  # untouched
        made["data"]["k"] = "changed here"
        again = await c.get(CONFIGMAPS, "mine", "default")
        assert again["data"] == {"k": "v"}
        patched = await c.patch(CONFIGMAPS, "mine", {"data": {"k": "w"}}, "default")
        assert patched["data"] == {"k": "w"}
        listed = await c.list(CONFIGMAPS, "default", label_selector="a in (b,d),a!=e")
        assert [i["metadata"]["name"] for i in listed["items"]] == ["mine"]
        listed = await c.list(CONFIGMAPS, "default", label_selector="a notin (b)")
        assert listed["items"] == []
        listed = await c.list(CONFIGMAPS, "default", field_selector="metadata.name=mine")
        assert [i["metadata"]["name"] for i in listed["items"]] == ["mine"]
        await c.delete(CONFIGMAPS, "mine", "default")
        with pytest.raises(errors.StatusError) as gone:
            await c.get(CONFIGMAPS, "mine", "default")
        assert errors.is_not_found(gone.value)
        assert await c.request("GET", "/version") is not None
        health = await c.request("GET", "/readyz")
        assert health == "ok"


async def test_watch_streams_and_leaving_it_ends_the_handler(
    server: apiserver.APIServer,
) -> None:
    """Events arrive as they happen; the caller leaving the watch ends the server's
    handler (it leaves the long-running set), as a closed connection does."""
    assert server.app is not None and server.in_process is not None
    async with client_of(server, None) as c:
        rv = (await c.list(CONFIGMAPS, "default"))["metadata"]["resourceVersion"]
        seen: list[str] = []
        watching = asyncio.Event()

        async def watch() -> None:
            async for event in c.watch(CONFIGMAPS, "default", resource_version=rv):
                watching.set()
                if event["type"] == "ADDED":
                    seen.append(event["object"]["metadata"]["name"])
                    if len(seen) == 3:
                        return

        task = asyncio.create_task(watch())
        for i in range(3):
            await c.create(CONFIGMAPS, {"metadata": {"name": f"w{i}"}}, "default")
        await asyncio.wait_for(task, 10)
        assert seen == ["w0", "w1", "w2"]
        for _ in range(100):
            if not server.app.long_running and len(server.in_process) == 0:
                break
            await asyncio.sleep(0.01)
        assert not server.app.long_running
        assert len(server.in_process) == 0

        # A watch the server ends ends the caller's too: cleanly when the watch cache
        # closes its watchers (shutdown's first step), as a dropped connection when its
        # handler is cancelled mid-answer (shutdown's last resort), as over a socket.
        async def forever() -> str:
            async for _ in c.watch(CONFIGMAPS, "default", resource_version=rv):
                pass
            return "ended"

        async def started() -> None:
            for _ in range(100):
                if server.app is not None and server.app.long_running:
                    return
                await asyncio.sleep(0.01)

        assert server.cache is not None
        closed = asyncio.create_task(forever())
        await started()
        server.cache.close_watchers()
        assert await asyncio.wait_for(closed, 5) == "ended"
        cancelled = asyncio.create_task(forever())
        await started()
        await server.app.end_long_running(timeout=2)
        with pytest.raises(rest.Disconnected):
            await asyncio.wait_for(cancelled, 5)


async def test_a_closed_transport_refuses_as_a_closed_socket(
    server: apiserver.APIServer,
) -> None:
    """After the server stops taking requests from its components, a request is a
    ConnectError (never sent: safe to retry elsewhere), not a hang."""
    assert server.in_process is not None
    async with client_of(server, None) as c:
        assert await c.list(CONFIGMAPS, "default")
        server.in_process.close()
        with pytest.raises(rest.ConnectError) as refused:
            await c.create(CONFIGMAPS, {"metadata": {"name": "late"}}, "default")
        assert refused.value.sent is False


async def test_a_stalled_reader_holds_the_writer_until_cut() -> None:
    """Flow control: writes past the high-water mark wait for the reader; cutting the
    exchange (the watch's slow-reader rule aborts the transport) frees the writer
    with an error and ends the reader's stream as a dropped connection."""
    loop = asyncio.get_running_loop()
    exchange = inprocess._Exchange(loop)
    await exchange.write_headers("HTTP/1.1 200 OK", CIMultiDict())
    await exchange.started()
    assert exchange.status == 200
    await exchange.write(b"x" * inprocess.HIGH_WATER)
    blocked = asyncio.create_task(exchange.write(b"y"))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    inprocess._Connection(exchange).abort()
    with pytest.raises(client_inprocess.Cut):
        await blocked
    with pytest.raises(client_inprocess.Cut):
        await exchange.read()


async def test_a_reader_drains_the_writer() -> None:
    loop = asyncio.get_running_loop()
    exchange = inprocess._Exchange(loop)
    await exchange.write_headers("HTTP/1.1 201 Created", CIMultiDict())

    async def produce() -> None:
        for _ in range(4):
            await exchange.write(b"z" * inprocess.HIGH_WATER)
        await exchange.write_eof(b"!")

    producer = asyncio.create_task(produce())
    body = await exchange.read()
    await producer
    assert len(body) == 4 * inprocess.HIGH_WATER + 1 and body.endswith(b"!")


async def test_the_aiohttp_shapes_the_transport_relies_on() -> None:
    """Undocumented aiohttp details the in-process transport builds on (see the module
    docstring of apiserver/inprocess.py): if one of these fails after an aiohttp
    upgrade, the transport needs a look before anything else does."""
    # The low-level server's handler and request factory, public attributes.
    server = web.Server(lambda request: None)  # type: ignore[arg-type,return-value]
    assert callable(server.request_handler) and callable(server.request_factory)
    # The parsed request line a web.Request is built from, made positionally (aiohttp
    # has a C and a Python class of that name; both take these, in this order).
    url = URL("/api/v1/pods?watch=1")
    headers = CIMultiDictProxy(CIMultiDict({"Host": "localhost"}))
    message = RawRequestMessage(
        "GET", "/api/v1/pods?watch=1", HttpVersion11, headers, (), False, None, False, False, url
    )
    assert (message.method, message.path, message.version) == (
        "GET",
        "/api/v1/pods?watch=1",
        HttpVersion11,
    )
    assert message.headers is headers and message.raw_headers == ()
    assert (message.should_close, message.compression, message.upgrade, message.chunked) == (
        False,
        None,
        False,
        False,
    )
    assert message.url is url
    # web.Request's constructor: (message, payload, protocol, writer, task, loop, ...).
    params = list(inspect.signature(web.BaseRequest.__init__).parameters)
    assert params[:7] == [
        "self",
        "message",
        "payload",
        "protocol",
        "payload_writer",
        "task",
        "loop",
    ]
    # The body's reader works on our stand-in for aiohttp's protocol when fed whole.
    exchange = inprocess._Exchange(asyncio.get_running_loop())
    protocol = inprocess._Protocol(inprocess._Connection(exchange))
    reader = streams.StreamReader(protocol, 1 << 16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    reader.feed_data(b"x" * (1 << 16))
    reader.feed_eof()
    assert len(await reader.read()) == 1 << 16 and reader.at_eof()


async def test_another_event_loop_is_refused(server: apiserver.APIServer) -> None:
    """The transport's futures belong to the server's loop: a client on another loop
    (a thread's) is told to use the socket, instead of hanging or corrupting state."""
    assert server.in_process is not None
    transport = server.in_process

    async def elsewhere() -> None:
        async with transport.open("GET", "/version", query=None, headers={}, body=None):
            pass

    with pytest.raises(RuntimeError, match="only its server's event loop"):
        await asyncio.to_thread(asyncio.run, elsewhere())


async def test_requests_are_counted_as_on_the_socket(server: apiserver.APIServer) -> None:
    """The metrics middleware sees an in-process request as any other: counted by verb,
    resource and answer code (a miss is a 404)."""

    def misses() -> float:
        value = server.metrics.registry.get_sample_value(
            "apiserver_request_total",
            {
                "verb": "GET",
                "dry_run": "",
                "group": "",
                "version": "v1",
                "resource": "configmaps",
                "subresource": "",
                "scope": "resource",
                "component": "apiserver",
                "code": "404",
            },
        )
        return value or 0.0

    before = misses()
    async with client_of(server, None) as c:
        for _ in range(3):
            with pytest.raises(errors.StatusError):
                await c.get(CONFIGMAPS, "absent", "default")
    assert misses() == before + 3
