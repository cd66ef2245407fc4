"""The REST client on an in-process transport: what it sends, how it reads answers, and
how the transport's failures become the client's TransportError family with the same
retries as over a socket (a scripted transport stands in for the server)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson
import pytest

from pilothouse.api import errors, resources
from pilothouse.client import config, inprocess, rest

CONFIGMAPS = resources.Resource("", "v1", "ConfigMap", "configmaps", True)
FAST = rest.RetryPolicy(attempts=3, backoff_initial=0.001, backoff_max=0.002, retry_after_max=0.01)


@dataclasses.dataclass
class Sent:
    method: str
    path: str
    query: Mapping[str, str] | None
    headers: Mapping[str, str]
    body: bytes | None


class Answer:
    def __init__(self, status: int, headers: dict[str, str], chunks: list[bytes | Exception]):
        self.status = status
        self.headers: Mapping[str, str] = headers
        self._chunks = chunks

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        for c in self._chunks:
            if isinstance(c, Exception):
                raise c
            yield c
            await asyncio.sleep(0)


class Scripted:
    """A transport whose answers the test scripts, one callable per request."""

    def __init__(self, *script: Callable[[Sent], Answer]) -> None:
        self.script = list(script)
        self.sent: list[Sent] = []
        self.left = 0  # answers whose block the caller has left

    @contextlib.asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> AsyncIterator[inprocess.Answer]:
        sent = Sent(method, path, query, dict(headers), body)
        self.sent.append(sent)
        answer = self.script.pop(0)(sent)
        try:
            yield answer
        finally:
            self.left += 1


def json_answer(status: int, obj: Any, **headers: str) -> Callable[[Sent], Answer]:
    return lambda _: Answer(
        status, {"Content-Type": "application/json", **headers}, [orjson.dumps(obj)]
    )


def raising(exc: Exception) -> Callable[[Sent], Answer]:
    def fail(_: Sent) -> Answer:
        raise exc

    return fail


def client(transport: Scripted, **kw: Any) -> rest.Client:
    cfg = config.in_process(transport).with_user_agent("test-agent").with_token("tok")
    return rest.Client(cfg, retry=FAST, **kw)


async def test_a_request_carries_the_clients_headers_and_decodes_the_answer() -> None:
    t = Scripted(json_answer(201, {"kind": "ConfigMap", "metadata": {"name": "a"}}))
    async with client(t) as c:
        made = await c.create(CONFIGMAPS, {"metadata": {"name": "a"}}, "ns", field_manager="m")
    assert made == {"kind": "ConfigMap", "metadata": {"name": "a"}}
    (sent,) = t.sent
    assert (sent.method, sent.path, sent.query) == (
        "POST",
        "/api/v1/namespaces/ns/configmaps",
        {"fieldManager": "m"},
    )
    assert sent.headers["Authorization"] == "Bearer tok"
    assert sent.headers["User-Agent"] == "test-agent"
    assert sent.headers["Content-Type"] == "application/json"
    assert orjson.loads(sent.body or b"") == {"metadata": {"name": "a"}}
    assert t.left == 1


async def test_a_derived_config_keeps_the_transport() -> None:
    """Each controller's ServiceAccount client is made from the root client's config
    (controllers/credentials.py): it stays in process."""
    t = Scripted(json_answer(200, {"kind": "ConfigMap"}))
    derived = dataclasses.replace(config.in_process(t), token=None, token_source=lambda: "sa")
    async with rest.Client(derived) as c:
        await c.get(CONFIGMAPS, "a", "ns")
    assert t.sent[0].headers["Authorization"] == "Bearer sa"


async def test_an_error_answer_is_a_status_error_and_429_is_retried() -> None:
    status = {"kind": "Status", "code": 404, "reason": "NotFound", "message": "gone"}
    busy = {"kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "wait"}
    t = Scripted(
        json_answer(429, busy, **{"Retry-After": "1"}),  # waited 0.01 s (retry_after_max)
        json_answer(404, status),
    )
    async with client(t) as c:
        with pytest.raises(errors.StatusError) as caught:
            await c.get(CONFIGMAPS, "a", "ns")
    assert errors.is_not_found(caught.value) and caught.value.message == "gone"
    assert len(t.sent) == 2 and c.retries == 1


async def test_a_refused_request_is_a_connect_error_retried_whatever_the_method() -> None:
    t = Scripted(raising(inprocess.Refused("closed")), json_answer(201, {"kind": "ConfigMap"}))
    async with client(t) as c:
        await c.create(CONFIGMAPS, {"metadata": {"name": "a"}}, "ns")
    assert [s.method for s in t.sent] == ["POST", "POST"]
    t = Scripted(*[raising(inprocess.Refused("closed"))] * 3)
    async with client(t) as c:
        with pytest.raises(rest.ConnectError) as caught:
            await c.get(CONFIGMAPS, "a", "ns")
    assert caught.value.sent is False


async def test_a_cut_answer_is_a_dropped_connection_a_get_is_retried_a_write_not() -> None:
    def cut(_: Sent) -> Answer:
        return Answer(200, {"Content-Type": "application/json"}, [b'{"kin', inprocess.Cut("x")])

    t = Scripted(cut, json_answer(200, {"kind": "ConfigMap"}))
    async with client(t) as c:
        assert await c.get(CONFIGMAPS, "a", "ns") == {"kind": "ConfigMap"}
    t = Scripted(cut)
    async with client(t) as c:
        with pytest.raises(rest.Disconnected):
            await c.update(CONFIGMAPS, {"metadata": {"name": "a", "namespace": "ns"}})
    assert len(t.sent) == 1


async def test_a_slow_answer_is_a_timeout() -> None:
    class Slow(Answer):
        async def chunks(self) -> AsyncIterator[bytes]:
            await asyncio.sleep(10)
            yield b""

    t = Scripted(lambda _: Slow(200, {}, []))
    async with client(t) as c:
        with pytest.raises(rest.Timeout):
            await c.request("PUT", "/x", body={}, timeout=0.05)
    assert t.left == 1  # the block was left: the server's side is released


async def test_a_watch_reads_events_across_chunks_and_leaving_it_releases_the_answer() -> None:
    events = b'{"type":"ADDED","object":{"a":1}}\n{"type":"MOD'
    rest_of = b'IFIED","object":{"a":2}}\n\n{"type":"DELETED","object":{}}\n'
    t = Scripted(lambda _: Answer(200, {"Content-Type": "application/json"}, [events, rest_of]))
    seen = []
    async with client(t) as c:
        async for event in c.watch(CONFIGMAPS, "ns", resource_version="5"):
            seen.append(event["type"])
            if len(seen) == 2:
                break
    assert seen == ["ADDED", "MODIFIED"]
    assert t.sent[0].query is not None and t.sent[0].query["watch"] == "true"
    for _ in range(10):  # the loop closes the abandoned generator soon after
        await asyncio.sleep(0)
    assert t.left == 1
    refused = {"kind": "Status", "code": 403, "reason": "Forbidden", "message": "no"}
    t = Scripted(json_answer(403, refused))
    async with client(t) as c:
        with pytest.raises(errors.StatusError) as caught:
            async for _ in c.watch(CONFIGMAPS, "ns"):
                pass
    assert caught.value.code == 403
