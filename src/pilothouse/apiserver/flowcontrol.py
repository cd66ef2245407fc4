"""Overload protection: API Priority and Fairness in its simplest form.

Upstream's APF classifies every request by who sends it (FlowSchemas) into a
priority level, and lets each level execute at most its share of the server's
concurrency limit at once. Here the suggested configuration is built in:

=================  =======  ==========================================================
level              shares   who
=================  =======  ==========================================================
exempt             —        ``system:masters`` (admins, the server's own components),
                            health probes: never limited
leader-election    10       kube-controller-manager/scheduler on their Leases
node-high          40       nodes (``system:nodes``) on nodes and Leases
system             30       nodes, everything else
workload-high      40       kube-controller-manager and kube-scheduler
workload-low       100      service accounts
global-default     20       every other authenticated user
catch-all          5        the rest
=================  =======  ==========================================================

A level's limit is its share of the server's limit (``max_requests_inflight`` +
``max_mutating_requests_inflight``, 400 + 200 by default as upstream), rounded
up. A request over its level's limit waits in a short FIFO queue (no fair
queuing between flows: that is the simplification); when the queue is full, or
the request has waited too long, it is rejected with 429 ``TooManyRequests`` and
``Retry-After``, which client-go and our client honour. Long-running requests —
watch, exec, attach, port-forward, proxy, ``logs -f`` — are not counted, as
upstream excludes them.

Saying no costs this server about a sixth of a create (TLS, HTTP parsing), so two
things keep a flood from eating the core the others need (:mod:`.app` does both): a
connection whose identity alone decides its level gets its 429 before metrics,
authentication or routing run; and such a connection that sends again before its
``Retry-After`` is up waits until then, as client-go would have of its own accord.

The seats of every level but ``leader-election`` and ``node-high``
(:data:`ADAPTIVE_LEVELS`) are the most it may use, not what it always gets: the server
is one event loop, and the requests a level's seats admit keep that loop busy so that
every other request waits in its ready queue too — an admin's write as well, exempt as
it is (exempt from seats, not from the loop; a short read, whoever sends it, takes the
loop's fast lane instead: :mod:`.lanes`). With ``adaptive`` (the server's default)
their limit is their nominal seats times a scale that shrinks while the loop lags and
grows back when it does not (:mod:`.adaptivelimit`); a level whose limit shrinks below
what it executes admits no one until enough of its requests finish. What happens to
the excess depends on whose it is:

* people's levels (``global-default``, ``catch-all``) keep the short queue: a flood
  beyond it gets 429 with ``Retry-After`` (issue 12's overload protection);
* the cluster's own components' levels (:data:`COMPONENT_LEVELS`: ``system`` — nodes'
  pod status and Events —, ``workload-high`` — the scheduler's bindings and Events —,
  ``workload-low`` — the controllers, whose ServiceAccounts are there, where upstream
  puts ``kube-system``'s on ``workload-high``: our one queue per level would refuse a
  ReplicaSet's 256-pod batch that upstream's shuffle-sharded queues absorb) get a queue
  as long as their nominal seats on top: what fixed seats would have run waits for a
  seat rather than being refused. A lag their own work causes (a scale test) moves
  their bulk writes from the loop's ready queue, where everyone waits behind them, to
  their level's queue, where only they do — and never turns into 429s for them;
* leader election and node heartbeats (``node-high``: Leases, node status) keep their
  seats: a renewal that waits costs a leader its lease or marks a node unreachable.

Concurrency: everything runs on the server's event loop; a level's counters
change only between awaits, so no lock is needed. The lag monitor
(:meth:`FlowControl.run_adaptive`) is one supervised loop beside the requests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import metrics_core

from pilothouse.api import errors
from pilothouse.apiserver import adaptivelimit

EXEMPT = "exempt"
# (name, nominal concurrency shares), upstream's suggested priority levels.
LEVELS: tuple[tuple[str, int], ...] = (
    ("leader-election", 10),
    ("node-high", 40),
    ("system", 30),
    ("workload-high", 40),
    ("workload-low", 100),
    ("global-default", 20),
    ("catch-all", 5),
)
MASTERS = "system:masters"
NODES = "system:nodes"
SERVICE_ACCOUNTS = "system:serviceaccounts"
AUTHENTICATED = "system:authenticated"
# The levels whose seats follow the event loop's lag (see the module docstring).
ADAPTIVE_LEVELS = frozenset(
    {"system", "workload-high", "workload-low", "global-default", "catch-all"}
)
# Of those, the cluster's components' levels: what their nominal seats would have
# admitted waits for a seat when their limit shrinks, never refused for it.
COMPONENT_LEVELS = frozenset({"system", "workload-high", "workload-low"})
# The least share of their seats the components' levels keep however the loop lags: a
# rollout saturates the loop with work no seat counts (informer handlers, watch fan-out,
# the scheduler's cycles), so their limit sits at the floor for its whole length. At 5 %
# (the scheduler's bindings on 5 seats, 40-50 queued) 30,000 pods came at ~50/s. A
# quarter trades the other way too: at 15 % a GET's tail during the rollout was ~35 %
# shorter and the rollout ~25 % slower (interleaved runs, BENCHMARKS.md "fourth pass").
COMPONENT_FLOOR = 0.25
CONTROL_PLANE_USERS = frozenset({"system:kube-controller-manager", "system:kube-scheduler"})
PROBE_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
PROBE_PREFIXES = ("/healthz/", "/livez/", "/readyz/")
LONG_RUNNING_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy"})
RETRY_AFTER_SECONDS = 1
MESSAGE = "Too many requests, please try again later."


def is_long_running(*, watch: bool, subresource: str, follow: bool) -> bool:
    """Upstream's LongRunningFunc: watches, streams and proxies are not limited."""
    return watch or subresource in LONG_RUNNING_SUBRESOURCES or (subresource == "log" and follow)


def is_probe(path: str) -> bool:
    """``/healthz``, ``/livez``, ``/readyz`` and their checks: exempt for everyone, as
    upstream's ``probes`` FlowSchema makes them (a probe refused under load would take
    a busy server out of service)."""
    return path.rstrip("/") in PROBE_PATHS or path.startswith(PROBE_PREFIXES)


def classify(
    *, user: str, groups: tuple[str, ...], path: str, resource: str, namespace: str
) -> str:
    """The priority level of a request, by upstream's suggested FlowSchemas."""
    if MASTERS in groups or is_probe(path):
        return EXEMPT
    if user in CONTROL_PLANE_USERS:
        if resource in ("leases", "endpoints", "configmaps") and namespace == "kube-system":
            return "leader-election"
        return "workload-high"
    if NODES in groups:
        return "node-high" if resource in ("nodes", "leases") else "system"
    if SERVICE_ACCOUNTS in groups:
        return "workload-low"
    if AUTHENTICATED in groups:
        return "global-default"
    return "catch-all"


def level_of_identity(user: str, groups: tuple[str, ...]) -> str | None:
    """The level when who sends a request decides it alone (None: it depends on what
    is asked too, for nodes and the control plane's components)."""
    if MASTERS in groups:
        return EXEMPT
    if user in CONTROL_PLANE_USERS or NODES in groups:
        return None
    if SERVICE_ACCOUNTS in groups:
        return "workload-low"
    if AUTHENTICATED in groups:
        return "global-default"
    return "catch-all"


@dataclass
class Level:
    """One priority level: how many run, how many wait, and what was rejected."""

    name: str
    nominal: int  # its share of the server's seats
    limit: int  # what it may use now: ``nominal`` scaled by the adaptive limit
    queue_length: int
    executing: int = 0
    waiting: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)
    dispatched: int = 0
    rejected: int = 0
    timed_out: int = 0


class Slot:
    """A seat taken on a level; release it exactly once (``async with``)."""

    __slots__ = ("_control", "_level")

    def __init__(self, control: FlowControl, level: Level | None) -> None:
        self._control = control
        self._level = level

    def release(self) -> None:
        if self._level is not None:
            self._control._release(self._level)
            self._level = None

    async def __aenter__(self) -> Slot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class FlowControl:
    """Per-level concurrency limits with a bounded wait; see the module docstring."""

    def __init__(
        self,
        *,
        max_requests_inflight: int = 400,
        max_mutating_requests_inflight: int = 200,
        queue_length: int = 50,
        max_wait: float = 5.0,
        adaptive: adaptivelimit.AdaptiveLimit | None = None,
    ) -> None:
        total = max_requests_inflight + max_mutating_requests_inflight
        shares = sum(s for _, s in LEVELS)
        self.enabled = total > 0
        self.max_wait = max_wait
        self.levels: dict[str, Level] = {}
        self.adaptive = adaptive if self.enabled else None
        for name, share in LEVELS:
            seats = max(1, math.ceil(total * share / shares))
            queue = queue_length
            if self.adaptive is not None and name in COMPONENT_LEVELS:
                queue += seats
            self.levels[name] = Level(name, seats, seats, queue)
        # The components' levels follow a scale of their own, with the same settings but
        # a higher floor: see COMPONENT_FLOOR.
        self.components_adaptive = (
            dataclasses.replace(self.adaptive, floor=max(self.adaptive.floor, COMPONENT_FLOOR))
            if self.adaptive is not None
            else None
        )
        self._adaptive_levels = [self.levels[name] for name in sorted(ADAPTIVE_LEVELS)]
        self._people_levels = [
            lv for lv in self._adaptive_levels if lv.name not in COMPONENT_LEVELS
        ]
        self._component_levels = [lv for lv in self._adaptive_levels if lv.name in COMPONENT_LEVELS]
        self._busy = asyncio.Event()  # wakes the lag monitor when a seat is taken

    def observe_lag(self, lag: float, own: float | None = None) -> None:
        """One sample of the event loop's lag (seconds): how late a timer fired, and
        ``own``, the part of it the loop's own work made (its CPU time; ``lag`` when not
        given). People's levels follow ``lag`` — whatever makes the loop late, a flood
        of optional work is held back — and the components' levels ``own``: holding
        back the cluster's own work for a lag it did not make costs throughput and
        shortens nothing."""
        if self.adaptive is None or self.components_adaptive is None:
            return
        for scale, levels in (
            (self.adaptive.observe(lag), self._people_levels),
            (self.components_adaptive.observe(lag if own is None else own), self._component_levels),
        ):
            for level in levels:
                level.limit = max(1, math.ceil(level.nominal * scale))
                self._dispatch(level)

    def idle(self) -> bool:
        """No seat of an adaptive level taken and each at its nominal limit: nothing
        to adapt."""
        return all(
            level.executing == 0 and level.limit == level.nominal for level in self._adaptive_levels
        )

    async def run_adaptive(self) -> None:
        """The lag monitor: a supervised loop of the server's, started only with an
        adaptive limit (without one there is nothing to follow, and it returns)."""
        if self.adaptive is None:
            return
        monitor = adaptivelimit.LagMonitor(self.observe_lag, idle=self.idle, busy=self._busy)
        await monitor.run()

    async def acquire(self, level_name: str) -> Slot:
        """A seat on ``level_name``, after a wait if the level is full; raises the 429
        StatusError when the queue is full or the wait exceeded ``max_wait``."""
        if level_name == EXEMPT or not self.enabled:
            return Slot(self, None)
        level = self.levels[level_name]
        if level.executing < level.limit and not level.waiting:
            level.executing += 1
            level.dispatched += 1
            if self.adaptive is not None and level.name in ADAPTIVE_LEVELS:
                self._busy.set()
            return Slot(self, level)
        if len(level.waiting) >= level.queue_length:
            level.rejected += 1
            raise too_many_requests()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        level.waiting.append(turn)
        try:
            await asyncio.wait_for(asyncio.shield(turn), self.max_wait)
        except TimeoutError:
            if turn.done():  # handed a seat just as time ran out: give it back
                self._release(level)
            else:
                turn.cancel()
                _discard(level.waiting, turn)
            level.timed_out += 1
            raise too_many_requests() from None
        except asyncio.CancelledError:  # the client went away while waiting
            if turn.done() and not turn.cancelled():
                self._release(level)
            else:
                turn.cancel()
                _discard(level.waiting, turn)
            raise
        level.dispatched += 1
        return Slot(self, level)

    def shed(self, level_name: str) -> bool:
        """Whether a request of ``level_name`` would be rejected at once (no seat, the
        queue full); it is then counted as rejected. Lets the server answer 429 before
        doing any other work for the request."""
        if level_name == EXEMPT or not self.enabled:
            return False
        level = self.levels[level_name]
        if level.executing < level.limit or len(level.waiting) < level.queue_length:
            return False
        level.rejected += 1
        return True

    def _release(self, level: Level) -> None:
        level.executing -= 1
        self._dispatch(level)

    def _dispatch(self, level: Level) -> None:
        # Free seats go to the first waiters still waiting, in order.
        while level.waiting and level.executing < level.limit:
            turn = level.waiting.popleft()
            if not turn.done():
                level.executing += 1
                turn.set_result(None)


class Collector:
    """The levels as upstream's APF metrics (register it on a Prometheus registry)."""

    def __init__(self, control: FlowControl) -> None:
        self.control = control

    def collect(self) -> Iterator[metrics_core.Metric]:
        levels = list(self.control.levels.values())
        gauges = (
            ("apiserver_flowcontrol_current_executing_requests", "executing", "Requests executing"),
            ("apiserver_flowcontrol_current_inqueue_requests", "waiting", "Requests waiting"),
            ("apiserver_flowcontrol_nominal_limit_seats", "nominal", "Seats of each level"),
            (
                "apiserver_flowcontrol_current_limit_seats",
                "limit",
                "Seats each level may use now (its nominal seats, adapted to the loop's lag)",
            ),
        )
        for name, attr, text in gauges:
            gauge = metrics_core.GaugeMetricFamily(name, text, labels=["priority_level"])
            for level in levels:
                value = getattr(level, attr)
                gauge.add_metric([level.name], len(value) if attr == "waiting" else value)
            yield gauge
        rejected = metrics_core.CounterMetricFamily(
            "apiserver_flowcontrol_rejected_requests",
            "Requests rejected with 429, by priority level and reason",
            labels=["priority_level", "reason"],
        )
        dispatched = metrics_core.CounterMetricFamily(
            "apiserver_flowcontrol_dispatched_requests",
            "Requests that got a seat, by priority level",
            labels=["priority_level"],
        )
        for level in levels:
            rejected.add_metric([level.name, "queue-full"], level.rejected)
            rejected.add_metric([level.name, "time-out"], level.timed_out)
            dispatched.add_metric([level.name], level.dispatched)
        yield rejected
        yield dispatched


def _discard(queue: collections.deque[asyncio.Future[None]], item: asyncio.Future[None]) -> None:
    with contextlib.suppress(ValueError):
        queue.remove(item)


def too_many_requests() -> errors.StatusError:
    """Upstream answers this in plain text; a Status (same code, same words) is what every
    other error here is, and what kubectl and client-go print best."""
    return errors.too_many_requests(MESSAGE, retry_after=RETRY_AFTER_SECONDS)
