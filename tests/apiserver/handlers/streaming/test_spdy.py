"""The SPDY/3.1 server session against a client made of the same framer."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest

from pilothouse.apiserver.handlers.streaming import spdy


class Peer:
    """The client end: writes frames into the session, reads what the session sends back."""

    def __init__(self) -> None:
        self.to_server = asyncio.StreamReader()
        self.from_server = asyncio.StreamReader()
        self.framer = spdy.Framer()  # its own compression contexts, as a real client has
        self.session = spdy.Session(self.to_server, self._server_writes)
        self.next_id = 1

    async def _server_writes(self, data: bytes) -> None:
        self.from_server.feed_data(data)

    def send(self, frame: bytes) -> None:
        self.to_server.feed_data(frame)

    def open(self, headers: dict[str, str], *, fin: bool = False) -> int:
        stream_id, self.next_id = self.next_id, self.next_id + 2
        self.send(self.framer.syn_stream(stream_id, {k: [v] for k, v in headers.items()}, fin=fin))
        return stream_id

    async def frame(self) -> spdy.Control | spdy.Data:
        return await asyncio.wait_for(spdy.read_frame(self.from_server), 5)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    task = asyncio.get_running_loop().create_task(p.session.run())
    yield p
    p.to_server.feed_eof()
    await asyncio.wait_for(task, 5)


def test_the_dictionary_is_spdy3s() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_header_blocks_round_trip() -> None:
    headers = {"streamtype": ["error"], "port": ["8080"], "multi": ["a", "b"]}
    assert spdy.decode_headers(spdy.encode_headers(headers)) == headers
    client, server = spdy.Framer(), spdy.Framer()
    for _ in range(3):  # one compression context per direction, across frames
        frame = client.syn_stream(1, headers)
        assert server.headers_of(frame[18:]) == headers
    with pytest.raises(spdy.ProtocolError):
        spdy.Framer().headers_of(b"not zlib at all")


async def test_streams_are_accepted_replied_and_carry_data(peer: Peer) -> None:
    sid = peer.open({"streamType": "data", "port": "80", "requestID": "0"})
    stream = await asyncio.wait_for(peer.session.accept(), 5)
    assert stream is not None and stream.id == sid
    assert stream.header("streamtype") == "data" and stream.header("requestID") == "0"
    reply = await peer.frame()
    assert isinstance(reply, spdy.Control) and reply.type == spdy.SYN_REPLY
    assert struct.unpack(">I", reply.payload[:4])[0] == sid
    assert peer.framer.headers_of(reply.payload[4:]) == {}

    peer.send(spdy.data_frame(sid, b"hello "))
    peer.send(spdy.data_frame(sid, b"world", fin=True))
    assert await stream.read() == b"hello "
    assert await stream.read() == b"world"
    assert await stream.read() == b"" and stream.remote_closed

    await stream.write(b"x" * (spdy.MAX_CHUNK + 10))
    first, second = await peer.frame(), await peer.frame()
    assert isinstance(first, spdy.Data) and len(first.data) == spdy.MAX_CHUNK
    assert isinstance(second, spdy.Data) and len(second.data) == 10
    await stream.close()
    fin = await peer.frame()
    assert isinstance(fin, spdy.Data) and fin.flags & spdy.FLAG_FIN and fin.data == b""
    with pytest.raises(ConnectionResetError):
        await stream.write(b"too late")


async def test_pings_are_echoed_and_resets_end_streams(peer: Peer) -> None:
    peer.send(spdy.Framer.ping(7))
    echo = await peer.frame()
    assert isinstance(echo, spdy.Control) and echo.type == spdy.PING
    assert echo.payload == struct.pack(">I", 7)
    sid = peer.open({"streamType": "error"})
    stream = await peer.session.accept()
    assert stream is not None
    await peer.frame()  # the reply
    peer.send(spdy.Framer.rst_stream(sid, spdy.CANCEL))
    assert await stream.read() == b""
    assert stream.was_reset and stream.local_closed
    peer.send(spdy.data_frame(sid, b"late"))  # dropped, not an error
    peer.open({"streamType": "data"}, fin=True)
    finished = await peer.session.accept()
    assert finished is not None and await finished.read() == b""


async def test_protocol_errors_end_the_session() -> None:
    p = Peer()
    task = asyncio.get_running_loop().create_task(p.session.run())
    p.send(struct.pack(">HHI", 0x8000 | 2, spdy.PING, 4) + b"\x00\x00\x00\x01")  # SPDY/2
    await asyncio.wait_for(task, 5)
    goaway = await p.frame()
    assert isinstance(goaway, spdy.Control) and goaway.type == spdy.GOAWAY
    assert await p.session.accept() is None and p.session.closed


async def test_even_stream_ids_are_refused(peer: Peer) -> None:
    peer.send(peer.framer.syn_stream(2, {"streamtype": ["data"]}))
    reset = await peer.frame()
    assert isinstance(reset, spdy.Control) and reset.type == spdy.RST_STREAM
    assert struct.unpack(">II", reset.payload) == (2, spdy.PROTOCOL_ERROR)
    # The refused stream's header block was still inflated: the next one's decodes.
    peer.open({"streamType": "error"})
    stream = await peer.session.accept()
    assert stream is not None and stream.header("streamtype") == "error"
