"""The DNS wire protocol: UDP and TCP listeners, the answer cache, truncation, EDNS.

A query goes through :meth:`DNSServer.respond`: malformed messages and
anything but a standard query are answered (FORMERR, NOTIMP) or dropped as
the Go DNS servers CoreDNS is built on do; the cluster's names are answered
from :class:`~pilothouse.dns.resolver.ClusterResolver`; everything else, and
the upstream lookups an ExternalName needs, goes to the
:class:`~pilothouse.dns.forward.Forwarder` in a background task.

Answers for the cluster's names depend only on the query (less its ID) and on
what the informers have delivered, so they are cached as wire bytes keyed by
the rest of the query and dropped whenever
:attr:`~pilothouse.dns.records.ClusterRecords.generation` moves: a repeated
query costs one dict lookup and a two-byte splice, no parsing. Forwarded
answers are not cached here (the host's resolver caches them).

UDP answers larger than the client can take (512 bytes, or its EDNS buffer
size) keep as many records as fit and carry the TC flag, so the client asks
again over TCP; TCP connections may carry many queries, one after another,
and are closed after :data:`TCP_IDLE_TIMEOUT` seconds of silence.

Concurrency: listeners run on the agent's event loop; a UDP datagram is
answered synchronously inside ``datagram_received`` when the answer is local,
so answers cost no task. Upstream work runs in tasks spawned on the agent's
supervisor, at most :data:`MAX_CONCURRENT` at once (REFUSED beyond, as
CoreDNS's ``forward`` ``max_concurrent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from dnslib import EDNS0, QTYPE, RCODE, RR, DNSError, DNSRecord

from pilothouse.dns import forward
from pilothouse.dns import metrics as dns_metrics
from pilothouse.dns import records as recs
from pilothouse.dns import resolver as res

log = logging.getLogger(__name__)

UDP_MIN_SIZE = 512
EDNS_MAX_SIZE = 4096
TCP_MAX_SIZE = 65535
TCP_IDLE_TIMEOUT = 10.0
MAX_CONCURRENT = 1000
CACHE_ENTRIES = 10_000
RCODE_BADVERS = 16

Spawn = Callable[[Coroutine[Any, Any, Any], str], object]


@dataclass(frozen=True, slots=True)
class _Cached:
    tail: bytes  # the reply without its first two bytes (the ID)
    zone: str
    qtype: str
    rcode: str


@dataclass(frozen=True, slots=True)
class _Later:
    """Work that needs the upstream resolvers."""

    query: DNSRecord
    result: res.Forward | res.NeedLookups
    size: int  # the reply size limit
    edns: RR | None


def header_reply(data: bytes, rcode: int) -> bytes:
    """An answer with no sections (FORMERR, NOTIMP, SERVFAIL for unreadable queries)."""
    flags = 0x8000 | ((data[2] & 0x78) << 8) | ((data[2] & 0x01) << 8) | (rcode & 0x0F)
    return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


def _qtype_name(qtype: int) -> str:
    return str(QTYPE.get(qtype))


class DNSServer:
    """UDP and TCP DNS on one address; see the module docstring."""

    def __init__(
        self,
        *,
        records: recs.ClusterRecords,
        resolver: res.ClusterResolver,
        forwarder: forward.Forwarder,
        spawn: Spawn,
        stats: dns_metrics.DNSStats | None = None,
    ) -> None:
        self.records = records
        self.resolver = resolver
        self.forwarder = forwarder
        self.spawn = spawn
        self.stats = stats or dns_metrics.DNSStats(server="dns://:53")
        self._cache: dict[tuple[bool, bytes], _Cached] = {}
        self._generation = -1
        self._inflight = 0
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []
        self.port = 0

    # --- listeners -------------------------------------------------------------------
    async def listen(self, host: str, port: int) -> None:
        """Bind UDP and TCP on ``host:port`` (port 0: any port free for both)."""
        loop = asyncio.get_running_loop()
        for attempt in range(20 if port == 0 else 1):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UDPProtocol(self), local_addr=(host, port)
            )
            bound = udp.get_extra_info("sockname")[1]
            try:
                tcp = await asyncio.start_server(
                    self._serve_tcp, host, bound, reuse_address=True, backlog=256
                )
            except OSError:
                udp.close()  # the TCP side of a free UDP port was taken: try another
                if port != 0 or attempt == 19:
                    raise
                continue
            self._udp.append(udp)
            self._tcp.append(tcp)
            self.port = self.port or bound
            return

    async def close(self) -> None:
        for udp in self._udp:
            udp.close()
        for tcp in self._tcp:
            tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(tcp.wait_closed(), 2.0)
        self._udp.clear()
        self._tcp.clear()
        self.port = 0

    # --- one query -------------------------------------------------------------------
    def udp_query(self, data: bytes, addr: Any, transport: asyncio.DatagramTransport) -> None:
        started = time.perf_counter()
        out = self.respond(data, tcp=False, started=started)
        if isinstance(out, bytes):
            transport.sendto(out, addr)
        elif out is not None:

            def send(reply: bytes) -> None:
                if not transport.is_closing():
                    transport.sendto(reply, addr)

            self._later(data, out, send, "udp", started)

    def respond(self, data: bytes, *, tcp: bool, started: float) -> bytes | _Later | None:
        """The reply to ``data`` now, or the upstream work it needs, or None (drop it)."""
        if self._generation != self.records.generation:
            self._cache.clear()
            self._generation = self.records.generation
        hit = self._cache.get((tcp, data[2:]))
        if hit is not None:
            self.stats.cache_hits += 1
            self._count(hit.zone, tcp, hit.qtype, hit.rcode, "kubernetes", started)
            return data[:2] + hit.tail
        if len(data) < 12:
            self.stats.dropped += 1
            return None
        qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", data, 4)
        if data[2] & 0x80:
            self.stats.dropped += 1  # a response: never answer one
            return None
        if (data[2] >> 3) & 0x0F != 0:
            return header_reply(data, RCODE.NOTIMP)
        if qdcount != 1 or ancount > 1 or nscount > 1 or arcount > 2:
            return header_reply(data, RCODE.FORMERR)
        try:
            query = DNSRecord.parse(data)
        except DNSError:
            return header_reply(data, RCODE.FORMERR)
        edns = next((rr for rr in query.ar if rr.rtype == QTYPE.OPT), None)
        size = TCP_MAX_SIZE if tcp else UDP_MIN_SIZE
        if edns is not None:
            if edns.edns_ver != 0:
                return self._badvers(query)
            if not tcp:
                size = min(max(UDP_MIN_SIZE, edns.edns_len), EDNS_MAX_SIZE)
        qtype = _qtype_name(query.questions[0].qtype)
        result = self.resolver.resolve(query)
        if not isinstance(result, res.Answer):
            return _Later(query, result, size, edns)
        self.stats.cache_misses += 1
        reply = self._encode(result.reply_to(query), size, edns)
        zone = self.resolver.zone_of(str(query.questions[0].qname).lower()) or "."
        rcode = dns_metrics.rcode_name(result.rcode)
        if self.records.has_synced():  # an answer from half a listing is not kept
            if len(self._cache) >= CACHE_ENTRIES:
                self._cache.clear()
            self._cache[(tcp, data[2:])] = _Cached(reply[2:], zone, qtype, rcode)
        self._count(zone, tcp, qtype, rcode, "kubernetes", started)
        return reply

    def _count(
        self, zone: str, tcp: bool, qtype: str, rcode: str, plugin: str, started: float
    ) -> None:
        self.stats.count(
            zone=zone,
            proto="tcp" if tcp else "udp",
            qtype=qtype,
            rcode=rcode,
            plugin=plugin,
            seconds=time.perf_counter() - started,
        )

    def _badvers(self, query: DNSRecord) -> bytes:
        reply = DNSRecord(questions=list(query.questions))
        reply.header.id = query.header.id
        reply.header.qr = 1
        reply.header.rd = query.header.rd
        opt = EDNS0(udp_len=EDNS_MAX_SIZE, ext_rcode=RCODE_BADVERS >> 4)
        reply.ar = [opt]
        reply.set_header_qa()
        return bytes(reply.pack())

    def _encode(self, reply: DNSRecord, size: int, edns: RR | None) -> bytes:
        """Pack ``reply``, with an OPT record when the query had one, cut to ``size``."""
        if edns is not None:
            reply.ar.append(EDNS0(udp_len=size if size < TCP_MAX_SIZE else EDNS_MAX_SIZE,
                                  flags="do" if edns.edns_do else ""))  # fmt: skip
        packed = bytes(reply.pack())
        if len(packed) <= size:
            return packed
        return _truncate(reply, size)

    # --- upstream work ---------------------------------------------------------------
    def _later(
        self, data: bytes, work: _Later, send: Callable[[bytes], None], proto: str, started: float
    ) -> None:
        if self._inflight >= MAX_CONCURRENT:
            send(header_reply(data, RCODE.REFUSED))
            return
        self._inflight += 1
        self.spawn(self._upstream(data, work, send, proto, started), "dns-upstream")

    async def _upstream(
        self, data: bytes, work: _Later, send: Callable[[bytes], None], proto: str, started: float
    ) -> None:
        tcp = proto == "tcp"
        qtype = _qtype_name(work.query.questions[0].qtype)
        forwarded = isinstance(work.result, res.Forward)
        try:
            if forwarded:
                reply = await self.forwarder.forward(data, tcp=tcp)
            else:
                reply = await self._chase(work)
        except forward.ForwardError as exc:
            log.debug("cluster DNS: %s: %s", work.query.questions[0].qname, exc)
            reply = self._error(work, RCODE.SERVFAIL)
        except Exception:  # a bug must cost one answer, not leave a client waiting
            log.exception("cluster DNS: answering %s failed", work.query.questions[0].qname)
            reply = self._error(work, RCODE.SERVFAIL)
        finally:
            self._inflight -= 1
        zone, plugin = (".", "forward") if forwarded else (self.resolver.domain, "kubernetes")
        self._count(zone, tcp, qtype, dns_metrics.rcode_name(reply[3] & 0x0F), plugin, started)
        send(reply)

    async def _chase(self, work: _Later) -> bytes:
        """Resolve with the upstream lookups an ExternalName's CNAME needs."""
        lookups: dict[tuple[str, int], DNSRecord | None] = {}
        result: res.Result = work.result
        for _ in range(4):
            if not isinstance(result, res.NeedLookups):
                break
            keys = [k for k in result.keys if k not in lookups]
            found = await asyncio.gather(*(self.forwarder.lookup(n, t) for n, t in keys))
            lookups.update(zip(keys, found, strict=True))
            result = self.resolver.resolve(work.query, lookups)
        if not isinstance(result, res.Answer):
            return self._error(work, RCODE.SERVFAIL)
        return self._encode(result.reply_to(work.query), work.size, work.edns)

    def _error(self, work: _Later, rcode: int) -> bytes:
        reply = res.Answer(rcode, authoritative=False).reply_to(work.query)
        return self._encode(reply, work.size, work.edns)

    # --- TCP -------------------------------------------------------------------------
    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                        (length,) = struct.unpack("!H", await reader.readexactly(2))
                        data = await reader.readexactly(length)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                started = time.perf_counter()
                out = self.respond(data, tcp=True, started=started)
                if out is None:
                    continue
                if isinstance(out, _Later):
                    done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
                    self._later(data, out, done.set_result, "tcp", started)
                    try:  # the upstream work always answers; a cancelled one must not hang us
                        out = await asyncio.wait_for(done, forward.DEADLINE * 3)
                    except TimeoutError:
                        return
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector transport is not a DatagramTransport subclass, though it is one.)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        try:
            self.server.udp_query(data, addr, self.transport)
        except Exception:  # one bad query must not stop the listener
            log.exception("cluster DNS: answering a query failed")
            if len(data) >= 12:
                self.transport.sendto(header_reply(data, RCODE.SERVFAIL), addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("cluster DNS: %s", exc)


def _truncate(reply: DNSRecord, size: int) -> bytes:
    """The most records (answer, then authority, then additional) that fit in ``size``,
    with TC set; the OPT record is always kept."""
    opt = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
    rest = [rr for rr in reply.ar if rr.rtype != QTYPE.OPT]
    sections = [("rr", rr) for rr in reply.rr] + [("auth", rr) for rr in reply.auth]
    sections += [("ar", rr) for rr in rest]

    def pack(n: int) -> bytes:
        cut = DNSRecord(header=reply.header, questions=list(reply.questions))
        for where, rr in sections[:n]:
            getattr(cut, where).append(rr)
        cut.ar.extend(opt)
        cut.header.tc = 1
        cut.set_header_qa()
        return bytes(cut.pack())

    lo, hi = 0, len(sections)
    while lo < hi:  # the largest n whose packing fits
        mid = (lo + hi + 1) // 2
        if len(pack(mid)) <= size:
            lo = mid
        else:
            hi = mid - 1
    return pack(lo)
