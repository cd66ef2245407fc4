"""Forwarding what is not the cluster's to the host's resolvers (CoreDNS's ``forward``).

The upstreams are the ``nameserver`` lines of the host's resolv.conf, re-read
when the file changes (DHCP and VPN clients rewrite it), minus the cluster DNS
address itself (a host pointed at the cluster DNS would otherwise loop). The
forwarder runs in the host's network namespace, so loopback resolvers such as
systemd-resolved's 127.0.0.53 work as they do for any program on the host.

A query goes upstream byte for byte (EDNS options and all) under a fresh
random ID, over the transport it came in on: UDP queries on one socket per
upstream with a table of queries in flight, TCP queries on a connection of
their own. Upstreams are tried from a random one onwards, each for at most
:data:`ATTEMPT_TIMEOUT` seconds, within :data:`DEADLINE` in all (CoreDNS's
``forward`` gives up after 5 s too); a truncated UDP answer is passed back as it
is, and the client retries over TCP.

Concurrency: everything runs on the agent's event loop. A UDP socket's
protocol object matches answers to waiting queries by ID and question; a late
or forged answer finds no waiter and is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from dnslib import QTYPE, DNSError, DNSRecord

from pilothouse.dns import resolvconf

log = logging.getLogger(__name__)

PORT = 53
ATTEMPT_TIMEOUT = 2.0
DEADLINE = 5.0
RELOAD_CHECK_S = 2.0


class ForwardError(Exception):
    """No upstream answered."""


def question_end(data: bytes) -> int:
    """Offset just past the (single) question of a DNS message; ValueError if malformed."""
    i = 12
    while True:
        if i >= len(data):
            raise ValueError("name runs past the message")
        n = data[i]
        if n == 0:
            end = i + 5
            if end > len(data):
                raise ValueError("question runs past the message")
            return end
        if n & 0xC0:
            raise ValueError("compressed question name")
        i += 1 + n


@dataclass
class UpstreamStats:
    requests: int = 0
    failures: int = 0
    responses: dict[int, int] = field(default_factory=dict)  # rcode → count


class _UDPUpstream(asyncio.DatagramProtocol):
    """One connected UDP socket to one upstream, shared by every query to it."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, tuple[bytes, asyncio.Future[bytes]]] = {}
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (3.11's selector transport is not a DatagramTransport subclass, though it is one.)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 12:
            return
        (qid,) = struct.unpack_from("!H", data)
        entry = self.waiting.get(qid)
        if entry is None:
            return
        question, fut = entry
        try:
            same = data[12 : question_end(data)].lower() == question
        except ValueError:
            same = False
        if same and not fut.done():
            fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: fail every query waiting on this socket.
        for _, fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        for _, fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(exc or ConnectionError("upstream socket closed"))

    async def ask(self, query: bytes, timeout: float) -> bytes:
        assert self.transport is not None
        qid = random.getrandbits(16)
        while qid in self.waiting:
            qid = random.getrandbits(16)
        question = query[12 : question_end(query)].lower()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting[qid] = (question, fut)
        try:
            self.transport.sendto(struct.pack("!H", qid) + query[2:])
            return await asyncio.wait_for(fut, timeout)
        finally:
            del self.waiting[qid]


class Forwarder:
    """Sends queries to the host's resolvers; see the module docstring."""

    def __init__(
        self,
        *,
        resolv_conf: Path = resolvconf.HOST_RESOLV_CONF,
        exclude: tuple[str, ...] = (),
        port: int = PORT,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
        deadline: float = DEADLINE,
    ) -> None:
        self.resolv_conf = resolv_conf
        self.exclude = set(exclude)
        self.port = port
        self.attempt_timeout = attempt_timeout
        self.deadline = deadline
        self._upstreams: tuple[str, ...] = ()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._udp: dict[str, _UDPUpstream] = {}
        self.stats: dict[str, UpstreamStats] = {}

    # --- upstreams -------------------------------------------------------------------
    def upstreams(self) -> tuple[str, ...]:
        """The current upstream addresses, re-reading resolv.conf when it changed."""
        now = time.monotonic()
        if self._stamp is not None and now - self._checked < RELOAD_CHECK_S:
            return self._upstreams
        self._checked = now
        try:
            st = os.stat(self.resolv_conf)
            stamp = (st.st_mtime_ns, st.st_ino)
        except OSError:
            stamp = (0, 0)
        if stamp == self._stamp:
            return self._upstreams
        self._stamp = stamp
        try:
            conf = resolvconf.read(self.resolv_conf)
        except OSError as exc:
            log.warning(
                "cluster DNS: cannot read %s (%s); nothing to forward to", self.resolv_conf, exc
            )
            conf = resolvconf.ResolvConf()
        servers = tuple(s for s in conf.nameservers if s not in self.exclude)
        if servers != self._upstreams:
            if not servers:
                log.warning(
                    "cluster DNS: %s lists no nameserver to forward to (besides the cluster DNS "
                    "itself); names outside the cluster will answer SERVFAIL",
                    self.resolv_conf,
                )
            else:
                log.info("cluster DNS: forwarding to %s", ", ".join(servers))
            self._upstreams = servers
        return self._upstreams

    def _order(self) -> list[str]:
        servers = list(self.upstreams())
        if not servers:
            return []
        start = random.randrange(len(servers))
        return servers[start:] + servers[:start]

    # --- forwarding -----------------------------------------------------------------
    async def forward(self, query: bytes, *, tcp: bool = False) -> bytes:
        """The upstream's answer to ``query`` (raw bytes, the client's ID restored)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        last: BaseException | None = None
        for server in self._order():
            left = deadline - loop.time()
            if left <= 0:
                break
            stats = self.stats.setdefault(server, UpstreamStats())
            stats.requests += 1
            try:
                timeout = min(self.attempt_timeout if not tcp else left, left)
                if tcp:
                    answer = await self._ask_tcp(server, query, timeout)
                else:
                    answer = await (await self._udp_to(server)).ask(query, timeout)
            except (OSError, TimeoutError, ValueError, EOFError) as exc:
                stats.failures += 1
                last = exc
                continue
            rcode = answer[3] & 0x0F if len(answer) > 3 else 2
            stats.responses[rcode] = stats.responses.get(rcode, 0) + 1
            return query[:2] + answer[2:]
        raise ForwardError(f"no upstream answered: {last!r}" if last else "no upstream resolver")

    async def lookup(self, name: str, qtype: int) -> DNSRecord | None:
        """Resolve ``name`` upstream (for following CNAMEs out of the cluster); None if no
        upstream answered or the answer cannot be read."""
        q = DNSRecord.question(name, QTYPE.get(qtype))
        q.header.rd = 1
        data = q.pack()
        try:
            answer = await self.forward(data)
            if answer[2] & 0x02:  # truncated: ask again over TCP
                answer = await self.forward(data, tcp=True)
            return DNSRecord.parse(answer)
        except (ForwardError, DNSError):
            return None

    async def _udp_to(self, server: str) -> _UDPUpstream:
        proto = self._udp.get(server)
        if proto is not None and not proto.closed.is_set():
            return proto
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            _UDPUpstream, remote_addr=(server, self.port)
        )
        self._udp[server] = proto
        return proto

    async def _ask_tcp(self, server: str, query: bytes, timeout: float) -> bytes:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(server, self.port)
            try:
                qid = random.getrandbits(16)
                writer.write(struct.pack("!HH", len(query), qid) + query[2:])
                await writer.drain()
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                answer = await reader.readexactly(size)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        if len(answer) < 12 or struct.unpack_from("!H", answer)[0] != qid:
            raise ValueError("answer does not match the query")
        return answer

    def close(self) -> None:
        for proto in self._udp.values():
            if proto.transport is not None:
                proto.transport.close()
        self._udp.clear()
