"""Byte pipes for SPDY: a taken-over HTTP connection, or a WebSocket.

aiohttp knows only WebSocket upgrades. For ``Upgrade: SPDY/3.1`` we answer
``101 Switching Protocols`` ourselves and then install a parser that hands
every later byte of the connection to a stream reader; writes go through the
response's writer (raw, since a 101 has no body framing). The client sends
nothing before it has read the 101, so no SPDY byte can reach aiohttp's HTTP
parser first.

kubectl's port-forward instead tunnels SPDY through a WebSocket: each binary
message is a slice of the byte stream, boundaries carry no meaning.
"""

from __future__ import annotations

import abc as abstract
import asyncio
import contextlib
from typing import Any, cast

from aiohttp import WSMsgType, abc, web

from pilothouse.api import errors
from pilothouse.api import remotecommand as rc

PROTOCOL_HEADER = "X-Stream-Protocol-Version"
ACCEPTED_HEADER = "X-Accepted-Stream-Protocol-Versions"


class Pipe(abstract.ABC):
    """A duplex byte stream: what arrives on ``reader``, what leaves via :meth:`write`."""

    reader: asyncio.StreamReader

    @abstract.abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstract.abstractmethod
    async def close(self) -> None: ...


def is_spdy(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower().startswith("spdy/")


def stream_protocol(request: web.Request, supported: tuple[str, ...]) -> str:
    """``httpstream.Handshake``: the first of the client's protocols we speak ("" if it named none)."""
    offered = [
        p.strip()
        for value in request.headers.getall(PROTOCOL_HEADER, [])
        for p in value.split(",")
        if p.strip()
    ]
    if not offered:
        return ""
    for protocol in offered:
        if protocol in supported:
            return protocol
    raise errors.StatusError(
        403,
        errors.FORBIDDEN,
        f"unable to upgrade: unable to negotiate protocol: client supports [{' '.join(offered)}], "
        f"server accepts [{' '.join(supported)}]",
    )


class _Feed:
    """Stands in for aiohttp's payload parser: every byte goes to ``reader``."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class UpgradedConnection(Pipe):
    """The raw connection under a request answered with ``101`` (``Upgrade: SPDY/3.1``)."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        writer: abc.AbstractStreamWriter,
    ) -> None:
        self.request = request
        self.response = response  # what the handler returns, already sent
        self.writer = writer
        self.reader = asyncio.StreamReader()

    @classmethod
    async def upgrade(cls, request: web.Request, protocol: str) -> UpgradedConnection:
        headers = {"Connection": "Upgrade", "Upgrade": rc.SPDY_31}
        if protocol:
            headers[PROTOCOL_HEADER] = protocol
        response = web.StreamResponse(status=101, headers=headers)
        response.force_close()
        writer = await response.prepare(request)
        assert writer is not None
        conn = cls(request, response, writer)
        handler: Any = request.protocol
        handler.set_parser(cast(Any, _Feed(conn.reader)))
        handler.keep_alive(False)
        return conn

    async def write(self, data: bytes) -> None:
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client connection is closed")
        await self.writer.write(data)

    async def close(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.close()


class WebSocketPipe(Pipe):
    """A WebSocket carrying a byte stream in its binary messages."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.reader = asyncio.StreamReader()
        self._pump: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._pump = asyncio.get_running_loop().create_task(self._receive())

    async def _receive(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    self.reader.feed_data(msg.data)
        finally:
            self.reader.feed_eof()

    async def write(self, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("the WebSocket is closed")
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        await self.ws.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
