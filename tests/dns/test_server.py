"""The DNS server over real UDP and TCP sockets on 127.0.0.1: answers, cache, truncation,
EDNS, malformed queries, and forwarding to an upstream (a fixed-record server of ours)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from pilothouse import supervisor
from pilothouse.dns import fake, forward
from pilothouse.dns import records as recs
from pilothouse.dns import resolver as res
from pilothouse.dns import server as dns_server

from .conftest import endpoint, endpoint_slice, service


class Env:
    def __init__(
        self,
        server: dns_server.DNSServer,
        upstream: fake.FixedDNSServer,
        records: recs.ClusterRecords,
        resolv: Path,
    ) -> None:
        self.server = server
        self.upstream = upstream
        self.records = records
        self.resolv = resolv

    async def udp(self, data: bytes, timeout: float = 3.0) -> bytes:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, d: bytes, addr: Any) -> None:
                if not got.done():
                    got.set_result(d)

        transport, _ = await loop.create_datagram_endpoint(
            P, remote_addr=("127.0.0.1", self.server.port)
        )
        try:
            cast(asyncio.DatagramTransport, transport).sendto(data)
            return await asyncio.wait_for(got, timeout)
        finally:
            transport.close()

    async def ask(self, name: str, qtype: str = "A", **kw: Any) -> DNSRecord:
        return DNSRecord.parse(await self.udp(DNSRecord.question(name, qtype).pack(), **kw))

    async def tcp(self, *queries: bytes) -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        try:
            for q in queries:  # pipelined on one connection
                writer.write(struct.pack("!H", len(q)) + q)
            await writer.drain()
            out = []
            for _ in queries:
                (n,) = struct.unpack("!H", await reader.readexactly(2))
                out.append(await reader.readexactly(n))
            return out
        finally:
            writer.close()


@pytest.fixture
async def env(records: recs.ClusterRecords, tmp_path: Path) -> AsyncIterator[Env]:
    upstream = await fake.FixedDNSServer(
        {
            "ext.interwebs.test": {"A": ["192.0.2.7"]},
            "example.org": {"A": ["192.0.2.80"], "TXT": ['"hello"']},
        },
    ).start()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    fwd = forward.Forwarder(
        resolv_conf=resolv, port=upstream.port, attempt_timeout=0.5, deadline=1.5
    )
    tasks = supervisor.Supervisor("test")
    srv = dns_server.DNSServer(
        records=records,
        resolver=res.ClusterResolver(records),
        forwarder=fwd,
        spawn=lambda coro, name: tasks.spawn(coro, name=name),
    )
    await srv.listen("127.0.0.1", 0)
    try:
        yield Env(srv, upstream, records, resolv)
    finally:
        await srv.close()
        await tasks.stop()
        fwd.close()
        await upstream.stop()


def rrs(reply: DNSRecord) -> list[str]:
    return sorted(f"{r.rname} {QTYPE[r.rtype]} {r.rdata.toZone()}" for r in reply.rr)


async def test_answers_over_udp_and_tcp(env: Env) -> None:
    q = DNSRecord.question("svc1.testns.svc.cluster.local", "A")
    q.header.id = 4242
    udp = DNSRecord.parse(await env.udp(q.pack()))
    (tcp_raw,) = await env.tcp(q.pack())
    tcp = DNSRecord.parse(tcp_raw)
    for reply in (udp, tcp):
        assert reply.header.id == 4242
        assert (reply.header.qr, reply.header.aa, reply.header.rd, reply.header.ra) == (1, 1, 1, 0)
        assert rrs(reply) == ["svc1.testns.svc.cluster.local. A 10.0.0.1"]


async def test_nxdomain_and_nodata_carry_the_soa(env: Env) -> None:
    nx = await env.ask("nope.testns.svc.cluster.local")
    assert (RCODE[nx.header.rcode], nx.rr, QTYPE[nx.auth[0].rtype]) == ("NXDOMAIN", [], "SOA")
    nodata = await env.ask("svc1.testns.svc.cluster.local", "AAAA")
    assert (RCODE[nodata.header.rcode], nodata.rr) == ("NOERROR", [])
    assert str(nodata.auth[0].rname) == "cluster.local."


async def test_tcp_connection_carries_many_queries(env: Env) -> None:
    queries = [
        DNSRecord.question(n, "A")
        for n in ("svc1.testns.svc.cluster.local", "hdls1.testns.svc.cluster.local", "example.org")
    ]
    for i, q in enumerate(queries):
        q.header.id = 100 + i
    replies = [DNSRecord.parse(r) for r in await env.tcp(*(q.pack() for q in queries))]
    assert [r.header.id for r in replies] == [100, 101, 102]
    assert rrs(replies[2]) == ["example.org. A 192.0.2.80"]
    assert ("example.org.", "A", "tcp") in env.upstream.queries  # forwarded over TCP


async def test_cache_follows_the_informers(env: Env) -> None:
    before = env.server.stats.cache_hits
    assert rrs(await env.ask("svc1.testns.svc.cluster.local")) == [
        "svc1.testns.svc.cluster.local. A 10.0.0.1"
    ]
    assert rrs(await env.ask("svc1.testns.svc.cluster.local")) == [
        "svc1.testns.svc.cluster.local. A 10.0.0.1"
    ]
    assert env.server.stats.cache_hits == before + 1
    # The Service is recreated with another address: the next answer says so.
    env.records.on_service_deleted(service("svc1"))
    env.records.on_service(service("svc1", ips=["10.0.0.99"], ports=[]))
    assert rrs(await env.ask("svc1.testns.svc.cluster.local")) == [
        "svc1.testns.svc.cluster.local. A 10.0.0.99"
    ]


async def test_big_answers_are_truncated_over_udp_and_whole_over_tcp(env: Env) -> None:
    env.records.on_service(service("big", ips=["None"]))
    eps = [endpoint(f"10.42.{i // 250}.{i % 250 + 1}") for i in range(300)]
    env.records.on_slice(endpoint_slice("big-a", "big", eps))
    name = "big.testns.svc.cluster.local"
    raw = await env.udp(DNSRecord.question(name).pack())
    small = DNSRecord.parse(raw)
    assert len(raw) <= 512 and small.header.tc == 1 and 0 < len(small.rr) < 300
    q = DNSRecord.question(name)
    q.add_ar(EDNS0(udp_len=4096))
    raw = await env.udp(q.pack())
    edns = DNSRecord.parse(raw)
    assert 512 < len(raw) <= 4096 and edns.header.tc == 1 and len(edns.rr) > len(small.rr)
    assert [rr.rtype for rr in edns.ar] == [QTYPE.OPT]  # the OPT record survives the cut
    (whole,) = await env.tcp(DNSRecord.question(name).pack())
    full = DNSRecord.parse(whole)
    assert full.header.tc == 0 and len(full.rr) == 300


async def test_edns_is_answered_with_edns(env: Env) -> None:
    q = DNSRecord.question("svc1.testns.svc.cluster.local")
    q.add_ar(EDNS0(udp_len=1232, flags="do"))
    reply = DNSRecord.parse(await env.udp(q.pack()))
    opt = [r for r in reply.ar if r.rtype == QTYPE.OPT]
    assert len(opt) == 1 and opt[0].edns_len == 1232 and opt[0].edns_do == 1
    q = DNSRecord.question("svc1.testns.svc.cluster.local")
    q.add_ar(EDNS0(version=1))
    bad = DNSRecord.parse(await env.udp(q.pack()))
    opt = [r for r in bad.ar if r.rtype == QTYPE.OPT]
    assert (opt[0].edns_rcode << 4) | bad.header.rcode == 16  # BADVERS


async def test_malformed_and_unsupported_queries(env: Env) -> None:
    junk = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example"  # question cut short
    reply = await env.udp(junk)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == RCODE.FORMERR
    q = DNSRecord.question("svc1.testns.svc.cluster.local")
    q.header.opcode = 2  # STATUS
    assert (await env.udp(q.pack()))[3] & 0x0F == RCODE.NOTIMP
    two = DNSRecord.question("a.example")
    two.add_question(*DNSRecord.question("b.example").questions)
    assert (await env.udp(two.pack()))[3] & 0x0F == RCODE.FORMERR
    response = DNSRecord.question("svc1.testns.svc.cluster.local").reply()
    with pytest.raises(TimeoutError):  # a response is never answered (no reflection loops)
        await env.udp(response.pack(), timeout=0.3)
    axfr = await env.ask("cluster.local", "AXFR")
    assert RCODE[axfr.header.rcode] == "REFUSED"
    # The server is still serving.
    assert rrs(await env.ask("svc1.testns.svc.cluster.local"))


async def test_names_outside_the_cluster_are_forwarded(env: Env) -> None:
    reply = await env.ask("example.org", "TXT")
    assert rrs(reply) == ['example.org. TXT "hello"']
    assert reply.header.ra == 1  # the upstream's answer as it gave it (ours never set RA)
    nx = await env.ask("nothing.example")
    assert RCODE[nx.header.rcode] == "NXDOMAIN"
    # Unknown reverse names fall through to the upstream too.
    await env.ask("9.9.9.9.in-addr.arpa", "PTR")
    assert ("9.9.9.9.in-addr.arpa.", "PTR", "udp") in env.upstream.queries


async def test_external_name_follows_upstream(env: Env) -> None:
    reply = await env.ask("external.testns.svc.cluster.local")
    assert [f"{r.rname} {QTYPE[r.rtype]} {r.rdata.toZone()}" for r in reply.rr] == [
        "external.testns.svc.cluster.local. CNAME ext.interwebs.test.",
        "ext.interwebs.test. A 192.0.2.7",
    ]
    assert reply.header.aa == 1


async def test_dead_upstream_is_servfail_not_silence(env: Env) -> None:
    env.upstream.silent = True
    reply = await env.ask("example.org", timeout=5)
    assert RCODE[reply.header.rcode] == "SERVFAIL"
    assert rrs(await env.ask("svc1.testns.svc.cluster.local"))  # the cluster still answers


async def test_metrics_count_queries(env: Env) -> None:
    await env.ask("svc1.testns.svc.cluster.local")
    await env.ask("nope.testns.svc.cluster.local")
    await env.ask("example.org")
    stats = env.server.stats
    assert stats.requests[("cluster.local.", "udp", "A")] == 2
    assert stats.responses[("cluster.local.", "NXDOMAIN", "kubernetes")] == 1
    assert stats.responses[(".", "NOERROR", "forward")] == 1
    assert sum(sum(h.counts) for h in stats.durations.values()) == 3
