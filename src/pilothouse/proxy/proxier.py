"""The service proxy of one node: Services and EndpointSlices in, nftables rules out.

Informer events only mark a Service key dirty (a slice marks the Service named
by its ``kubernetes.io/service-name`` label) and wake the sync loop. The loop
(:meth:`Proxier.run`, one task, supervised by the agent) waits until both
informers have synced, then syncs:

- the first sync, a sync after a failed one, and one every ``full_period``
  rewrite the whole table in one transaction;
- every other sync re-renders only the dirty Services and writes one
  transaction with just their chains and elements (a sync after one endpoint
  change is a handful of lines), plus the deletion of chains that went stale
  at least a second ago.

Syncs are at least ``min_interval`` apart, so a burst of events becomes one
transaction. A transaction ``nft`` refuses changes nothing; its Services stay
dirty and the next sync, after a back-off, is a full one. On exit the table is
deleted (:meth:`Proxier.cleanup`): the proxy owns it entirely.

After a sync, UDP flows to endpoints that went away are deleted from conntrack
(a UDP "connection" would otherwise keep going to a dead pod), and a
load-balancer port another process of the host already holds is reported as a
Warning event on the Service and not served on this node's addresses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pilothouse.api.meta import Obj
from pilothouse.client import events, informer, lister
from pilothouse.proxy import kernel as kernel_module
from pilothouse.proxy import model, rules, state

log = logging.getLogger(__name__)

SLICE_INDEX = "proxy-service"
MIN_INTERVAL = 0.05
FULL_PERIOD = 3600.0
RETRY_MAX = 30.0
LB_RECHECK = 30.0


def _slice_service_index(s: Obj) -> list[str]:
    name = (s["metadata"].get("labels") or {}).get(model.SERVICE_NAME_LABEL)
    return [f"{s['metadata'].get('namespace', '')}/{name}"] if name else []


@dataclass
class SyncResult:
    full: bool
    services: int
    lines: int
    seconds: float


@dataclass
class _UDPPort:
    cluster_ip: str
    port: int
    node_port: int
    endpoints: frozenset[str] = field(default_factory=frozenset)


class Proxier:
    def __init__(
        self,
        *,
        services: informer.Informer,
        slices: informer.Informer,
        kernel: kernel_module.Kernel,
        config: rules.Config,
        node_ips: tuple[str, ...] = (),
        recorder: events.EventRecorder | None = None,
        min_interval: float = MIN_INTERVAL,
        full_period: float = FULL_PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self.slices = slices
        self.kernel = kernel
        self.config = config
        self.node_ips = node_ips
        self.recorder = recorder
        self.min_interval = min_interval
        self.full_period = full_period
        self.clock = clock
        self.ruleset = state.Ruleset(config)
        self.last: SyncResult | None = None
        self.syncs = 0
        self.failures = 0
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._needs_full = True
        self._last_full = float("-inf")
        self._udp: dict[str, dict[str, _UDPPort]] = {}
        self._lb_conflicts: dict[str, set[tuple[str, str, int]]] = {}
        self._reported: set[tuple[str, ...]] = set()
        self._warned_sctp = False
        slices.add_indexer(SLICE_INDEX, _slice_service_index)
        services.add_handlers(
            on_add=self._service_event,
            on_update=lambda _o, n: self._service_event(n),
            on_delete=self._service_event,
        )
        slices.add_handlers(
            on_add=self._slice_event,
            on_update=self._slice_updated,
            on_delete=self._slice_event,
        )

    # --- events -------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """How many Services changed since the last sync."""
        return len(self._dirty)

    def mark(self, key: str) -> None:
        self._dirty.add(key)
        self._wake.set()

    def _service_event(self, service: Obj) -> None:
        self.mark(lister.key_of(service))

    def _slice_event(self, s: Obj) -> None:
        for key in _slice_service_index(s):
            self.mark(key)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        for key in {*_slice_service_index(old), *_slice_service_index(new)}:
            self.mark(key)

    # --- the loop -----------------------------------------------------------------------
    async def run(self) -> None:
        """Sync until cancelled (the agent's supervisor restarts it if it fails)."""
        await self.services.wait_synced()
        await self.slices.wait_synced()
        if self.config.localhost_nodeports:
            self.kernel.enable_route_localnet()
        self._needs_full = True
        backoff = 0.0
        last_sync = float("-inf")
        while True:
            now = self.clock()
            deadlines = [self._last_full + self.full_period]
            if self.ruleset.stale:
                deadlines.append(min(self.ruleset.stale.values()) + state.STALE_CHAIN_DELAY)
            if self._lb_conflicts:
                deadlines.append(now + LB_RECHECK)
            if not (self._dirty or self._needs_full):
                wait = max(0.0, min(deadlines) - now)
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    for key in self._lb_conflicts:
                        self._dirty.add(key)
            self._wake.clear()
            pause = last_sync + max(self.min_interval, backoff) - self.clock()
            if pause > 0:
                await asyncio.sleep(pause)
            last_sync = self.clock()
            try:
                await self.sync()
                backoff = 0.0
            except kernel_module.NftError as exc:
                backoff = min(RETRY_MAX, max(1.0, backoff * 2))
                log.error("service rules not applied (retrying in %.0fs): %s", backoff, exc)

    async def sync(self, *, full: bool = False) -> SyncResult:
        """One transaction: everything (``full``, or when needed) or the dirty Services."""
        started = self.clock()
        full = full or self._needs_full or started - self._last_full >= self.full_period
        dirty, self._dirty = self._dirty, set()
        keys = {lister.key_of(s) for s in self.services.indexer.list()} if full else dirty
        rendered = {key: self._render(key) for key in sorted(keys)}
        if full:
            plan = self.ruleset.full({k: r for k, r in rendered.items() if r is not None})
        else:
            plan = self.ruleset.partial(rendered, started)
        try:
            if plan.lines:
                await self.kernel.apply(plan.script)
        except BaseException:
            self._dirty |= dirty
            self._needs_full = True
            self.failures += 1
            raise
        plan.commit()
        if full:
            self._needs_full = False
            self._last_full = started
        self.syncs += 1
        await self._clean_udp(rendered)
        self.last = SyncResult(full, len(rendered), plan.lines, self.clock() - started)
        log.debug(
            "synced %s: %d service(s), %d line(s) in %.1f ms",
            "all rules" if full else "changes",
            len(rendered),
            plan.lines,
            self.last.seconds * 1000,
        )
        return self.last

    async def cleanup(self) -> None:
        """Delete the whole table (idempotent)."""
        t = self.config.table
        await self.kernel.apply(f"add table ip {t}\ndelete table ip {t}\n")
        self.ruleset = state.Ruleset(self.config)
        self._needs_full = True

    # --- rendering ----------------------------------------------------------------------
    def _render(self, key: str) -> rules.Rules | None:
        service = self.services.indexer.get(key)
        self._lb_conflicts.pop(key, None)
        if service is None:
            return None
        ports = model.service_ports(service)
        if not ports:
            return None
        slices = self.slices.indexer.by_index(SLICE_INDEX, key)
        out = rules.Rules()
        for sp in ports:
            if sp.protocol == "SCTP" and not self.kernel.sctp:
                if not self._warned_sctp:
                    self._warned_sctp = True
                    log.warning(
                        "this kernel does not track SCTP: SCTP Service ports are not served"
                    )
                continue
            endpoints = model.endpoints_for(sp, slices)
            cat = model.categorize(sp, endpoints, self.config.node_name)
            out.merge(rules.render(sp, cat, self.config, serve_lb_ips=self._lb_ips(service, sp)))
        return out

    def _lb_ips(self, service: Obj, sp: model.ServicePort) -> tuple[str, ...]:
        """The load-balancer addresses to serve: not those of this node where a host
        process already holds the port (reported once, as a Warning event)."""
        serve = []
        for ip in sp.load_balancer_ips:
            if ip in self.node_ips and self.kernel.port_in_use(sp.protocol, sp.port, [ip]):
                conflicts = self._lb_conflicts.setdefault(sp.key, set())
                conflicts.add((ip, sp.protocol, sp.port))
                self._report_conflict(service, sp, ip)
                continue
            serve.append(ip)
        return tuple(serve)

    def _report_conflict(self, service: Obj, sp: model.ServicePort, ip: str) -> None:
        mark = (sp.key, service["metadata"].get("uid", ""), ip, sp.protocol, str(sp.port))
        if mark in self._reported:
            return
        self._reported.add(mark)
        message = (
            f"port {sp.port}/{sp.protocol} is already in use on node {self.config.node_name} "
            f"({ip}): the load balancer does not serve it there until the port is free"
        )
        log.warning("%s: %s", sp.key, message)
        if self.recorder is not None:
            self.recorder.event(service, events.WARNING, "PortInUse", message)

    # --- conntrack ------------------------------------------------------------------------
    async def _clean_udp(self, rendered: dict[str, rules.Rules | None]) -> None:
        for key in rendered:
            service = self.services.indexer.get(key)
            now: dict[str, _UDPPort] = {}
            if service is not None:
                slices = self.slices.indexer.by_index(SLICE_INDEX, key)
                for sp in model.service_ports(service):
                    if sp.protocol != "UDP":
                        continue
                    eps = model.endpoints_for(sp, slices)
                    cat = model.categorize(sp, eps, self.config.node_name)
                    now[sp.port_key] = _UDPPort(
                        sp.cluster_ip, sp.port, sp.node_port,
                        frozenset(e.ip for e in cat.reachable),
                    )  # fmt: skip
            before = self._udp.pop(key, {})
            if now:
                self._udp[key] = now
            for port_key, old in before.items():
                current = now.get(port_key)
                gone = old.endpoints - (current.endpoints if current else frozenset())
                for ip in sorted(gone):
                    await self.kernel.delete_conntrack(
                        ["-p", "udp", "--orig-dst", old.cluster_ip,
                         "--orig-port-dst", str(old.port), "--reply-src", ip]
                    )  # fmt: skip
                    if old.node_port:
                        await self.kernel.delete_conntrack(
                            ["-p", "udp", "--orig-port-dst", str(old.node_port),
                             "--reply-src", ip]
                        )  # fmt: skip
