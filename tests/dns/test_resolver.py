"""Every record type, and NXDOMAIN versus NODATA, as CoreDNS's kubernetes plugin answers.

Expected answers are those of the plugin's own tests (handler_test.go) where the
data overlaps; rcode, answer, additional and authority are all checked.
"""

from __future__ import annotations

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from pilothouse.dns import records as recs
from pilothouse.dns import resolver as res

from .conftest import endpoint, endpoint_slice, namespace, service

SOA = "cluster.local. 5 SOA ns.dns.cluster.local. hostmaster.cluster.local. 1499347823 7200 1800 86400 5"


def rr(r: RR) -> str:
    return f"{r.rname} {r.ttl} {QTYPE[r.rtype]} {r.rdata.toZone()}"


def ask(resolver: res.ClusterResolver, name: str, qtype: str = "A") -> res.Result:
    return resolver.resolve(DNSRecord.question(name, qtype))


def answer(resolver: res.ClusterResolver, name: str, qtype: str = "A") -> res.Answer:
    result = ask(resolver, name, qtype)
    assert isinstance(result, res.Answer), result
    return result


@pytest.fixture
def resolver(records: recs.ClusterRecords) -> res.ClusterResolver:
    return res.ClusterResolver(records, dns_ips=("10.43.0.10",))


CASES: list[tuple[str, str, str, list[str], list[str]]] = [
    # name, type, rcode, answer, additional
    ("svc1.testns.svc.cluster.local.", "A", "NOERROR",
     ["svc1.testns.svc.cluster.local. 5 A 10.0.0.1"], []),
    # A ClusterIP Service answers with its address even with no endpoints.
    ("svcempty.testns.svc.cluster.local.", "A", "NOERROR",
     ["svcempty.testns.svc.cluster.local. 5 A 10.0.0.1"], []),
    ("svc1.testns.svc.cluster.local.", "SRV", "NOERROR",
     ["svc1.testns.svc.cluster.local. 5 SRV 0 100 80 svc1.testns.svc.cluster.local."],
     ["svc1.testns.svc.cluster.local. 5 A 10.0.0.1"]),
    ("svc6.testns.svc.cluster.local.", "SRV", "NOERROR",
     ["svc6.testns.svc.cluster.local. 5 SRV 0 100 80 svc6.testns.svc.cluster.local."],
     ["svc6.testns.svc.cluster.local. 5 AAAA 1234:abcd::1"]),
    ("_http._tcp.svc1.testns.svc.cluster.local.", "SRV", "NOERROR",
     ["_http._tcp.svc1.testns.svc.cluster.local. 5 SRV 0 100 80 svc1.testns.svc.cluster.local."],
     ["svc1.testns.svc.cluster.local. 5 A 10.0.0.1"]),
    # The SRV name answers A too (the plugin resolves the name, whatever the type).
    ("_http._tcp.svc1.testns.svc.cluster.local.", "A", "NOERROR",
     ["_http._tcp.svc1.testns.svc.cluster.local. 5 A 10.0.0.1"], []),
    # Headless: one A per ready IPv4 endpoint (172.0.0.9 is not ready).
    ("hdls1.testns.svc.cluster.local.", "A", "NOERROR",
     [f"hdls1.testns.svc.cluster.local. 5 A 172.0.0.{i}" for i in (2, 3, 4, 5)], []),
    ("hdls1.testns.svc.cluster.local.", "AAAA", "NOERROR",
     ["hdls1.testns.svc.cluster.local. 5 AAAA 5678:abcd::1",
      "hdls1.testns.svc.cluster.local. 5 AAAA 5678:abcd::2"], []),
    ("hdlsprtls.testns.svc.cluster.local.", "A", "NOERROR",
     ["hdlsprtls.testns.svc.cluster.local. 5 A 172.0.0.20"], []),
    ("172-0-0-20.hdlsprtls.testns.svc.cluster.local.", "A", "NOERROR",
     ["172-0-0-20.hdlsprtls.testns.svc.cluster.local. 5 A 172.0.0.20"], []),
    ("172-0-0-2.hdls1.testns.svc.cluster.local.", "A", "NOERROR",
     ["172-0-0-2.hdls1.testns.svc.cluster.local. 5 A 172.0.0.2"], []),
    ("dup-name.hdls1.testns.svc.cluster.local.", "A", "NOERROR",
     ["dup-name.hdls1.testns.svc.cluster.local. 5 A 172.0.0.4",
      "dup-name.hdls1.testns.svc.cluster.local. 5 A 172.0.0.5"], []),
    ("5678-abcd--2.hdls1.testns.svc.cluster.local.", "AAAA", "NOERROR",
     ["5678-abcd--2.hdls1.testns.svc.cluster.local. 5 AAAA 5678:abcd::2"], []),
    # An endpoint of a ClusterIP Service is a name too (its hostname or dashed IP).
    ("ep1a.svc1.testns.svc.cluster.local.", "A", "NOERROR",
     ["ep1a.svc1.testns.svc.cluster.local. 5 A 172.0.0.1"], []),
    # SRV of a headless Service: one per endpoint (duplicates once), weights share 100.
    ("_http._tcp.hdls1.testns.svc.cluster.local.", "SRV", "NOERROR",
     [f"_http._tcp.hdls1.testns.svc.cluster.local. 5 SRV 0 16 80 {t}.hdls1.testns.svc.cluster.local."
      for t in ("172-0-0-2", "172-0-0-3", "dup-name", "5678-abcd--1", "5678-abcd--2")],
     ["172-0-0-2.hdls1.testns.svc.cluster.local. 5 A 172.0.0.2",
      "172-0-0-3.hdls1.testns.svc.cluster.local. 5 A 172.0.0.3",
      "dup-name.hdls1.testns.svc.cluster.local. 5 A 172.0.0.4",
      "dup-name.hdls1.testns.svc.cluster.local. 5 A 172.0.0.5",
      "5678-abcd--1.hdls1.testns.svc.cluster.local. 5 AAAA 5678:abcd::1",
      "5678-abcd--2.hdls1.testns.svc.cluster.local. 5 AAAA 5678:abcd::2"]),
    # Dual stack.
    ("svc-dual-stack.testns.svc.cluster.local.", "A", "NOERROR",
     ["svc-dual-stack.testns.svc.cluster.local. 5 A 10.0.0.3"], []),
    ("svc-dual-stack.testns.svc.cluster.local.", "AAAA", "NOERROR",
     ["svc-dual-stack.testns.svc.cluster.local. 5 AAAA 10::3"], []),
    ("svc-dual-stack.testns.svc.cluster.local.", "SRV", "NOERROR",
     ["svc-dual-stack.testns.svc.cluster.local. 5 SRV 0 50 80 svc-dual-stack.testns.svc.cluster.local."],
     ["svc-dual-stack.testns.svc.cluster.local. 5 A 10.0.0.3",
      "svc-dual-stack.testns.svc.cluster.local. 5 AAAA 10::3"]),
    # ExternalName: a CNAME; to an in-cluster name, followed here.
    ("external.testns.svc.cluster.local.", "CNAME", "NOERROR",
     ["external.testns.svc.cluster.local. 5 CNAME ext.interwebs.test."], []),
    ("external-to-service.testns.svc.cluster.local.", "A", "NOERROR",
     ["external-to-service.testns.svc.cluster.local. 5 CNAME svc1.testns.svc.cluster.local.",
      "svc1.testns.svc.cluster.local. 5 A 10.0.0.1"], []),
    # Pods (insecure mode): the IP the name spells, in an existing namespace.
    ("10-240-0-1.testns.pod.cluster.local.", "A", "NOERROR",
     ["10-240-0-1.testns.pod.cluster.local. 5 A 10.240.0.1"], []),
    ("1234-abcd--1.testns.pod.cluster.local.", "AAAA", "NOERROR",
     ["1234-abcd--1.testns.pod.cluster.local. 5 AAAA 1234:abcd::1"], []),
    # PTR: cluster IPs, then ready endpoints (by hostname or dashed IP).
    ("10.0.43.10.in-addr.arpa.", "PTR", "NOERROR",
     ["10.0.43.10.in-addr.arpa. 5 PTR kube-dns.kube-system.svc.cluster.local."], []),
    ("4.0.0.172.in-addr.arpa.", "PTR", "NOERROR",
     ["4.0.0.172.in-addr.arpa. 5 PTR dup-name.hdls1.testns.svc.cluster.local."], []),
    ("3.0.0.172.in-addr.arpa.", "PTR", "NOERROR",
     ["3.0.0.172.in-addr.arpa. 5 PTR 172-0-0-3.hdls1.testns.svc.cluster.local."], []),
    ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa.", "PTR", "NOERROR",
     ["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.c.b.a.4.3.2.1.ip6.arpa. 5 PTR "
      "svc6.testns.svc.cluster.local."], []),
    # Special names.
    ("dns-version.cluster.local.", "TXT", "NOERROR",
     ["dns-version.cluster.local. 28800 TXT \"1.1.0\""], []),
    ("cluster.local.", "SOA", "NOERROR", [SOA], []),
    ("cluster.local.", "NS", "NOERROR", ["cluster.local. 5 NS ns.dns.cluster.local."],
     ["ns.dns.cluster.local. 5 A 10.43.0.10"]),
    ("ns.dns.cluster.local.", "A", "NOERROR", ["ns.dns.cluster.local. 5 A 10.43.0.10"], []),
]  # fmt: skip

NODATA: list[tuple[str, str]] = [
    ("svc1.testns.svc.cluster.local.", "AAAA"),  # an A but no AAAA
    ("svc1.testns.svc.cluster.local.", "TXT"),  # exists, no TXT
    ("svc1.testns.svc.cluster.local.", "SOA"),  # SOA only at the apex
    ("svc1.testns.svc.cluster.local.", "MX"),
    ("svc1.testns.svc.cluster.local.", "HTTPS"),  # any other type: the name exists
    ("svc1.testns.svc.cluster.local.", "CNAME"),
    ("external.testns.svc.cluster.local.", "SRV"),  # no SRV for ExternalName
    ("svc.cluster.local.", "A"),
    ("pod.cluster.local.", "A"),
    ("testns.svc.cluster.local.", "A"),  # an existing namespace
    ("testns.pod.cluster.local.", "A"),
    ("cluster.local.", "A"),  # the apex has no address
    ("svc.cluster.local.", "NS"),
    ("testns.svc.cluster.local.", "NS"),
    ("10-240-0-1.testns.pod.cluster.local.", "AAAA"),
]

NXDOMAIN: list[tuple[str, str]] = [
    ("svc0.testns.svc.cluster.local.", "A"),  # no such Service
    ("svc0.testns.svc.cluster.local.", "AAAA"),
    ("svc0.testns.svc.cluster.local.", "HTTPS"),
    ("svc1.nsnoexist.svc.cluster.local.", "A"),  # no such namespace
    ("nsnoexist.svc.cluster.local.", "A"),
    ("svc0.svc-nons.svc.cluster.local.", "TXT"),
    ("bogusendpoint.hdls1.testns.svc.cluster.local.", "A"),
    ("bogusendpoint.svc0.testns.svc.cluster.local.", "A"),
    ("hdlsempty.testns.svc.cluster.local.", "A"),  # headless with no ready endpoint
    ("_https._tcp.svc1.testns.svc.cluster.local.", "SRV"),  # no such named port
    ("_http._udp.svc1.testns.svc.cluster.local.", "SRV"),  # the port is TCP
    ("endpoint.external.testns.svc.cluster.local.", "CNAME"),  # nothing below ExternalName
    ("subdomain.subdomain.external.testns.svc.cluster.local.", "CNAME"),
    ("external-ip.testns.svc.cluster.local.", "A"),  # an IP is not a name to alias
    ("a.b.c.svc1.testns.svc.cluster.local.", "A"),  # too long to be anything
    ("foo.cluster.local.", "NS"),  # neither svc nor pod
    ("foo.svc.cluster.local.", "NS"),
    ("not-an-ip.testns.pod.cluster.local.", "A"),
    ("10-240-0-1.nsnoexist.pod.cluster.local.", "A"),
    ("cluster.local.", "TXT"),  # the plugin's TXT lookup finds nothing at the apex
    # What the search path tries before the right name: each a quick NXDOMAIN.
    ("svc1.svc.cluster.local.", "A"),
    ("svc1.cluster.local.", "A"),
    ("google.com.testns.svc.cluster.local.", "A"),
]


@pytest.mark.parametrize(("name", "qtype", "rcode", "want", "extra"), CASES)
def test_records(
    resolver: res.ClusterResolver,
    name: str,
    qtype: str,
    rcode: str,
    want: list[str],
    extra: list[str],
) -> None:
    a = answer(resolver, name, qtype)
    assert RCODE[a.rcode] == rcode
    assert sorted(rr(r) for r in a.answer) == sorted(want)
    assert sorted(rr(r) for r in a.extra) == sorted(extra)
    assert a.authority == []
    if any(" CNAME " in w for w in want):  # the CNAME comes before its target's records
        assert QTYPE[a.answer[0].rtype] == "CNAME"


@pytest.mark.parametrize(("name", "qtype"), NODATA)
def test_nodata_is_noerror_with_soa(resolver: res.ClusterResolver, name: str, qtype: str) -> None:
    a = answer(resolver, name, qtype)
    assert (RCODE[a.rcode], a.answer, [rr(r) for r in a.authority]) == ("NOERROR", [], [SOA])


@pytest.mark.parametrize(("name", "qtype"), NXDOMAIN)
def test_nxdomain_with_soa(resolver: res.ClusterResolver, name: str, qtype: str) -> None:
    a = answer(resolver, name, qtype)
    assert (RCODE[a.rcode], a.answer, [rr(r) for r in a.authority]) == ("NXDOMAIN", [], [SOA])


def test_answers_keep_the_query_case(resolver: res.ClusterResolver) -> None:
    a = answer(resolver, "SVC1.TestNS.svc.Cluster.Local.", "SRV")
    assert [rr(r) for r in a.answer] == [
        "SVC1.TestNS.svc.Cluster.Local. 5 SRV 0 100 80 svc1.testns.svc.Cluster.Local."
    ]
    nx = answer(resolver, "SVC0.testns.svc.CLUSTER.local.")
    assert RCODE[nx.rcode] == "NXDOMAIN"
    assert str(nx.authority[0].rname) == "CLUSTER.local."


def test_outside_the_zone_is_forwarded(resolver: res.ClusterResolver) -> None:
    assert isinstance(ask(resolver, "example.com."), res.Forward)
    assert isinstance(ask(resolver, "xcluster.local."), res.Forward)
    # Unknown reverse names fall through to the upstream resolvers.
    assert isinstance(ask(resolver, "9.9.9.9.in-addr.arpa.", "PTR"), res.Forward)
    assert isinstance(ask(resolver, "in-addr.arpa.", "A"), res.Answer)  # the zone exists


def test_external_name_out_of_the_zone_needs_upstream(resolver: res.ClusterResolver) -> None:
    query = DNSRecord.question("external.testns.svc.cluster.local.", "A")
    first = resolver.resolve(query)
    assert isinstance(first, res.NeedLookups)
    assert first.keys == (("ext.interwebs.test.", QTYPE.A),)
    upstream = DNSRecord.question("ext.interwebs.test.", "A").reply()
    upstream.add_answer(RR("ext.interwebs.test.", QTYPE.A, ttl=30, rdata=A("1.2.3.4")))
    upstream.header.tc = 1
    done = resolver.resolve(query, {first.keys[0]: upstream})
    assert isinstance(done, res.Answer)
    assert [rr(r) for r in done.answer] == [
        "external.testns.svc.cluster.local. 5 CNAME ext.interwebs.test.",
        "ext.interwebs.test. 30 A 1.2.3.4",
    ]
    assert done.truncated  # passed on from the upstream answer
    # An upstream that failed: the CNAME is left out, the name still exists (NODATA).
    failed = resolver.resolve(query, {first.keys[0]: None})
    assert isinstance(failed, res.Answer)
    assert (failed.answer, RCODE[failed.rcode]) == ([], "NOERROR")


def test_cname_loops_and_chains_stop(records: recs.ClusterRecords) -> None:
    records.on_service(service("self", type="ExternalName", ips=[],
                               externalName="self.testns.svc.cluster.local"))  # fmt: skip
    for i in range(10):  # a chain longer than the plugin follows
        records.on_service(service(f"c{i}", type="ExternalName", ips=[],
                                   externalName=f"c{i + 1}.testns.svc.cluster.local"))  # fmt: skip
    records.on_service(service("c10", ports=[{"name": "x", "port": 1, "protocol": "TCP"}]))
    r = res.ClusterResolver(records)
    assert answer(r, "self.testns.svc.cluster.local.").answer == []  # x CNAME x: not followed
    assert answer(r, "c0.testns.svc.cluster.local.").answer == []  # too long: given up
    assert len(answer(r, "c4.testns.svc.cluster.local.").answer) == 7  # 6 CNAMEs and the A


def test_not_synced_name_errors_are_servfail(records: recs.ClusterRecords) -> None:
    records.track_synced(lambda: False)
    r = res.ClusterResolver(records)
    a = answer(r, "svc0.testns.svc.cluster.local.")
    assert (RCODE[a.rcode], [rr(x) for x in a.authority]) == ("SERVFAIL", [SOA])
    assert RCODE[answer(r, "svc1.testns.svc.cluster.local.").rcode] == "NOERROR"


def test_zone_transfers_are_refused(resolver: res.ClusterResolver) -> None:
    a = answer(resolver, "cluster.local.", "AXFR")
    assert (RCODE[a.rcode], a.authoritative) == ("REFUSED", False)


def test_answers_follow_changes(records: recs.ClusterRecords) -> None:
    r = res.ClusterResolver(records)
    records.on_namespace(namespace("later"))
    records.on_service(service("web", "later", ips=["None"]))
    assert RCODE[answer(r, "web.later.svc.cluster.local.").rcode] == "NXDOMAIN"
    sl = endpoint_slice("web-x", "web", [endpoint("10.42.0.7", hostname="web-0")], ns="later")
    records.on_slice(sl)
    assert [rr(x) for x in answer(r, "web-0.web.later.svc.cluster.local.").answer] == [
        "web-0.web.later.svc.cluster.local. 5 A 10.42.0.7"
    ]
    sl["endpoints"][0]["conditions"]["ready"] = False  # the pod's readiness probe fails
    records.on_slice(sl)
    assert RCODE[answer(r, "web.later.svc.cluster.local.").rcode] == "NXDOMAIN"
    records.on_namespace_deleted(namespace("later"))
    assert RCODE[answer(r, "later.svc.cluster.local.").rcode] == "NXDOMAIN"


def test_address_from_reverse() -> None:
    assert res.address_from_reverse("4.3.2.1.in-addr.arpa.") == "1.2.3.4"
    assert res.address_from_reverse("3.2.1.in-addr.arpa.") == ""
    assert res.address_from_reverse("x.3.2.1.in-addr.arpa.") == ""
    v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
    assert res.address_from_reverse(v6) == "2001:db8::1"


def test_endpoint_labels() -> None:
    assert recs.Address("10.42.0.5").label() == "10-42-0-5"
    assert recs.Address("10.42.0.5", hostname="web-0").label() == "web-0"
    assert recs.Address("fd00::").label() == "fd00--0"  # never ends in a dash
