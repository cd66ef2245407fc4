"""Cluster DNS as the agent runs it: fed by informers from a real API server, supervised,
serving DNS and metrics — and answering on while the API server restarts."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from pilothouse import supervisor, testing
from pilothouse.api import resources
from pilothouse.client import config, informer, rest
from pilothouse.dns import nodelocal
from pilothouse.testing import eventually

from .conftest import endpoint, endpoint_slice, port, service

NS = resources.DEFAULT.by_path("", "v1", "namespaces")
SVC = resources.DEFAULT.by_path("", "v1", "services")
SLICES = resources.DEFAULT.by_path("discovery.k8s.io", "v1", "endpointslices")
assert NS and SVC and SLICES


async def query(port_: int, name: str, qtype: str = "A") -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    raw = await asyncio.to_thread(q.send, "127.0.0.1", port_, timeout=3)
    return DNSRecord.parse(raw)


def addresses(reply: DNSRecord) -> list[str]:
    return sorted(str(r.rdata) for r in reply.rr if r.rtype in (QTYPE.A, QTYPE.AAAA))


class Node:
    def __init__(self, dns: nodelocal.NodeLocalDNS, factory: informer.InformerFactory) -> None:
        self.dns = dns
        self.factory = factory

    @property
    def port(self) -> int:
        return self.dns.server.port


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[testing.ServerThread, rest.Client]]:
    srv = testing.ServerThread(tmp_path / "data").start()
    client = rest.Client(config.local_socket(srv.server.socket_path))
    try:
        yield srv, client
    finally:
        await client.close()
        srv.stop()


async def start_dns(client: rest.Client, metrics_port: int) -> tuple[Node, supervisor.Supervisor]:
    sup = supervisor.Supervisor("agent")
    dns = nodelocal.NodeLocalDNS(
        nodelocal.Config(
            addresses=("127.0.0.1",), port=0, metrics_port=metrics_port, manage_addresses=False
        ),
        tasks=sup,
    )
    factory = informer.InformerFactory(client)
    dns.attach(factory)
    factory.start(sup)
    await factory.wait_synced(10)
    sup.start("cluster-dns", dns.run)
    await asyncio.wait_for(dns.serving.wait(), 10)
    return Node(dns, factory), sup


async def test_serves_the_cluster_from_informers_and_survives_an_apiserver_restart(
    cluster: tuple[testing.ServerThread, rest.Client], tmp_path: Path
) -> None:
    srv, client = cluster
    ns = "dns-" + uuid.uuid4().hex[:6]
    await client.create(NS, {"metadata": {"name": ns}})
    web = await client.create(SVC, service("web", ns, ips=[], ports=[port("http", 80)]), ns)
    await client.create(SVC, service("db", ns, ips=["None"], ports=[port("pg", 5432)]), ns)
    await client.create(
        SLICES,
        endpoint_slice(
            "db-manual",
            "db",
            [endpoint("10.42.0.5", hostname="db-0"), endpoint("10.42.0.6")],
            ns=ns,
            ports=[port("pg", 5432)],
        ),
        ns,
    )
    metrics_port = testing.free_port()
    node, sup = await start_dns(client, metrics_port)
    try:
        ip = web["spec"]["clusterIP"]
        assert addresses(await query(node.port, f"web.{ns}.svc.cluster.local")) == [ip]
        assert addresses(await query(node.port, f"db.{ns}.svc.cluster.local")) == [
            "10.42.0.5",
            "10.42.0.6",
        ]
        srv_reply = await query(node.port, f"_pg._tcp.db.{ns}.svc.cluster.local", "SRV")
        assert sorted(str(r.rdata.target) for r in srv_reply.rr) == [
            f"10-42-0-6.db.{ns}.svc.cluster.local.",
            f"db-0.db.{ns}.svc.cluster.local.",
        ]
        # The kube-dns Service the API server made is there, with its address.
        assert addresses(await query(node.port, "kube-dns.kube-system.svc.cluster.local")) == [
            "10.43.0.10"
        ]
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            text = await resp.text()
        assert 'coredns_dns_requests_total{family="1",proto="udp"' in text
        assert "coredns_dns_request_duration_seconds_bucket" in text

        # The API server goes away: DNS keeps answering from what it knows.
        srv.stop()
        assert addresses(await query(node.port, f"web.{ns}.svc.cluster.local", "A")) == [ip]
        reply = await query(node.port, f"web.{ns}.svc.cluster.local", "AAAA")
        assert (RCODE[reply.header.rcode], reply.rr) == ("NOERROR", [])  # NODATA, not SERVFAIL

        # It comes back (same data, same socket): the watches resume, changes arrive.
        srv2 = testing.ServerThread(tmp_path / "data").start()
        try:
            later = await client.create(SVC, service("later", ns, ips=[], ports=[port("p", 1)]), ns)

            async def later_resolves() -> bool:
                reply = await query(node.port, f"later.{ns}.svc.cluster.local")
                return addresses(reply) == [later["spec"]["clusterIP"]]

            await eventually(later_resolves, timeout=20)
            await client.delete(SVC, "web", ns)

            async def web_gone() -> bool:
                reply = await query(node.port, f"web.{ns}.svc.cluster.local")
                return RCODE[reply.header.rcode] == "NXDOMAIN"

            await eventually(web_gone, timeout=10)
        finally:
            srv2.stop()
    finally:
        await sup.stop()
        await node.factory.stop()
        await node.dns.teardown()
    assert not node.dns.serving.is_set()


async def test_a_server_that_cannot_bind_is_restarted_until_it_can(
    cluster: tuple[testing.ServerThread, rest.Client], caplog: pytest.LogCaptureFixture
) -> None:
    _, client = cluster
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    dns_port = taken.getsockname()[1]
    sup = supervisor.Supervisor("agent", backoff_initial=0.05, backoff_max=0.2)
    dns = nodelocal.NodeLocalDNS(
        nodelocal.Config(
            addresses=("127.0.0.1",), port=dns_port, metrics_port=None, manage_addresses=False
        ),
        tasks=sup,
    )
    factory = informer.InformerFactory(client)
    dns.attach(factory)
    factory.start(sup)
    try:
        sup.start("cluster-dns", dns.run)

        async def failed_once() -> bool:
            return {s.name: s for s in sup.status()}["cluster-dns"].restarts >= 1

        # Generous bounds: on a loaded machine the informers' sync alone took over 5 s.
        await eventually(failed_once, timeout=30)
        assert not dns.serving.is_set()
        assert "cluster-dns failed; restarting" in caplog.text
        taken.close()
        try:
            await asyncio.wait_for(dns.serving.wait(), 30)
        except TimeoutError:
            # Seen once in a fresh clone's full run (no second failure logged in 30 s):
            # say what the supervisor and the loop's tasks were doing.
            stacks = {t.get_name(): t.get_stack(limit=8) for t in asyncio.all_tasks()}
            pytest.fail(
                f"cluster DNS not serving 30 s after its port was freed: {sup.status()!r}; "
                f"the loop's tasks: {stacks!r}"
            )
        reply = await query(dns_port, "kube-dns.kube-system.svc.cluster.local")
        assert addresses(reply) == ["10.43.0.10"]
    finally:
        taken.close()
        await sup.stop()
        await factory.stop()
        await dns.teardown()


def test_bad_addresses_are_refused() -> None:
    with pytest.raises(ValueError):
        nodelocal.NodeLocalDNS(
            nodelocal.Config(addresses=("not-an-ip",)), tasks=supervisor.Supervisor("x")
        )
