"""Cluster DNS metrics, named as CoreDNS names them, served on the kube-dns ``metrics`` port.

Counting sits on every query's path, so it is plain integers in dicts, turned
into Prometheus families only when someone scrapes (:class:`Collector`); the
registry is the server's own, so several servers in one process (tests) each
count their own. ``GET /metrics`` on ``<cluster DNS IP>:9153`` answers in the
text format every scraper reads, as CoreDNS's ``prometheus`` plugin does.

Everything runs on the agent's event loop.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

import prometheus_client
from aiohttp import web
from prometheus_client import core

from pilothouse.dns import forward

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# CoreDNS's buckets for coredns_dns_request_duration_seconds.
BUCKETS = (
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256,
    0.512, 1.024, 2.048, 4.096, 8.192,
)  # fmt: skip


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


@dataclass
class DNSStats:
    """What the server counts; labels are tuples, as the families below spell them."""

    server: str
    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)  # zone, proto, type
    responses: dict[tuple[str, str, str], int] = field(default_factory=dict)  # zone, rcode, plugin
    durations: dict[tuple[str, str], Histogram] = field(default_factory=dict)  # zone, proto
    cache_hits: int = 0
    cache_misses: int = 0
    dropped: int = 0  # malformed or not a query

    def count(
        self, *, zone: str, proto: str, qtype: str, rcode: str, plugin: str, seconds: float
    ) -> None:
        key = (zone, proto, qtype)
        self.requests[key] = self.requests.get(key, 0) + 1
        rkey = (zone, rcode, plugin)
        self.responses[rkey] = self.responses.get(rkey, 0) + 1
        hkey = (zone, proto)
        hist = self.durations.get(hkey)
        if hist is None:
            hist = self.durations[hkey] = Histogram()
        hist.observe(seconds)


class Collector:
    """Turns :class:`DNSStats` and the forwarder's counts into Prometheus families."""

    def __init__(self, stats: DNSStats, forwarder: forward.Forwarder, family: str) -> None:
        self.stats = stats
        self.forwarder = forwarder
        self.family = family

    def collect(self) -> Iterator[core.Metric]:
        s = self.stats
        requests = core.CounterMetricFamily(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family.",
            labels=["server", "zone", "view", "proto", "family", "type"],
        )
        for (zone, proto, qtype), n in sorted(s.requests.items()):
            requests.add_metric([s.server, zone, "", proto, self.family, qtype], n)
        yield requests
        responses = core.CounterMetricFamily(
            "coredns_dns_responses",
            "Counter of response status codes.",
            labels=["server", "zone", "view", "rcode", "plugin"],
        )
        for (zone, rcode, plugin), n in sorted(s.responses.items()):
            responses.add_metric([s.server, zone, "", rcode, plugin], n)
        yield responses
        durations = core.HistogramMetricFamily(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone.",
            labels=["server", "zone", "view", "type"],
        )
        for (zone, proto), hist in sorted(s.durations.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            durations.add_metric([s.server, zone, "", proto], buckets, hist.total)
        yield durations
        hits = core.CounterMetricFamily(
            "coredns_cache_hits", "The count of cache hits.", labels=["server", "view"]
        )
        hits.add_metric([s.server, ""], s.cache_hits)
        yield hits
        misses = core.CounterMetricFamily(
            "coredns_cache_misses", "The count of cache misses.", labels=["server", "view"]
        )
        misses.add_metric([s.server, ""], s.cache_misses)
        yield misses
        fwd = core.CounterMetricFamily(
            "coredns_forward_requests", "Counter of requests made per upstream.", labels=["to"]
        )
        fwd_responses = core.CounterMetricFamily(
            "coredns_forward_responses",
            "Counter of responses received per upstream.",
            labels=["to", "rcode"],
        )
        fwd_failures = core.CounterMetricFamily(
            "coredns_forward_healthcheck_failures",
            "Counter of the number of failed requests per upstream.",
            labels=["to"],
        )
        for to, st in sorted(self.forwarder.stats.items()):
            address = f"{to}:{self.forwarder.port}"
            fwd.add_metric([address], st.requests)
            fwd_failures.add_metric([address], st.failures)
            for code, n in sorted(st.responses.items()):
                fwd_responses.add_metric([address, rcode_name(code)], n)
        yield fwd
        yield fwd_responses
        yield fwd_failures


def rcode_name(rcode: int) -> str:
    names = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
    return names.get(rcode, str(rcode))


def registry(collector: Collector) -> prometheus_client.CollectorRegistry:
    reg = prometheus_client.CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


def app(reg: prometheus_client.CollectorRegistry) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=prometheus_client.generate_latest(reg), headers={"Content-Type": CONTENT_TYPE}
        )

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="OK")

    application = web.Application()
    application.router.add_get("/metrics", metrics)
    application.router.add_get("/health", health)
    return application
