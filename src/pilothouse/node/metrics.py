"""What the agent measures: resource use for ``kubectl top``, and its own Prometheus metrics.

:class:`StatsProvider` is the agent's part of upstream's resource-metrics
pipeline (cAdvisor plus the kubelet's Summary API). A sampler task reads every
running container's cgroup counters and the node's every ``interval`` seconds
(10, as metrics-server's default window) and keeps the last two samples of
each, so CPU *rates* (nanocores) come from cumulative CPU time. A container that
starts is sampled at once (the agent's relist pokes the sampler) and again a
second later, so its rate is known within about a second, as cAdvisor's own
housekeeping gives the kubelet's, not one or two windows later.
:meth:`StatsProvider.summary` answers ``GET /stats/summary`` from the latest
samples without touching the runtime, so the API server's fan-out is cheap.

:class:`AgentMetrics` holds the agent's Prometheus metrics in a registry of its
own (not the process-wide default, so several agents in one process — tests,
hollow nodes — each count their own): pod start latency, running pods and
containers, probe results and PLEG relist durations, named as upstream's
kubelet names them so existing dashboards work.

Everything runs on the agent's event loop; only the stats reads go to threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import prometheus_client

from pilothouse.api import meta
from pilothouse.node.runtime import protocol, stats

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ContainerStatsSource = Callable[[str], Awaitable[protocol.ContainerStats]]
NodeStatsSource = Callable[[], protocol.ContainerStats]
# How soon a container without a rate yet is sampled again.
FIRST_RATE_DELAY = 1.0

# Prometheus' classic text format, which every scraper reads (Kubernetes serves this too).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# --- resource usage (the Summary API) ----------------------------------------------------------
@dataclass(frozen=True)
class _Sample:
    timestamp: float
    cpu_ns: int
    working_set: int
    usage: int


@dataclass
class _Series:
    """The last two samples of one container (or the node): enough for a rate."""

    last: _Sample
    previous: _Sample | None = None

    def add(self, sample: _Sample) -> None:
        if sample.timestamp > self.last.timestamp:
            self.previous, self.last = self.last, sample

    def nano_cores(self) -> int | None:
        prev = self.previous
        if prev is None:
            return None
        elapsed = self.last.timestamp - prev.timestamp
        used = self.last.cpu_ns - prev.cpu_ns
        if elapsed <= 0 or used < 0:
            return None  # a counter reset: wait for the next pair
        return round(used / elapsed)

    def cpu(self) -> Obj:
        out: Obj = {
            "time": meta.format_time(self.last.timestamp),
            "usageCoreNanoSeconds": self.last.cpu_ns,
        }
        rate = self.nano_cores()
        if rate is not None:
            out["usageNanoCores"] = rate
        return out

    def memory(self) -> Obj:
        return {
            "time": meta.format_time(self.last.timestamp),
            "workingSetBytes": self.last.working_set,
            "usageBytes": self.last.usage,
        }


def _sample(s: protocol.ContainerStats) -> _Sample:
    return _Sample(s.timestamp, s.cpu_usage_ns, s.memory_working_set, s.memory_usage)


@dataclass
class _Tracked:
    status: protocol.ContainerStatus
    series: _Series


class StatsProvider:
    """Samples container and node usage and serves a trimmed kubelet Summary.

    ``container_stats`` (default: the runtime's) and ``node_stats`` (default:
    /proc) are the sources; tests pass their own to get fixed numbers.
    """

    def __init__(
        self,
        *,
        runtime: protocol.Runtime,
        pods: Callable[[], list[Obj]],
        sandboxes: Mapping[str, protocol.Sandbox],
        node_name: str,
        container_stats: ContainerStatsSource | None = None,
        node_stats: NodeStatsSource | None = None,
        interval: float = 10.0,
    ) -> None:
        self.runtime = runtime
        self.pods = pods
        self.sandboxes = sandboxes  # pod uid → sandbox (the syncer's, kept current by it)
        self.node_name = node_name
        self.container_stats: ContainerStatsSource = container_stats or runtime.container_stats
        self.node_stats: NodeStatsSource = node_stats or stats.read_node_stats
        self.interval = interval
        self._containers: dict[str, _Tracked] = {}
        self._node: _Series | None = None
        self._wake = asyncio.Event()
        # One round at a time: a round replaces the tracked set with what it listed, so a
        # slower round finishing after a newer one would drop what started in between.
        self._round = asyncio.Lock()

    def poke(self) -> None:
        """A container started: sample now rather than at the end of the window."""
        self._wake.set()

    def _next_delay(self) -> float:
        waiting = any(t.series.previous is None for t in self._containers.values())
        return min(self.interval, FIRST_RATE_DELAY) if waiting else self.interval

    async def run(self) -> None:
        """Sample now and every ``interval`` seconds (sooner for new containers, or when
        poked) until cancelled."""
        while True:
            try:
                await self.sample()
            except (protocol.RuntimeError_, OSError) as exc:
                log.warning("sampling resource usage failed: %s", exc)
            except Exception:
                # The sampler must outlive a bad round; the next one may well succeed.
                log.exception("sampling resource usage failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_delay())
            self._wake.clear()

    async def sample(self) -> None:
        """One round: the node and every running container, concurrently. Rounds (the
        loop's, and any a caller asks for) run one after another."""
        async with self._round:
            await self._sample_round()

    async def _sample_round(self) -> None:
        listed = await self.runtime.list_containers()
        running = [c for c in listed if c.state == "running"]
        node_task = asyncio.ensure_future(asyncio.to_thread(self.node_stats))
        results = await asyncio.gather(
            *(self.container_stats(c.id) for c in running), return_exceptions=True
        )
        seen: dict[str, _Tracked] = {}
        for status, result in zip(running, results, strict=True):
            if isinstance(result, BaseException):
                # It exited between listing and reading: it drops out of this round.
                if not isinstance(result, protocol.RuntimeError_ | OSError):
                    log.warning("stats of container %s: %r", status.id, result)
                continue
            tracked = self._containers.get(status.id)
            if tracked is None:
                tracked = _Tracked(status, _Series(_sample(result)))
            else:
                tracked.status = status
                tracked.series.add(_sample(result))
            seen[status.id] = tracked
        self._containers = seen
        node = _sample(await node_task)
        if self._node is None:
            self._node = _Series(node)
        else:
            self._node.add(node)

    def summary(self) -> Obj:
        """The Summary API document from the latest samples (``GET /stats/summary``)."""
        node: Obj = {"nodeName": self.node_name}
        if self._node is not None:
            node["cpu"] = self._node.cpu()
            node["memory"] = self._node.memory()
        by_sandbox = {s.id: s for s in self.sandboxes.values()}
        live = {p["metadata"]["uid"]: p for p in self.pods()}
        pods: dict[str, Obj] = {}
        for tracked in self._containers.values():
            sandbox = by_sandbox.get(tracked.status.sandbox_id)
            if sandbox is None or sandbox.uid not in live:
                continue  # not (or no longer) one of this node's pods
            entry = pods.get(sandbox.uid)
            if entry is None:
                start = (live[sandbox.uid].get("status") or {}).get("startTime")
                entry = pods[sandbox.uid] = {
                    "podRef": {
                        "name": sandbox.name,
                        "namespace": sandbox.namespace,
                        "uid": sandbox.uid,
                    },
                    "startTime": start or meta.format_time(sandbox.created_at),
                    "containers": [],
                }
            entry["containers"].append(
                {
                    "name": tracked.status.name,
                    "startTime": meta.format_time(
                        tracked.status.started_at or tracked.status.created_at
                    ),
                    "cpu": tracked.series.cpu(),
                    "memory": tracked.series.memory(),
                }
            )
        for entry in pods.values():
            entry["containers"].sort(key=lambda c: c["name"])
            entry["cpu"], entry["memory"] = _pod_totals(entry["containers"])
        return {
            "node": node,
            "pods": sorted(
                pods.values(), key=lambda p: (p["podRef"]["namespace"], p["podRef"]["name"])
            ),
        }


def _pod_totals(containers: list[Obj]) -> tuple[Obj, Obj]:
    """A pod's usage as the sum of its containers' (the rate only when every one has it)."""
    cpu: Obj = {
        "time": max(c["cpu"]["time"] for c in containers),
        "usageCoreNanoSeconds": sum(c["cpu"]["usageCoreNanoSeconds"] for c in containers),
    }
    if all("usageNanoCores" in c["cpu"] for c in containers):
        cpu["usageNanoCores"] = sum(c["cpu"]["usageNanoCores"] for c in containers)
    memory: Obj = {
        "time": max(c["memory"]["time"] for c in containers),
        "workingSetBytes": sum(c["memory"]["workingSetBytes"] for c in containers),
        "usageBytes": sum(c["memory"]["usageBytes"] for c in containers),
    }
    return cpu, memory


# --- Prometheus ------------------------------------------------------------------------------
# Upstream's pod start buckets, with finer ones below half a second: pods here
# start in well under 100 ms once their image is present.
POD_START_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2,
    3,
    4,
    5,
    6,
    8,
    10,
    20,
    30,
    45,
    60,
    120,
    180,
    240,
    300,
    360,
    480,
    600,
    900,
    1200,
    1800,
    2700,
    3600,
)
PROBE_TYPES = {"liveness": "Liveness", "readiness": "Readiness", "startup": "Startup"}


class AgentMetrics:
    """The agent's Prometheus metrics (``GET /metrics`` on its port)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.registry = prometheus_client.CollectorRegistry()
        reg = self.registry
        self.pod_start_total = prometheus_client.Histogram(
            "kubelet_pod_start_total_duration_seconds",
            "Duration in seconds to start a pod since creation, including time to pull images, "
            "measured from the pod's creation timestamp to when it is first seen Running via watch",
            buckets=POD_START_BUCKETS,
            registry=reg,
        )
        self.pod_start = prometheus_client.Histogram(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from the agent seeing a pod for the first time to the pod running",
            buckets=POD_START_BUCKETS,
            registry=reg,
        )
        self.running_pods = prometheus_client.Gauge(
            "kubelet_running_pods", "Number of pods that have a running pod sandbox", registry=reg
        )
        self.running_containers = prometheus_client.Gauge(
            "kubelet_running_containers",
            "Number of containers currently running",
            ["container_state"],
            registry=reg,
        )
        self.probes = prometheus_client.Counter(
            "prober_probe_total",
            "Cumulative number of a liveness, readiness or startup probe "
            "for a container by result.",
            ["probe_type", "result", "container", "pod", "namespace", "pod_uid"],
            registry=reg,
        )
        self.pleg_relist = prometheus_client.Histogram(
            "kubelet_pleg_relist_duration_seconds",
            "Duration in seconds for relisting pods in PLEG.",
            registry=reg,
        )
        # Pods first seen before they ran: uid → when first seen. Pods already
        # running when the agent (re)starts are not starts it saw.
        self._pending: dict[str, float] = {}
        self._started: set[str] = set()

    # --- what the agent reports ---------------------------------------------------------------
    def pod_updated(self, pod: Obj) -> None:
        """Every version of this node's pods the agent's watch delivers."""
        uid = pod["metadata"]["uid"]
        if uid in self._started:
            return
        now = self.clock()
        if (pod.get("status") or {}).get("phase") != "Running":
            self._pending.setdefault(uid, now)
            return
        first_seen = self._pending.pop(uid, None)
        self._started.add(uid)
        if first_seen is None:
            return
        self.pod_start.observe(max(0.0, now - first_seen))
        created = meta.parse_time(pod["metadata"].get("creationTimestamp"))
        if created is not None:
            self.pod_start_total.observe(max(0.0, now - created))

    def pod_deleted(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        self._pending.pop(uid, None)
        self._started.discard(uid)

    def probe_result(self, kind: str, pod: Obj, container: Obj, ok: bool) -> None:
        md = pod["metadata"]
        self.probes.labels(
            PROBE_TYPES.get(kind, kind),
            "successful" if ok else "failed",
            container["name"],
            md.get("name", ""),
            md.get("namespace", ""),
            md.get("uid", ""),
        ).inc()

    def relisted(
        self,
        seconds: float,
        containers: Iterable[protocol.ContainerStatus],
        sandboxes: Iterable[protocol.Sandbox],
    ) -> None:
        """A PLEG relist took ``seconds`` and found ``containers``."""
        self.pleg_relist.observe(seconds)
        counts = dict.fromkeys(("created", "running", "exited", "unknown"), 0)
        for c in containers:
            counts[c.state] = counts.get(c.state, 0) + 1
        for state, n in counts.items():
            self.running_containers.labels(state).set(n)
        self.running_pods.set(sum(1 for s in sandboxes if s.state == "ready"))

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return prometheus_client.generate_latest(self.registry)
