"""What comes back from the API server over the client's two transports, and the
in-process transport itself.

:class:`pilothouse.client.rest.Client` sends each request over its aiohttp session
(TCP or a unix socket) or, inside ``pilothouse server``, to the server's handler in
process (:mod:`pilothouse.client.inprocess`: :func:`send_local` and
:func:`watch_local` here). Both read their answer the same way: a whole answer decoded
(:func:`decode_answer`; an error answer becomes the
:class:`~pilothouse.api.errors.StatusError` of its ``Status``), a watch's body as its
events (:func:`events`), and a failure to get any answer as one of the
:class:`TransportError` family (:func:`transport_error` for aiohttp's and the socket
layer's exceptions, :func:`local_error` for the in-process transport's), so neither
transport's own exceptions reach callers. :mod:`pilothouse.client.rest` re-exports the
family: callers catch ``rest.TransportError``.

Plain functions and exception types: nothing here holds state, so any number of
requests and watches use them concurrently; each in-process request is its own task
on the server's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from pilothouse.api import errors
from pilothouse.api.meta import Obj
from pilothouse.client import inprocess


class TransportError(Exception):
    """No answer from the API server (httpx's ``TransportError``): see the subclasses.

    ``sent`` says whether the request may have reached the server."""

    sent = True

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        super().__init__(f"{method} {url}: {message}" if method else message)
        self.method = method
        self.url = url


class ConnectError(TransportError):
    """No connection could be made (refused, unreachable, no such socket, connect
    timeout): the request was never sent."""

    sent = False


class TLSError(ConnectError):
    """The TLS handshake failed (an untrusted or mismatched certificate)."""


class Timeout(TransportError):
    """The server did not answer within the request's timeout."""


class Disconnected(TransportError):
    """The connection dropped after the request was sent (closed, reset, a truncated
    answer): a write may or may not have been applied."""


def transport_error(exc: BaseException, method: str, url: str) -> TransportError:
    """aiohttp's (and the socket layer's) exception as one of ours."""
    text = str(exc) or type(exc).__name__
    kind: type[TransportError]
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        kind = TLSError
    elif isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        kind = ConnectError
    elif isinstance(exc, TimeoutError):
        kind = Timeout
    elif isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientOSError
        | ConnectionError,
    ):
        kind = Disconnected
    else:
        kind = TransportError
    error = kind(text, method=method, url=url)
    error.__cause__ = exc
    return error


TRANSPORT_FAILURES = (aiohttp.ClientError, OSError, TimeoutError)


def status_error(status: int, body: bytes, retry_after: str | None = None) -> errors.StatusError:
    error: errors.StatusError | None = None
    with contextlib.suppress(ValueError, TypeError):
        data = orjson.loads(body)
        if isinstance(data, dict) and data.get("kind") == "Status":
            details = data.get("details")
            error = errors.StatusError(
                int(data.get("code") or status),
                str(data.get("reason") or ""),
                str(data.get("message") or ""),
                details=details if isinstance(details, dict) else None,
            )
    if error is None:
        error = errors.StatusError(status, "", body.decode(errors="replace")[:500])
    # The header is what client-go honours; keep it where errors.retry_after looks.
    if retry_after and retry_after.isdigit() and errors.retry_after(error) is None:
        error.details = {**(error.details or {}), "retryAfterSeconds": int(retry_after)}
    return error


def decode_answer(status: int, media_type: str, raw: bytes, headers: Mapping[str, str]) -> Any:
    """A whole answer as :meth:`.rest.Client.request` returns it, over either transport: the
    decoded JSON, the text, None for no body — or the StatusError of an error answer."""
    if status >= 400:
        raise status_error(status, raw, headers.get("Retry-After"))
    if not raw:
        return None
    if media_type == "application/json":
        return orjson.loads(raw)
    return raw.decode(errors="replace")


async def events(chunks: AsyncIterator[bytes]) -> AsyncIterator[Obj]:
    """A watch's events from its body: one JSON object a line, in chunks cut anywhere."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            line, buffer = buffer[:newline], buffer[newline + 1 :]
            if line.strip():
                yield orjson.loads(line)


def media_type(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type", "").partition(";")[0].strip().lower()


LOCAL_FAILURES = (inprocess.Refused, inprocess.Cut, TimeoutError)


def local_error(exc: BaseException, method: str, path: str) -> TransportError:
    """What an in-process transport raised, as a TransportError: the server taking no
    more requests is a refused connection (never sent), an answer it cut off a dropped
    connection, a deadline a timeout."""
    kind: type[TransportError]
    if isinstance(exc, inprocess.Refused):
        kind = ConnectError
    elif isinstance(exc, inprocess.Cut):
        kind = Disconnected
    else:
        kind = Timeout
    error = kind(str(exc) or type(exc).__name__, method=method, url=f"in-process:{path}")
    error.__cause__ = exc
    return error


async def send_local(
    local: inprocess.Transport,
    method: str,
    path: str,
    params: Mapping[str, str] | None,
    data: bytes | None,
    headers: dict[str, str],
    timeout: float | None,
) -> Any:
    """One request to the server in this process (:meth:`.rest.Client.request` sends it):
    the same answers and errors as over aiohttp. ``headers`` are all the request carries."""
    try:
        async with (
            asyncio.timeout(timeout),
            local.open(
                method,
                path,
                query=params,
                headers=headers,
                body=data,
            ) as answer,
        ):
            raw = await answer.read()
            return decode_answer(answer.status, media_type(answer.headers), raw, answer.headers)
    except LOCAL_FAILURES as exc:
        raise local_error(exc, method, path) from None


async def watch_local(
    local: inprocess.Transport,
    path: str,
    params: Mapping[str, str],
    headers: dict[str, str],
    timeout: float,
) -> AsyncIterator[Obj]:
    """:meth:`.rest.Client.watch` on the server in this process; leaving it ends the server's
    side. ``headers`` are all the request carries."""
    try:
        async with (
            asyncio.timeout(timeout),
            local.open("GET", path, query=params, headers=headers, body=None) as answer,
        ):
            if answer.status >= 400:
                raise status_error(
                    answer.status, await answer.read(), answer.headers.get("Retry-After")
                )
            async for event in events(answer.chunks()):
                yield event
    except LOCAL_FAILURES as exc:
        raise local_error(exc, "GET", path) from None
