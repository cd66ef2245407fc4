"""Answers for the cluster's zones, as CoreDNS's ``kubernetes`` plugin gives them.

The zones are ``<cluster domain>`` (``cluster.local``) and the reverse zones
``in-addr.arpa`` and ``ip6.arpa``, with the Corefile every Kubernetes
distribution ships (``pods insecure``, ``fallthrough in-addr.arpa ip6.arpa``,
TTL 5 s — k3s's, whose default TTL this is):

- ``<svc>.<ns>.svc.<zone>``: A/AAAA of the cluster IPs; a headless Service, one
  record per ready endpoint (NXDOMAIN when it has none); an ExternalName
  Service, a CNAME (followed: in-zone targets are resolved here, others through
  the upstream resolvers).
- ``<endpoint>.<svc>.<ns>.svc.<zone>``: one endpoint, by its hostname or dashed IP.
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` (and the bare service name):
  SRV for every matching port, targets with their addresses in the additional
  section.
- ``a-b-c-d.<ns>.pod.<zone>``: the IP the name spells, in an existing namespace.
- PTR for cluster IPs and ready endpoint IPs; other reverse names are not ours
  (they go upstream, the ``fallthrough``).
- ``dns-version.<zone>`` TXT, ``ns.dns.<zone>``, and the zone's SOA and NS.

NXDOMAIN versus NODATA follows the plugin case by case (a name that exists
with no record of the asked type is NOERROR with no answer); both carry the
zone's SOA in the authority section. A name error before the informers have
listed once is SERVFAIL, so a client retries instead of caching a lie.

:meth:`ClusterResolver.resolve` is synchronous and pure: it reads
:class:`~pilothouse.dns.records.ClusterRecords`. Following an ExternalName out
of the zone needs the upstream resolvers; the first pass then returns
:class:`NeedLookups` and the caller resolves again with the answers it fetched.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from dnslib import (
    AAAA,
    CNAME,
    NS,
    PTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    TXT,
    A,
    DNSHeader,
    DNSLabel,
    DNSRecord,
)

from pilothouse.dns import records as recs

DNS_SCHEMA_VERSION = "1.1.0"  # the Kubernetes DNS specification this follows
REVERSE_ZONES = ("in-addr.arpa.", "ip6.arpa.")
MAX_CNAME_CHAIN = 7  # as CoreDNS: records already in the chain before it stops following


class NoSuchName(Exception):
    """The name does not exist (NXDOMAIN, or SERVFAIL before the first sync)."""


class Refused(Exception):
    """Zone transfers are not offered."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing a name resolves to: CoreDNS's ``msg.Service``."""

    host: str  # an IP address, or a name (CNAME)
    key: str = ""  # the owner of synthesised SRV targets: "web.default.svc.cluster.local."
    port: int = 0
    text: str = ""
    ttl: int = 0

    def kind(self) -> str:
        """A, AAAA, CNAME or TXT, from what ``host`` holds."""
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return "TXT" if self.text else "CNAME"
        return "A" if ip.version == 4 else "AAAA"


@dataclass(frozen=True, slots=True)
class Request:
    """What a query asks, with the zone it falls in."""

    qname: str  # as sent (case kept), fully qualified
    name: str  # lower case
    qtype: int
    zone: str  # the matched zone, in the query's case
    owner: str | DNSLabel = ""  # the answers' owner name: the question's own label

    @property
    def owner_name(self) -> str | DNSLabel:
        return self.owner or self.qname


@dataclass
class Answer:
    """A complete answer for a name in our zones."""

    rcode: int
    answer: list[RR] = field(default_factory=list)
    extra: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    truncated: bool = False
    authoritative: bool = True

    def reply_to(self, query: DNSRecord) -> DNSRecord:
        """The response message: header and question from ``query`` (as CoreDNS's
        ``SetReply``: id, opcode, RD and CD copied), authoritative, no RA."""
        q = query.header.bitmap
        # QR, opcode and RD (first byte), CD (second), AA, TC and the rcode: one word.
        bitmap = 0x8000 | (q & 0x7900) | (q & 0x0010) | (self.rcode & 0x0F)
        bitmap |= (0x0400 if self.authoritative else 0) | (0x0200 if self.truncated else 0)
        header = DNSHeader(id=query.header.id, bitmap=bitmap)
        return DNSRecord(
            header,
            list(query.questions),
            list(self.answer),
            auth=list(self.authority),
            ar=list(self.extra),
        )


@dataclass(frozen=True)
class Forward:
    """Not in our zones (or a reverse name we do not know): ask the upstream resolvers."""


@dataclass(frozen=True)
class NeedLookups:
    """Resolve these (name, qtype) upstream, then call ``resolve`` again with them."""

    keys: tuple[tuple[str, int], ...]


Lookups = Mapping[tuple[str, int], DNSRecord | None]  # None: the lookup failed
Result = Answer | Forward | NeedLookups


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A name under ``<zone>``, split as the plugin's ``parseRequest`` does."""

    pod_or_svc: str = ""
    namespace: str = ""
    service: str = ""
    endpoint: str = ""
    port: str = ""
    protocol: str = ""


def _split(name: str) -> list[str]:
    return [label for label in name.rstrip(".").split(".") if label] if name != "." else []


def _subdomain(parent: str, child: str) -> bool:
    """Whether ``child`` is ``parent`` or below it (both lower case, fully qualified)."""
    return parent == "." or child == parent or child.endswith("." + parent)


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def address_from_reverse(name: str) -> str:
    """The IP a reverse name spells (``4.3.2.1.in-addr.arpa.`` → ``1.2.3.4``), or ""."""
    labels = _split(name)
    if name.endswith(".in-addr.arpa.") and len(labels) == 6:
        text = ".".join(reversed(labels[:4]))
    elif name.endswith(".ip6.arpa.") and len(labels) == 34:
        nibbles = "".join(reversed(labels[:32]))
        text = ":".join(nibbles[i : i + 4] for i in range(0, 32, 4))
    else:
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""


class ClusterResolver:
    """The cluster zones' answers; see the module docstring."""

    def __init__(
        self,
        records: recs.ClusterRecords,
        *,
        domain: str = "cluster.local",
        ttl: int = 5,
        dns_ips: tuple[str, ...] = ("10.43.0.10",),
    ) -> None:
        self.records = records
        self.domain = fqdn(domain.lower())
        self.ttl = ttl
        self.dns_ips = dns_ips
        self.zones = sorted((self.domain, *REVERSE_ZONES), key=len, reverse=True)

    # --- entry point ----------------------------------------------------------------
    def zone_of(self, name: str) -> str | None:
        """The longest of our zones ``name`` (lower case) is in."""
        for zone in self.zones:
            if _subdomain(zone, name):
                return zone
        return None

    def resolve(self, query: DNSRecord, lookups: Lookups | None = None) -> Result:
        q = query.questions[0]
        qname = str(q.qname)
        name = qname.lower()
        zone = self.zone_of(name)
        if zone is None:
            return Forward()
        req = Request(qname, name, q.qtype, qname[len(qname) - len(zone) :], q.qname)
        pending: list[tuple[str, int]] = []
        try:
            answer, extra, truncated = self._answer(req, lookups or {}, pending)
        except NoSuchName:
            if zone in REVERSE_ZONES:
                return Forward()  # fallthrough in-addr.arpa ip6.arpa
            if not self.records.has_synced():
                return Answer(RCODE.SERVFAIL, authority=[self.soa(req)])
            return Answer(RCODE.NXDOMAIN, authority=[self.soa(req)])
        except Refused:
            return Answer(RCODE.REFUSED, authoritative=False)
        if pending:
            return NeedLookups(tuple(dict.fromkeys(pending)))
        if not answer:
            return Answer(RCODE.NOERROR, authority=[self.soa(req)])
        return Answer(RCODE.NOERROR, answer, extra, truncated=truncated)

    def _answer(
        self, req: Request, lookups: Lookups, pending: list[tuple[str, int]]
    ) -> tuple[list[RR], list[RR], bool]:
        t = req.qtype
        if t in (QTYPE.A, QTYPE.AAAA):
            answer, truncated = self._address(req, [], lookups, pending)
            return answer, [], truncated
        if t == QTYPE.TXT:
            return self._txt(req), [], False
        if t == QTYPE.CNAME:
            return self._cname(req), [], False
        if t == QTYPE.PTR:
            return self._ptr(req), [], False
        if t == QTYPE.SRV:
            answer, extra = self._srv(req)
            return answer, extra, False
        if t == QTYPE.MX:
            self._services(req)  # no Service is a mail exchanger: only the error matters
            return [], [], False
        if t == QTYPE.SOA:
            return ([self.soa(req)] if req.qname == req.zone else []), [], False
        if t in (QTYPE.AXFR, QTYPE.IXFR):
            raise Refused
        if t == QTYPE.NS and req.name == req.zone.lower():
            return self._ns(req)
        # Any other type: a lookup of A tells NODATA from NXDOMAIN.
        self._apex_or_services(Request(req.qname, req.name, QTYPE.A, req.zone, req.owner))
        return [], [], False

    # --- records of one type --------------------------------------------------------
    def _rr(self, owner: str | DNSLabel, rtype: int, rdata: object, ttl: int) -> RR:
        return RR(owner, rtype, ttl=ttl, rdata=rdata)

    def _address(
        self,
        req: Request,
        previous: list[RR],
        lookups: Lookups,
        pending: list[tuple[str, int]],
    ) -> tuple[list[RR], bool]:
        """A or AAAA, following CNAMEs (plugin.A / plugin.AAAA)."""
        want = "A" if req.qtype == QTYPE.A else "AAAA"
        out: list[RR] = []
        seen: set[str] = set()
        truncated = False
        for e in self._apex_or_services(req):
            kind = e.kind()
            if kind == "CNAME":
                target = fqdn(e.host)
                if _subdomain(req.name, target.lower()):
                    continue  # x CNAME x (or below it) would loop
                cname = self._rr(req.owner_name, QTYPE.CNAME, CNAME(target), e.ttl)
                if len(previous) > MAX_CNAME_CHAIN:
                    continue
                if any(r.rtype == QTYPE.CNAME and str(r.rdata.label) == target for r in previous):
                    continue
                if _subdomain(req.zone.lower(), target.lower()):
                    inner = Request(target, target.lower(), req.qtype, req.zone)
                    try:
                        more, tc = self._address(inner, [*previous, cname], lookups, pending)
                    except NoSuchName:
                        continue
                    truncated = truncated or tc
                    if more:
                        out.append(cname)
                        out.extend(more)
                    continue
                key = (target, req.qtype)
                if key not in lookups:
                    pending.append(key)
                    continue
                reply = lookups[key]
                if reply is None:
                    continue  # upstream failed: leave the CNAME out, as CoreDNS does
                truncated = truncated or bool(reply.header.tc)
                out.append(cname)
                out.extend(reply.rr)
            elif kind == want and e.host not in seen:
                seen.add(e.host)
                rdata = A(e.host) if want == "A" else AAAA(e.host)
                out.append(self._rr(req.owner_name, req.qtype, rdata, e.ttl))
        return out, truncated

    def _txt(self, req: Request) -> list[RR]:
        return [
            self._rr(req.owner_name, QTYPE.TXT, TXT(e.text), e.ttl)
            for e in self._services(req)
            if e.kind() == "TXT"
        ]

    def _cname(self, req: Request) -> list[RR]:
        found = self._services(req)
        if found and found[0].kind() == "CNAME":
            return [self._rr(req.owner_name, QTYPE.CNAME, CNAME(fqdn(found[0].host)), found[0].ttl)]
        return []

    def _ptr(self, req: Request) -> list[RR]:
        ip = address_from_reverse(req.name)
        if not ip:
            self._records(req)  # raises: a reverse name that is not an address
            return []
        targets: list[str] = []
        services = self.records.services_with_ip(ip)
        if services:
            s = services[0]
            targets.append(f"{s.name}.{s.namespace}.svc.{self.domain}")
        else:
            for sl, a in self.records.endpoints_with_ip(ip):
                targets.append(f"{a.label()}.{sl.service}.{sl.namespace}.svc.{self.domain}")
        if not targets:
            raise NoSuchName(req.name)
        return [
            self._rr(req.owner_name, QTYPE.PTR, PTR(t), self.ttl) for t in dict.fromkeys(targets)
        ]

    def _srv(self, req: Request) -> tuple[list[RR], list[RR]]:
        entries = [e for e in self._services(req) if e.kind() != "CNAME"]
        total = len(entries) * 100  # every entry weighs 100, all at priority 0
        answer: list[RR] = []
        extra: list[RR] = []
        seen: set[tuple[str, str, int]] = set()
        for e in entries:
            if e.port == recs.NO_PORT:
                continue
            weight = max(1, math.floor(100.0 / total * 100))
            target = e.key
            if (target, "", e.port) not in seen:
                seen.add((target, "", e.port))
                answer.append(
                    self._rr(req.owner_name, QTYPE.SRV, SRV(0, weight, e.port, target), e.ttl)
                )
            if (target, e.host, 0) not in seen:
                seen.add((target, e.host, 0))
                kind = e.kind()
                rdata = A(e.host) if kind == "A" else AAAA(e.host)
                extra.append(self._rr(target, QTYPE.A if kind == "A" else QTYPE.AAAA, rdata, e.ttl))
        return answer, extra

    def _ns(self, req: Request) -> tuple[list[RR], list[RR], bool]:
        ns_name = "ns.dns." + req.zone
        answer = [self._rr(req.owner_name, QTYPE.NS, NS(ns_name), self.ttl)]
        extra = [self._ns_address(ns_name, ip) for ip in self.dns_ips]
        return answer, extra, False

    def _ns_address(self, owner: str, ip: str) -> RR:
        if recs.is_ipv4(ip):
            return self._rr(owner, QTYPE.A, A(ip), self.ttl)
        return self._rr(owner, QTYPE.AAAA, AAAA(ip), self.ttl)

    def soa(self, req: Request) -> RR:
        zone = req.zone
        return self._rr(
            zone,
            QTYPE.SOA,
            SOA(
                "ns.dns." + zone,
                "hostmaster." + zone,
                (self.records.modified & 0xFFFFFFFF, 7200, 1800, 86400, self.ttl),
            ),
            min(self.ttl, 300),
        )

    # --- names → entries ------------------------------------------------------------
    def _apex_or_services(self, req: Request) -> list[Entry]:
        # The zone apex has no address of its own here (no apex.dns entry): NODATA.
        if req.name == req.zone.lower():
            return []
        return self._services(req)

    def _services(self, req: Request) -> list[Entry]:
        """The plugin's ``Services``: special names first, then the cluster's records."""
        zone = req.zone.lower()
        if req.qtype == QTYPE.TXT:
            labels = _split(req.name[: len(req.name) - len(zone)])
            if labels == ["dns-version"]:
                return [Entry(host="", text=DNS_SCHEMA_VERSION, ttl=28800)]
            try:
                found = self._records(req)
            except NoSuchName:
                found = []
            if found:
                return []  # the name exists, with no TXT: NODATA
            raise NoSuchName(req.name)
        if req.name == "ns.dns." + zone:
            want = "A" if req.qtype == QTYPE.A else "AAAA" if req.qtype == QTYPE.AAAA else ""
            return [
                Entry(host=ip, key=req.qname, ttl=self.ttl)
                for ip in self.dns_ips
                if Entry(host=ip).kind() == want
            ]
        found = self._records(req)
        if req.qtype == QTYPE.SRV:
            return [e for e in found if e.kind() != "CNAME"]
        return found

    def _parse(self, req: Request) -> _Parsed:
        zone = req.zone.lower()
        base = req.name[: len(req.name) - len(zone)].rstrip(".")
        if base in ("", "svc", "pod"):
            return _Parsed()  # the apex and the svc/pod subtrees exist, empty: NODATA
        segs = base.split(".")
        kind = segs.pop()
        if kind not in ("svc", "pod"):
            raise NoSuchName(req.name)
        namespace = segs.pop() if segs else ""
        service = segs.pop() if segs else ""
        if not segs:
            return _Parsed(kind, namespace, service)
        if len(segs) == 1:
            return _Parsed(kind, namespace, service, endpoint=segs[0])
        if len(segs) == 2:
            return _Parsed(
                kind, namespace, service, port=segs[0].removeprefix("_"),
                protocol=segs[1].removeprefix("_"),
            )  # fmt: skip
        raise NoSuchName(req.name)  # too long to be anything

    def _records(self, req: Request) -> list[Entry]:
        """The plugin's ``Records``: parse the name, then pods or services."""
        r = self._parse(req)
        if not r.pod_or_svc:
            return []
        if req.name.endswith(REVERSE_ZONES):
            raise NoSuchName(req.name)
        if r.namespace not in self.records.namespaces:
            raise NoSuchName(req.name)
        zone = req.zone
        if r.pod_or_svc == "pod":
            return self._pods(r, req)
        return self._find_services(r, zone, req)

    def _pods(self, r: _Parsed, req: Request) -> list[Entry]:
        if not r.service:
            return []  # <ns>.pod.<zone>: exists, no records
        dashed = r.service
        if dashed.count("-") == 3 and "--" not in dashed:
            text = dashed.replace("-", ".")
        else:
            text = dashed.replace("-", ":")
        try:
            ip = str(ipaddress.ip_address(text))
        except ValueError:
            raise NoSuchName(req.name) from None
        key = f"{r.service}.{r.namespace}.pod.{req.zone}"
        return [Entry(host=ip, key=key, ttl=self.ttl)]

    def _find_services(self, r: _Parsed, zone: str, req: Request) -> list[Entry]:
        if not r.service:
            return []  # <ns>.svc.<zone> of an existing namespace: NODATA
        svc = self.records.service(r.namespace, r.service)
        if svc is None:
            raise NoSuchName(req.name)
        found: list[Entry] = []
        svc_name = f"{svc.name}.{svc.namespace}.svc.{zone}"
        if svc.type == "ExternalName":
            # No endpoints, no ports: a name with either below it does not exist.
            if r.endpoint or r.port or r.protocol:
                raise NoSuchName(req.name)
            e = Entry(host=svc.external_name, key=svc_name, ttl=self.ttl)
            if e.kind() != "CNAME":
                raise NoSuchName(req.name)  # an IP in externalName is not a name to alias
            return [e]
        if svc.headless or r.endpoint:
            for sl, a in self.records.endpoints(svc.namespace, svc.name):
                label = a.label()
                if r.endpoint and r.endpoint != label.lower():
                    continue
                for p in sl.ports:
                    if not _port_matches(r, p):
                        continue
                    found.append(
                        Entry(host=a.ip, key=f"{label}.{svc_name}", port=p.port, ttl=self.ttl)
                    )
        else:
            for p in svc.ports:
                if not _port_matches(r, p):
                    continue
                for ip in svc.cluster_ips:
                    found.append(Entry(host=ip, key=svc_name, port=p.port, ttl=self.ttl))
        if not found:
            raise NoSuchName(req.name)
        return found


def _port_matches(r: _Parsed, p: recs.Port) -> bool:
    return (not r.port or r.port == p.name.lower()) and (
        not r.protocol or r.protocol == p.protocol.lower()
    )
