"""The scheduling queue (upstream ``internal/queue``): active, backoff and unschedulable pods.

* **activeQ** — a heap in the profile's queue-sort order (PrioritySort: higher
  priority first, then earlier arrival); :meth:`SchedulingQueue.pop` takes from here.
* **backoffQ** — pods that failed recently, each waiting ``initial * 2^(attempts-1)``
  seconds (capped) before going back to activeQ.
* **unschedulable pods** — pods no node fits. A cluster event (node added or
  changed, assigned pod added or deleted, …) moves back the pods rejected by a
  plugin that registered for that event; after five minutes any pod is moved
  back anyway. An event that arrives while a pod is being scheduled sends that
  pod to backoffQ instead of the unschedulable set, so no wake-up is lost.
* **gated pods** (PreEnqueue said no, e.g. scheduling gates) wait until the pod
  itself changes.

The queue also keeps the *nominator*: which pods were nominated to which node
by preemption, so their room is held for them.

Single event loop: every method is synchronous except :meth:`pop`, which waits.
Two timers run as supervised children while the queue runs: the backoff flush and
the periodic move of unschedulable leftovers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from pilothouse import supervisor as supervision
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock
from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw

ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"
IN_FLIGHT = "inFlight"
UNSCHEDULABLE_MAX_DURATION_S = 300.0
UNSCHEDULABLE_FLUSH_INTERVAL_S = 30.0


@dataclass(eq=False)
class QueuedPodInfo:
    """A pod in the queue, with its scheduling history."""

    pod: types.PodInfo
    timestamp: float
    enqueued: float = 0.0  # first seen, for end-to-end latency
    initial_attempt: float | None = None
    attempts: int = 0
    unschedulable_plugins: set[str] = field(default_factory=set)
    gated: bool = False
    gate_status: fw.Status | None = None
    backoff_expiry: float = 0.0
    token: int = 0  # bumps on every (re)insertion; stale heap entries are skipped

    @property
    def key(self) -> str:
        return self.pod.key


SortKey = Callable[[int, float], tuple[float, ...]]


class SchedulingQueue:
    """See the module docstring."""

    def __init__(
        self,
        *,
        sort_key: SortKey = lambda priority, ts: (-priority, ts),
        clock: Clock = DEFAULT_CLOCK,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        pre_enqueue: Callable[[types.PodInfo], fw.Status] | None = None,
        plugin_events: dict[str, list[fw.ClusterEvent]] | None = None,
    ) -> None:
        self.sort_key = sort_key
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.pre_enqueue = pre_enqueue
        self.plugin_events = plugin_events or {}
        self._infos: dict[str, QueuedPodInfo] = {}
        self._where: dict[str, str] = {}
        self._active: list[tuple[tuple[float, ...], int, str, int]] = []
        self._backoff: list[tuple[float, int, str, int]] = []
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._by_plugin: dict[str, set[str]] = {}
        self._no_plugin: set[str] = set()  # unschedulable for no plugin's reason
        self._interest: dict[fw.ClusterEvent, list[str]] = {}
        # Events seen while pods were in flight: (cycle, event).
        self._in_flight_events: list[tuple[int, fw.ClusterEvent]] = []
        self._in_flight = 0
        self._seq = itertools.count()
        self._tokens = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._closed = False
        self.scheduling_cycle = 0
        self._supervisor: supervision.Supervisor | None = None
        self._timer_wakeup = asyncio.Event()
        # nominator
        self._nominated: dict[str, dict[str, types.PodInfo]] = {}
        self._nominated_node: dict[str, str] = {}

    # --- life cycle -------------------------------------------------------------------
    def run(self, supervisor: supervision.Supervisor) -> None:
        """Start the timers (backoff expiry, unschedulable leftovers) as children."""
        if self._supervisor is None:
            self._supervisor = supervisor
            supervisor.start("queue-backoff", self._backoff_loop)
            supervisor.start("queue-leftovers", self._leftover_loop)

    async def close(self) -> None:
        self._closed = True
        self._wakeup.set()
        sup, self._supervisor = self._supervisor, None
        if sup is not None:
            await sup.stop_child("queue-leftovers")
            await sup.stop_child("queue-backoff")

    @property
    def closed(self) -> bool:
        return self._closed

    # --- sizes ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._infos)

    def where(self, key: str) -> str | None:
        return self._where.get(key)

    def counts(self) -> dict[str, int]:
        out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for where in self._where.values():
            out[where] += 1
        return out

    def get(self, key: str) -> QueuedPodInfo | None:
        return self._infos.get(key)

    # --- adding -----------------------------------------------------------------------
    def add(self, pod: types.PodInfo) -> None:
        """A new pending pod (or one seen again)."""
        existing = self._infos.get(pod.key)
        if existing is not None:
            self.update(existing.pod, pod)
            return
        now = self.clock.monotonic()
        qpi = QueuedPodInfo(pod, now, enqueued=now)
        self._infos[pod.key] = qpi
        self._nominate_from_status(pod)
        self._enqueue(qpi)

    def _enqueue(self, qpi: QueuedPodInfo) -> None:
        """Into activeQ, unless PreEnqueue gates it."""
        if self.pre_enqueue is not None:
            status = self.pre_enqueue(qpi.pod)
            if not status.is_success():
                qpi.gated = True
                qpi.gate_status = status
                self._to_unschedulable(qpi)
                return
        qpi.gated = False
        self._to_active(qpi)

    def _drop_location(self, qpi: QueuedPodInfo) -> None:
        where = self._where.pop(qpi.key, None)
        qpi.token = 0  # invalidates heap entries
        if where == IN_FLIGHT:
            self._in_flight -= 1
            if not self._in_flight:
                self._in_flight_events.clear()
        if where == UNSCHEDULABLE:
            self._unschedulable.pop(qpi.key, None)
            self._no_plugin.discard(qpi.key)
            for plugin in qpi.unschedulable_plugins:
                keys = self._by_plugin.get(plugin)
                if keys is not None:
                    keys.discard(qpi.key)

    def _to_active(self, qpi: QueuedPodInfo) -> None:
        self._drop_location(qpi)
        qpi.token = next(self._tokens)
        heapq.heappush(
            self._active,
            (self.sort_key(qpi.pod.priority, qpi.timestamp), next(self._seq), qpi.key, qpi.token),
        )
        self._where[qpi.key] = ACTIVE
        self._wakeup.set()

    def _to_backoff(self, qpi: QueuedPodInfo) -> None:
        self._drop_location(qpi)
        qpi.token = next(self._tokens)
        heapq.heappush(self._backoff, (qpi.backoff_expiry, next(self._seq), qpi.key, qpi.token))
        self._where[qpi.key] = BACKOFF
        self._timer_wakeup.set()

    def _to_unschedulable(self, qpi: QueuedPodInfo) -> None:
        self._drop_location(qpi)
        self._unschedulable[qpi.key] = qpi
        self._where[qpi.key] = UNSCHEDULABLE
        if not qpi.unschedulable_plugins and not qpi.gated:
            self._no_plugin.add(qpi.key)
        for plugin in qpi.unschedulable_plugins:
            self._by_plugin.setdefault(plugin, set()).add(qpi.key)

    def backoff_duration(self, attempts: int) -> float:
        duration = self.initial_backoff
        for _ in range(1, attempts):
            if duration > self.max_backoff - duration:
                return self.max_backoff
            duration += duration
        return min(duration, self.max_backoff)

    # --- popping ----------------------------------------------------------------------
    async def pop(self) -> QueuedPodInfo | None:
        """The next pod to schedule, or None once the queue is closed."""
        while True:
            while self._active:
                _, _, key, token = heapq.heappop(self._active)
                qpi = self._infos.get(key)
                if qpi is None or qpi.token != token or self._where.get(key) != ACTIVE:
                    continue
                self._where[key] = IN_FLIGHT
                self._in_flight += 1
                qpi.token = 0
                qpi.attempts += 1
                if qpi.initial_attempt is None:
                    qpi.initial_attempt = self.clock.monotonic()
                self.scheduling_cycle += 1
                return qpi
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    def done(self, key: str) -> None:
        """The pod left the scheduler's hands (assumed on a node, or given up)."""
        qpi = self._infos.get(key)
        if qpi is not None and self._where.get(key) == IN_FLIGHT:
            self._drop_location(qpi)
            del self._infos[key]

    def requeue(self, qpi: QueuedPodInfo, cycle: int, *, error: bool = False) -> None:
        """A pod that failed: unschedulable, or backoffQ if it failed with an error or an
        event that may help it arrived while it was being scheduled. A pod whose binding
        failed (it had left the queue) comes back too."""
        current = self._infos.get(qpi.key)
        if current is None:
            self._infos[qpi.key] = qpi
        elif current is not qpi:
            return  # replaced while in flight
        qpi.timestamp = self.clock.monotonic()
        qpi.backoff_expiry = qpi.timestamp + self.backoff_duration(qpi.attempts)
        missed = any(c >= cycle and self._interested(qpi, e) for c, e in self._in_flight_events)
        if error or not qpi.unschedulable_plugins or missed:
            self._to_backoff(qpi)
        else:
            self._to_unschedulable(qpi)

    # --- updates and deletes ----------------------------------------------------------
    def update(self, old: types.PodInfo, new: types.PodInfo) -> None:
        qpi = self._infos.get(new.key)
        if qpi is None:
            self.add(new)
            return
        qpi.pod = new
        self._nominate_from_status(new)
        where = self._where.get(new.key)
        if where == ACTIVE:
            self._to_active(qpi)  # priority may have changed
        elif where == UNSCHEDULABLE:
            if qpi.gated:
                self._enqueue(qpi)
                return
            event = pod_update_event(old, new)
            if event is not None and self._interested(qpi, event):
                self._move(qpi)
        elif where == IN_FLIGHT:
            event = pod_update_event(old, new)
            if event is not None:
                self._in_flight_events.append((self.scheduling_cycle, event))

    def delete(self, key: str) -> None:
        qpi = self._infos.pop(key, None)
        if qpi is not None:
            self._drop_location(qpi)
        self.delete_nominated(key)

    # --- cluster events ---------------------------------------------------------------
    def _interested(self, qpi: QueuedPodInfo, event: fw.ClusterEvent) -> bool:
        if not qpi.unschedulable_plugins:
            return True
        for plugin in qpi.unschedulable_plugins:
            for registered in self.plugin_events.get(plugin, ()):
                if registered.matches(event):
                    return True
        return False

    def _move(self, qpi: QueuedPodInfo) -> None:
        if qpi.backoff_expiry > self.clock.monotonic():
            self._to_backoff(qpi)
        else:
            self._to_active(qpi)

    def move_all(self, event: fw.ClusterEvent) -> int:
        """Move unschedulable pods that ``event`` may help; returns how many moved."""
        if self._in_flight:
            self._in_flight_events.append((self.scheduling_cycle, event))
        if not self._unschedulable:
            return 0
        if event.resource == fw.WILDCARD:
            keys = [k for k, q in self._unschedulable.items() if not q.gated]
        else:
            plugins = self._interest.get(event)
            if plugins is None:
                plugins = self._interest[event] = [
                    p
                    for p, registered in self.plugin_events.items()
                    if any(r.matches(event) for r in registered)
                ]
            chosen = set(self._no_plugin)
            for p in plugins:
                chosen |= self._by_plugin.get(p, set())
            keys = list(chosen)
        for key in keys:
            qpi = self._unschedulable.get(key)
            if qpi is not None and not qpi.gated:
                self._move(qpi)
        return len(keys)

    # --- timers -----------------------------------------------------------------------
    def flush_backoff(self) -> None:
        now = self.clock.monotonic()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key, token = heapq.heappop(self._backoff)
            qpi = self._infos.get(key)
            if qpi is not None and qpi.token == token and self._where.get(key) == BACKOFF:
                self._to_active(qpi)

    def flush_unschedulable_leftovers(self) -> None:
        now = self.clock.monotonic()
        stale = [
            q
            for q in self._unschedulable.values()
            if not q.gated and now - q.timestamp > UNSCHEDULABLE_MAX_DURATION_S
        ]
        for qpi in stale:
            self._move(qpi)

    async def _backoff_loop(self) -> None:
        while True:
            self._timer_wakeup.clear()
            self.flush_backoff()
            delay = (
                self._backoff[0][0] - self.clock.monotonic()
                if self._backoff
                else UNSCHEDULABLE_FLUSH_INTERVAL_S
            )
            sleeper = asyncio.ensure_future(self.clock.sleep(max(delay, 0.0)))
            woken = asyncio.ensure_future(self._timer_wakeup.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()

    async def _leftover_loop(self) -> None:
        while True:
            await self.clock.sleep(UNSCHEDULABLE_FLUSH_INTERVAL_S)
            self.flush_unschedulable_leftovers()

    # --- nominator --------------------------------------------------------------------
    def _nominate_from_status(self, pod: types.PodInfo) -> None:
        if pod.nominated_node:
            self.add_nominated(pod, pod.nominated_node)
        elif pod.key in self._nominated_node:
            self.delete_nominated(pod.key)

    def add_nominated(self, pod: types.PodInfo, node: str) -> None:
        self.delete_nominated(pod.key)
        self._nominated.setdefault(node, {})[pod.key] = pod
        self._nominated_node[pod.key] = node

    def delete_nominated(self, key: str) -> None:
        node = self._nominated_node.pop(key, None)
        if node is not None:
            pods = self._nominated.get(node)
            if pods is not None:
                pods.pop(key, None)
                if not pods:
                    del self._nominated[node]

    def nominated_pods(self, node: str) -> list[types.PodInfo]:
        return list((self._nominated.get(node) or {}).values())

    def all_nominated(self) -> list[tuple[str, types.PodInfo]]:
        return [(node, p) for node, pods in self._nominated.items() for p in pods.values()]

    def nominated_node(self, key: str) -> str | None:
        return self._nominated_node.get(key)


def pod_update_event(old: types.PodInfo, new: types.PodInfo) -> fw.ClusterEvent | None:
    """What changed in a pending pod, as an event plugins may care about."""
    action = fw.ActionType(0)
    if old.labels != new.labels:
        action |= fw.ActionType.UPDATE_POD_LABEL
    if old.tolerations != new.tolerations:
        action |= fw.ActionType.UPDATE_POD_TOLERATION
    if old.scheduling_gates != new.scheduling_gates:
        action |= fw.ActionType.UPDATE_POD_SCHEDULING_GATES
    if any(new.requests.get(k, 0) < v for k, v in old.requests.items()):
        action |= fw.ActionType.UPDATE_POD_SCALE_DOWN
    if not action:
        return None
    return fw.ClusterEvent(fw.UNSCHEDULED_POD, action)
