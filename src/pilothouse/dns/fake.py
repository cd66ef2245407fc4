"""A small authoritative DNS server with fixed records: the upstream in tests, the baseline in
benchmarks.

:class:`FixedDNSServer` answers over UDP and TCP from a table of records
(``{"ext.example.": {"A": ["192.0.2.7"]}}``): the records of the asked type,
NXDOMAIN for a name it does not know, NODATA for a known name without that
type. It parses and packs every message with dnslib, with nothing else on the
path — which is what "a bare dnslib server" measures in ``bench/dnsperf.py``.
``silent`` makes it swallow queries (an upstream that times out); ``queries``
lists what it was asked.

Runs on the event loop of whoever starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any, cast

from dnslib import QTYPE, RCODE, RR, DNSRecord

Records = dict[str, dict[str, list[str]]]


class FixedDNSServer:
    def __init__(
        self, records: Records | None = None, *, ttl: int = 30, log_queries: bool = True
    ) -> None:
        self.ttl = ttl
        self.log_queries = log_queries
        # Built once: answering is parse, look up, pack — nothing else.
        self._rrs: dict[str, dict[str, list[RR]]] = {}
        for name, by_type in (records or {}).items():
            owner = name.lower().rstrip(".") + "."
            self._rrs[owner] = {
                qtype: [rr for v in values for rr in RR.fromZone(f"{owner} {ttl} IN {qtype} {v}")]
                for qtype, values in by_type.items()
            }
        self.silent = False
        self.queries: list[tuple[str, str, str]] = []  # (name, type, proto)
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def answer(self, data: bytes, proto: str = "udp") -> bytes | None:
        query = DNSRecord.parse(data)
        q = query.questions[0]
        name, qtype = str(q.qname), str(QTYPE.get(q.qtype))
        if self.log_queries:
            self.queries.append((name, qtype, proto))
        if self.silent:
            return None
        reply = query.reply()
        known = self._rrs.get(name.lower())
        if known is None:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            reply.add_answer(*known.get(qtype, ()))
        return bytes(reply.pack())

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FixedDNSServer:
        loop = asyncio.get_running_loop()
        server = self

        class UDP(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: Any) -> None:
                out = server.answer(data)
                if out is not None:
                    self.transport.sendto(out, addr)

        for attempt in range(20 if port == 0 else 1):
            self._udp, _ = await loop.create_datagram_endpoint(UDP, local_addr=(host, port))
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, host, self.port)
            except OSError:
                self._udp.close()  # TCP on that port is taken: another one
                if port != 0 or attempt == 19:
                    raise
                continue
            break
        return self

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                out = self.answer(await reader.readexactly(length), "tcp")
                if out is not None:
                    writer.write(struct.pack("!H", len(out)) + out)
                    await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)
