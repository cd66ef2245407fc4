"""Forwarding to the host's resolvers: failover, TCP, resolv.conf changes, loops avoided."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from pilothouse.dns import fake, forward


async def test_answers_come_back_with_the_clients_id(tmp_path: Path) -> None:
    up = await fake.FixedDNSServer({"a.example": {"A": ["192.0.2.1"]}}).start()
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\n")
    fwd = forward.Forwarder(resolv_conf=conf, port=up.port)
    try:
        q = DNSRecord.question("a.example")
        q.header.id = 777
        for tcp in (False, True):
            reply = DNSRecord.parse(await fwd.forward(q.pack(), tcp=tcp))
            assert reply.header.id == 777
            assert [str(r.rdata) for r in reply.rr] == ["192.0.2.1"]
        assert [p for _, _, p in up.queries] == ["udp", "tcp"]
        looked = await fwd.lookup("a.example.", QTYPE.A)
        assert looked is not None and str(looked.rr[0].rdata) == "192.0.2.1"
        assert fwd.stats["127.0.0.1"].responses == {RCODE.NOERROR: 3}
    finally:
        fwd.close()
        await up.stop()


async def test_a_silent_upstream_fails_over_to_the_next(tmp_path: Path) -> None:
    dead = await fake.FixedDNSServer().start("127.0.0.2")
    dead.silent = True
    live = await fake.FixedDNSServer({"a.example": {"A": ["192.0.2.1"]}}).start(
        "127.0.0.3", dead.port
    )
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.2\nnameserver 127.0.0.3\n")
    fwd = forward.Forwarder(resolv_conf=conf, port=dead.port, attempt_timeout=0.3, deadline=2)
    try:
        for _ in range(4):  # whichever it starts with, an answer comes
            reply = DNSRecord.parse(await fwd.forward(DNSRecord.question("a.example").pack()))
            assert [str(r.rdata) for r in reply.rr] == ["192.0.2.1"]
        assert fwd.stats["127.0.0.3"].responses[RCODE.NOERROR] == 4
    finally:
        fwd.close()
        await dead.stop()
        await live.stop()


async def test_no_upstream_is_an_error_within_the_deadline(tmp_path: Path) -> None:
    dead = await fake.FixedDNSServer().start()
    dead.silent = True
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\n")
    fwd = forward.Forwarder(resolv_conf=conf, port=dead.port, attempt_timeout=0.2, deadline=0.5)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(forward.ForwardError):
            await fwd.forward(DNSRecord.question("a.example").pack())
        assert asyncio.get_running_loop().time() - started < 1.5
        assert await fwd.lookup("a.example.", QTYPE.A) is None
    finally:
        fwd.close()
        await dead.stop()


def test_own_address_is_never_an_upstream_and_changes_are_read(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 10.43.0.10\nnameserver 127.0.0.53\nsearch corp.example\n")
    fwd = forward.Forwarder(resolv_conf=conf, exclude=("10.43.0.10",))
    assert fwd.upstreams() == ("127.0.0.53",)  # loopback resolvers are fine: we run on the host
    conf.write_text("nameserver 192.0.2.53\n")
    os.utime(conf, ns=(1, 10**18))  # a new mtime, as a rewrite would leave
    fwd._checked = 0.0  # the re-read check is rate limited; skip the wait
    assert fwd.upstreams() == ("192.0.2.53",)
    conf.write_text("nameserver 10.43.0.10\n")
    os.utime(conf, ns=(1, 2 * 10**18))
    fwd._checked = 0.0
    assert fwd.upstreams() == ()


def test_question_end() -> None:
    q = DNSRecord.question("a.example").pack()
    assert forward.question_end(q) == len(q)
    with pytest.raises(ValueError):
        forward.question_end(q[:-3])
