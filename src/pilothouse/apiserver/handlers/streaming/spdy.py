"""SPDY/3.1, the server side, as far as Kubernetes streams use it.

kubectl's exec and attach fall back to SPDY when a WebSocket upgrade fails, and
its port-forward carries SPDY frames inside a WebSocket. The client (moby's
spdystream) opens every stream; the server replies, moves data, echoes pings.
Neither side uses flow control (spdystream never sends WINDOW_UPDATE and
ignores it), so neither do we.

Frames (draft 3): a control frame is ``1 | version(15) | type(16) | flags(8) |
length(24) | payload``, a data frame ``0 | stream-id(31) | flags(8) |
length(24) | data``. Header blocks are zlib streams with the SPDY dictionary,
one compression context per direction for the whole session, so frames must
be compressed in the order they go on the wire: :class:`Session` compresses
under its write lock.

:class:`Session` runs in its caller's task (``await session.run()``) reading
frames until the transport ends; streams it accepts come out of
:meth:`Session.accept`. Each :class:`Stream` buffers what arrives (the peer is
a person's terminal or one forwarded connection) until its reader takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN = 0x01
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL = 1, 2, 3, 5
MAX_CHUNK = 32 * 1024

Headers = dict[str, list[str]]


def _words(text: str) -> list[str]:
    return text.split()


_HEADER_NAMES = [
    *_words(
        "options head post put delete trace accept accept-charset accept-encoding "
        "accept-language accept-ranges age allow authorization cache-control connection "
        "content-base content-encoding content-language content-length content-location "
        "content-md5 content-range content-type date etag expect expires from host if-match "
        "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
        "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
        "server te trailer transfer-encoding upgrade user-agent vary via warning "
        "www-authenticate method get status"
    ),
    *("200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"),
]
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
# The zlib dictionary of SPDY/3 header blocks (draft 3, section 2.6.10.1): the
# common header names, each with its 32-bit length, then common values.
DICTIONARY = (
    b"".join(struct.pack(">I", len(n)) + n.encode() for n in _HEADER_NAMES)
    + _DICTIONARY_TAIL.encode()
)


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3."""


# --- frames ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Control:
    """A control frame, its payload still raw."""

    type: int
    flags: int
    payload: bytes


@dataclass(frozen=True)
class Data:
    stream_id: int
    flags: int
    data: bytes


async def read_frame(reader: asyncio.StreamReader) -> Control | Data:
    """The next frame (IncompleteReadError at the end of the transport)."""
    head = await reader.readexactly(8)
    first, second = struct.unpack(">II", head)
    flags, length = second >> 24, second & 0xFFFFFF
    payload = await reader.readexactly(length) if length else b""
    if first & 0x80000000:
        version = (first >> 16) & 0x7FFF
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        return Control(first & 0xFFFF, flags, payload)
    return Data(first & 0x7FFFFFFF, flags, payload)


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


def encode_headers(headers: Headers) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        key = name.lower().encode()
        value = "\x00".join(values).encode()
        out += [struct.pack(">I", len(key)), key, struct.pack(">I", len(value)), value]
    return b"".join(out)


def decode_headers(block: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos, headers = 4, Headers()
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4 : pos + 4 + n].decode().lower()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4 : pos + 4 + n].decode()
            pos += 4 + n
            headers.setdefault(name, []).extend(value.split("\x00"))
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad header block: {exc}") from None
    return headers


class Framer:
    """Builds and parses the frames of one session (it owns both compression contexts)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def _compress(self, headers: Headers) -> bytes:
        return self._deflate.compress(encode_headers(headers)) + self._deflate.flush(
            zlib.Z_SYNC_FLUSH
        )

    def headers_of(self, compressed: bytes) -> Headers:
        try:
            return decode_headers(self._inflate.decompress(compressed))
        except zlib.error as exc:
            raise ProtocolError(f"bad header compression: {exc}") from None

    def syn_stream(
        self, stream_id: int, headers: Headers, *, fin: bool = False, associated: int = 0
    ) -> bytes:
        payload = struct.pack(">IIH", stream_id, associated, 0) + self._compress(headers)
        return _control(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def syn_reply(self, stream_id: int, headers: Headers | None = None) -> bytes:
        return _control(SYN_REPLY, 0, struct.pack(">I", stream_id) + self._compress(headers or {}))

    @staticmethod
    def rst_stream(stream_id: int, status: int) -> bytes:
        return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    @staticmethod
    def ping(ping_id: int) -> bytes:
        return _control(PING, 0, struct.pack(">I", ping_id))

    @staticmethod
    def goaway(last_stream_id: int, status: int = 0) -> bytes:
        return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))


# --- the session -----------------------------------------------------------------------------
@dataclass(eq=False)
class Stream:
    """One client-opened stream: buffered input, half-close, reset."""

    session: Session
    id: int
    headers: Headers
    _chunks: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    remote_closed: bool = False  # the client sent FIN (or reset)
    local_closed: bool = False  # we sent FIN (or reset)
    was_reset: bool = False

    def header(self, name: str) -> str:
        return (self.headers.get(name.lower()) or [""])[0]

    async def read(self) -> bytes:
        """The next chunk; ``b""`` once the client finished, reset it, or the session ended."""
        chunk = await self._chunks.get()
        if chunk is None:
            self._chunks.put_nowait(None)  # stay at the end for later readers
            return b""
        return chunk

    async def write(self, data: bytes) -> None:
        if self.local_closed:
            raise ConnectionResetError(f"stream {self.id} is closed")
        for start in range(0, len(data), MAX_CHUNK):
            chunk = data[start : start + MAX_CHUNK]
            await self.session.send(functools.partial(data_frame, self.id, chunk))

    async def close(self) -> None:
        """Half-close: we send nothing more (FIN)."""
        if self.local_closed or self.session.closed:
            return
        self.local_closed = True
        with contextlib.suppress(ConnectionError):
            await self.session.send(lambda: data_frame(self.id, b"", fin=True))

    async def reset(self, status: int = CANCEL) -> None:
        if self.was_reset or self.session.closed:
            return
        self.local_closed = True
        self._remote_done(reset=True)
        with contextlib.suppress(ConnectionError):
            await self.session.send(lambda: Framer.rst_stream(self.id, status))

    def _feed(self, data: bytes) -> None:
        if not self.remote_closed and data:
            self._chunks.put_nowait(data)

    def _remote_done(self, *, reset: bool = False) -> None:
        if reset:
            self.was_reset = True
        if not self.remote_closed:
            self.remote_closed = True
            self._chunks.put_nowait(None)


class Session:
    """A server-side SPDY session over a byte transport.

    ``reader`` delivers what the client sends; ``write`` puts bytes on the wire
    (it may wait for the transport to drain).
    """

    def __init__(
        self, reader: asyncio.StreamReader, write: Callable[[bytes], Awaitable[object]]
    ) -> None:
        self.reader = reader
        self._write = write
        self.framer = Framer()
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self._lock = asyncio.Lock()
        self._accepted: asyncio.Queue[Stream | None] = asyncio.Queue()
        self._last_stream = 0

    async def send(self, make: Callable[[], bytes]) -> None:
        """Build a frame and write it, in wire order (header compression is stateful)."""
        async with self._lock:
            if self.closed:
                raise ConnectionResetError("the SPDY session is closed")
            await self._write(make())

    async def accept(self) -> Stream | None:
        """The next stream the client opened; None once the session is over."""
        stream = await self._accepted.get()
        if stream is None:
            self._accepted.put_nowait(None)
        return stream

    async def run(self) -> None:
        """Read frames until the transport ends or the peer breaks the protocol."""
        try:
            while True:
                frame = await read_frame(self.reader)
                if isinstance(frame, Data):
                    self._on_data(frame)
                else:
                    await self._on_control(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ProtocolError as exc:
            log.info("closing SPDY session: %s", exc)
            with contextlib.suppress(ConnectionError):
                await self.send(lambda: Framer.goaway(self._last_stream, 1))
        finally:
            self._end()

    async def close(self) -> None:
        """Say goodbye (GOAWAY) and stop; the caller closes the transport."""
        if self.closed:
            return
        with contextlib.suppress(ConnectionError):
            await self.send(lambda: Framer.goaway(self._last_stream))
        self._end()

    def _end(self) -> None:
        self.closed = True
        for stream in self.streams.values():
            stream._remote_done()
        self._accepted.put_nowait(None)

    def _on_data(self, frame: Data) -> None:
        stream = self.streams.get(frame.stream_id)
        if stream is None:
            return  # already reset or finished: late data is dropped
        stream._feed(frame.data)
        if frame.flags & FLAG_FIN:
            stream._remote_done()

    async def _on_control(self, frame: Control) -> None:
        p = frame.payload
        if frame.type == SYN_STREAM:
            if len(p) < 10:
                raise ProtocolError("short SYN_STREAM")
            stream_id = struct.unpack_from(">I", p, 0)[0] & 0x7FFFFFFF
            headers = self.framer.headers_of(p[10:])  # always inflate: the context moves on
            if stream_id % 2 == 0 or stream_id <= self._last_stream:
                await self.send(lambda: Framer.rst_stream(stream_id, PROTOCOL_ERROR))
                return
            self._last_stream = stream_id
            stream = Stream(self, stream_id, headers)
            self.streams[stream_id] = stream
            if frame.flags & FLAG_FIN:
                stream._remote_done()
            await self.send(lambda: self.framer.syn_reply(stream_id))
            self._accepted.put_nowait(stream)
        elif frame.type == RST_STREAM:
            if len(p) >= 4:
                stream_id = struct.unpack_from(">I", p, 0)[0] & 0x7FFFFFFF
                reset = self.streams.pop(stream_id, None)
                if reset is not None:
                    reset.local_closed = True
                    reset._remote_done(reset=True)
        elif frame.type == PING:
            if len(p) >= 4 and struct.unpack_from(">I", p, 0)[0] % 2 == 1:
                await self.send(lambda: _control(PING, 0, p[:4]))  # the client's: echo it
        elif frame.type == HEADERS:
            self.framer.headers_of(p[4:])  # nothing to do with them, but inflate in order
        elif frame.type == GOAWAY:
            log.debug("client sent GOAWAY")
        # SETTINGS, WINDOW_UPDATE and SYN_REPLY (we open no streams) need no answer.

    def forget(self, stream: Stream) -> None:
        """Drop a finished stream so late frames for it are ignored."""
        self.streams.pop(stream.id, None)
