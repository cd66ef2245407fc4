"""The scheduler component: informers in, one scheduling loop, bindings out.

What runs concurrently and what is serialised:

* The informers' tasks feed the cache and the queue (:mod:`.eventhandlers`).
* **One scheduling loop** takes pods from the queue, one at a time, and runs
  the scheduling cycle — filter, score, pick, assume, reserve — without
  awaiting, so every cycle sees a consistent cache. It yields to the event
  loop once it has run pods back to back for ``YIELD_AFTER_S`` (5 ms), so
  informer events and binding answers interleave — not after every pod: in
  `pilothouse server` the loop is shared with the API server, and a turn of a
  busy loop (several ms) per pod held the scheduler to ~150 pods/s at scale.
* **Binding cycles** run as separate tasks, up to ``max_bindings_in_flight`` at
  once; the loop waits only when all slots are taken.
* Failures (unschedulable, errors) requeue the pod at once; the pod's
  ``PodScheduled=False`` condition and the ``FailedScheduling`` event are
  written in the background.

With ``leader_elect``, only the holder of the ``kube-scheduler`` Lease
schedules.

:meth:`Scheduler.run` is the scheduler's own loop, a child of the supervisor it
is given. Each term (all of it, without an election) runs the informers, the
event recorders, the queue's timers and the binding cycles in a nested
supervisor ``term``, stopped as one when the term ends. Given a process-wide
informer factory (the all-in-one server shares one with the controller manager),
the informers are that factory's and outlive the term; the term's handlers are
removed from them when it ends. The informers drop ``managedFields``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from pilothouse import heap
from pilothouse import supervisor as supervision
from pilothouse.api import resources, selectors
from pilothouse.client import events, informer, informerscope, leaderelection, rest
from pilothouse.client.clock import DEFAULT as DEFAULT_CLOCK
from pilothouse.client.clock import Clock
from pilothouse.scheduler import (
    algorithm,
    cache,
    eventhandlers,
    podstatus,
    queue,
    registry,
    types,
)
from pilothouse.scheduler import config as config_module
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LEASE_NAME = "kube-scheduler"  # upstream's name (RBAC grants it by name)
PODS = resources.Resource("", "v1", "Pod", "pods", True)
NODES = resources.Resource("", "v1", "Node", "nodes", False)
NAMESPACES = resources.Resource("", "v1", "Namespace", "namespaces", False)
PRIORITY_CLASSES = resources.Resource(
    "scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False
)
PDBS = resources.Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True)
SERVICES = resources.Resource("", "v1", "Service", "services", True)
REPLICA_SETS = resources.Resource("apps", "v1", "ReplicaSet", "replicasets", True)
STATEFUL_SETS = resources.Resource("apps", "v1", "StatefulSet", "statefulsets", True)
MAX_MESSAGE = 1024
OWNER_SELECTORS_KEPT = 1024
# How long the scheduling loop runs pods back to back before it lets the event loop in.
YIELD_AFTER_S = 0.005


@dataclass
class Metrics:
    """Counters and per-pod latencies (seconds), for tests and benchmarks."""

    attempts: int = 0
    scheduled: int = 0
    unschedulable: int = 0
    errors: int = 0
    preemptions: int = 0
    # From the pod leaving the active queue to its binding being acknowledged.
    attempt_latency: deque[float] = field(default_factory=lambda: deque(maxlen=1_000_000))
    # From the pod entering the queue to its binding being acknowledged.
    e2e_latency: deque[float] = field(default_factory=lambda: deque(maxlen=1_000_000))
    first_bound: float = 0.0
    last_bound: float = 0.0


class Scheduler:
    """See the module docstring."""

    def __init__(
        self,
        client: rest.Client,
        *,
        supervisor: supervision.Supervisor | None = None,
        configuration: config_module.Configuration | None = None,
        plugins: dict[str, runtime.Factory] | None = None,
        leader_elect: bool = False,
        clock: Clock = DEFAULT_CLOCK,
        max_bindings_in_flight: int = 64,
        record_scheduled_events: bool = True,
        freeze_gc_after_sync: bool = False,
        informers: informer.InformerFactory | None = None,
    ) -> None:
        self.client = client
        # A factory shared with other components of the process (started by its owner):
        # each term then takes a scope of it (see _build) instead of a factory of its own.
        self._shared_informers = informers
        # The process's supervisor (a component's child of it); a private one when none
        # is given (a test or a benchmark that runs :meth:`run` as a task of its own).
        self.supervisor = supervisor or supervision.Supervisor("scheduler")
        self._term: supervision.Supervisor | None = None
        self.configuration = configuration or config_module.Configuration()
        self.leader_elect = (
            self.configuration.leader_elect
            if self.configuration.leader_elect is not None
            else leader_elect
        )
        self.clock = clock
        self.max_bindings_in_flight = max_bindings_in_flight
        self.record_scheduled_events = record_scheduled_events
        # The informers' first listing is a heap that lives as long as the process;
        # freezing it keeps full collections from walking it again and again (pauses of
        # hundreds of ms with tens of thousands of pods). Process-wide, so the owner of
        # the process opts in (the `pilothouse scheduler` command does).
        self.freeze_gc_after_sync = freeze_gc_after_sync
        self.metrics = Metrics()
        self.ready = asyncio.Event()
        self._plugin_registry = plugins or registry.default_registry()
        self.recorders = {
            p.scheduler_name: events.EventRecorder(client, component=p.scheduler_name, clock=clock)
            for p in self.configuration.profiles
        }
        self._informers: informer.InformerFactory
        self._build()
        self._pods: informer.Informer | None = None
        self._priority_classes: informer.Informer | None = None
        self._global_default_priority = 0
        # Owner uid → (its resourceVersion, its selector's requirements): every pod of a
        # ReplicaSet asks for the same selector (the spreading defaults), parsed once.
        self._owner_selectors: OrderedDict[str, tuple[str, tuple[selectors.Requirement, ...]]] = (
            OrderedDict()
        )
        self._bind_slots = asyncio.Semaphore(max_bindings_in_flight)

    def _build(self) -> None:
        """A fresh cache, frameworks and queue (again for every leadership term: what a
        former leader knew may be stale)."""
        self.cache = cache.Cache(namespace_labels=self._namespace_labels)
        # Made here so plugins can add the informers they read; started by _run.
        self._informers = (
            informerscope.InformerScope(self._shared_informers)
            if self._shared_informers is not None
            else informer.InformerFactory(self.client, transform=informer.trim_managed_fields)
        )
        self.frameworks: dict[str, runtime.Framework] = {}
        for profile in self.configuration.profiles:
            handle = runtime.Handle(
                cache=self.cache,
                scheduler_name=profile.scheduler_name,
                client=self.client,
                recorder=self.recorders[profile.scheduler_name],
                list_pdbs=self._list_pdbs,
                namespaces_matching=self._namespaces_matching,
                nominated_pods=lambda node: self.queue.nominated_pods(node),
                informers=self._informers,
                extra={"default_selector": self._default_selector},
            )
            self.frameworks[profile.scheduler_name] = runtime.Framework(
                profile, self._plugin_registry, handle
            )
        first = next(iter(self.frameworks.values()))
        plugin_events: dict[str, list[fw.ClusterEvent]] = {}
        for fwk in self.frameworks.values():
            for name, evs in fwk.events_to_register().items():
                plugin_events.setdefault(name, []).extend(evs)
        self.queue = queue.SchedulingQueue(
            sort_key=first.queue_sort.sort_key,
            clock=self.clock,
            initial_backoff=self.configuration.pod_initial_backoff_seconds,
            max_backoff=self.configuration.pod_max_backoff_seconds,
            pre_enqueue=self._pre_enqueue,
            plugin_events=plugin_events,
        )
        self.algorithm = algorithm.Algorithm(self.cache)
        self.handlers = eventhandlers.EventHandlers(self)

    # --- lookups used by plugins and handlers -----------------------------------------
    def _namespace_labels(self, namespace: str) -> dict[str, str] | None:
        inf = self._namespaces
        ns = inf.indexer.get(namespace) if inf is not None else None
        return ((ns or {}).get("metadata") or {}).get("labels") if ns else None

    def _namespaces_matching(self, selector: selectors.LabelSelector) -> set[str]:
        inf = self._namespaces
        if inf is None:
            return set()
        return {
            o["metadata"]["name"]
            for o in inf.indexer.list()
            if selector.matches((o.get("metadata") or {}).get("labels") or {})
        }

    def _list_pdbs(self) -> list[Obj]:
        return self._pdbs.indexer.list() if self._pdbs is not None else []

    def _default_selector(self, pod: types.PodInfo) -> selectors.LabelSelector | None:
        """Upstream's ``DefaultSelector``: what the pod's Services, ReplicaSet and
        StatefulSet select, merged."""
        if self._services is None:
            return None
        merged: dict[str, str] = {}
        for svc in self._services.indexer.list_namespace(pod.namespace):
            sel = (svc.get("spec") or {}).get("selector") or {}
            if sel and selectors.selector_from_set(sel).matches(pod.labels):
                merged.update(sel)
        requirements: list[selectors.Requirement] = []
        for ref in (pod.pod.get("metadata") or {}).get("ownerReferences") or []:
            inf = {"ReplicaSet": self._replica_sets, "StatefulSet": self._stateful_sets}.get(
                ref.get("kind", "")
            )
            if inf is None or not ref.get("controller"):
                continue
            owner = inf.indexer.get_by(pod.namespace, ref.get("name", ""))
            if owner is not None:
                requirements.extend(self._owner_requirements(owner))
        if not merged and not requirements:
            return None
        return (
            selectors.selector_from_set(merged).add(*requirements)
            if merged
            else selectors.LabelSelector(requirements)
        )

    def _owner_requirements(self, owner: Obj) -> tuple[selectors.Requirement, ...]:
        md = owner.get("metadata") or {}
        uid, version = str(md.get("uid") or ""), str(md.get("resourceVersion") or "")
        known = self._owner_selectors.get(uid)
        if known is not None and known[0] == version and uid:
            self._owner_selectors.move_to_end(uid)
            return known[1]
        try:
            found = selectors.from_label_selector_dict(
                (owner.get("spec") or {}).get("selector")
            ).requirements
        except selectors.SelectorError:
            found = ()
        self._owner_selectors[uid] = (version, found)
        while len(self._owner_selectors) > OWNER_SELECTORS_KEPT:
            self._owner_selectors.popitem(last=False)
        return found

    def pod_priority(self, obj: Obj) -> int:
        spec = obj.get("spec") or {}
        if spec.get("priority") is not None:
            return int(spec["priority"])
        # No Priority admission plugin fills spec.priority yet: resolve the class here.
        name = spec.get("priorityClassName")
        if name and self._priority_classes is not None:
            pc = self._priority_classes.indexer.get(name)
            return int((pc or {}).get("value") or 0)
        return self._global_default_priority

    def pod_info(self, obj: Obj) -> types.PodInfo:
        return types.make_pod_info(obj, priority=self.pod_priority(obj))

    def _pre_enqueue(self, pod: types.PodInfo) -> fw.Status:
        fwk = self.frameworks.get(pod.scheduler_name)
        return fwk.run_pre_enqueue(pod) if fwk is not None else fw.SUCCESS

    def _priority_classes_changed(self, *_: Obj) -> None:
        value = 0
        if self._priority_classes is not None:
            for pc in self._priority_classes.indexer.list():
                if pc.get("globalDefault"):
                    value = int(pc.get("value") or 0)
        self._global_default_priority = value

    # --- life cycle -------------------------------------------------------------------
    _namespaces: informer.Informer | None = None
    _pdbs: informer.Informer | None = None
    _services: informer.Informer | None = None
    _replica_sets: informer.Informer | None = None
    _stateful_sets: informer.Informer | None = None

    async def run(self) -> None:
        """Schedule until cancelled (while leading, with leader election)."""
        if self.leader_elect:
            elector = leaderelection.LeaderElector(
                self.client, name=LEASE_NAME, clock=self.clock, release_on_cancel=True
            )
            while True:
                await elector.run(self._run)
                log.warning("scheduler lost leadership; campaigning again")
        else:
            await self._run()

    async def _run(self) -> None:
        if self.queue.closed:
            self._build()
        term = self._term = self.supervisor.nest("term")
        factory = self._informers  # fresh with every term (see _build)
        self.handlers.watch_storage(factory)
        # Priority classes and namespaces first: pods are parsed with them.
        self._priority_classes = factory.informer(PRIORITY_CLASSES)
        self._namespaces = factory.informer(NAMESPACES)
        self._pdbs = factory.informer(PDBS)
        self._priority_classes.add_handlers(
            on_add=self._priority_classes_changed,
            on_update=self._priority_classes_changed,
            on_delete=self._priority_classes_changed,
        )
        self._namespaces.add_handlers(on_update=self.handlers.on_namespace_change)
        factory.start(term)
        try:
            await factory.wait_synced()
            self._services = factory.informer(SERVICES)
            self._replica_sets = factory.informer(REPLICA_SETS)
            self._stateful_sets = factory.informer(STATEFUL_SETS)
            nodes = factory.informer(NODES)
            nodes.add_handlers(
                on_add=self.handlers.on_node_add,
                on_update=self.handlers.on_node_update,
                on_delete=self.handlers.on_node_delete,
            )
            factory.start(term)
            await factory.wait_synced()
            self._pods = factory.informer(PODS)
            self._pods.add_handlers(
                on_add=self.handlers.on_pod_add,
                on_update=self.handlers.on_pod_update,
                on_delete=self.handlers.on_pod_delete,
            )
            factory.start(term)
            await factory.wait_synced()
            for rec in self.recorders.values():
                rec.start(term)
            self.queue.run(term)
            if self.freeze_gc_after_sync:
                gc.collect()  # drop the listing's garbage before freezing the rest
                heap.settle()
            self.ready.set()
            log.info("scheduler running (profiles: %s)", ", ".join(self.frameworks))
            await self._loop()
        finally:
            self.ready.clear()
            await self.queue.close()
            for rec in self.recorders.values():
                await rec.stop()
            self._term = None
            try:
                await self.supervisor.unnest("term")  # informers, binding cycles in flight
            finally:
                if self._shared_informers is not None:
                    await self._informers.stop()  # this term's handlers off the shared ones

    def _spawn(self, coro: Any, name: str) -> None:
        term = self._term
        if term is None:  # the term ended meanwhile: nothing of it may run on
            coro.close()
            return
        term.spawn(coro, name=name)

    async def _loop(self) -> None:
        yielded = time.perf_counter()
        while True:
            qpi = await self.queue.pop()
            if qpi is None:
                return
            try:
                await self.schedule_one(qpi)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling %s failed unexpectedly", qpi.key)
                self.queue.requeue(qpi, self.queue.scheduling_cycle, error=True)
            if time.perf_counter() - yielded >= YIELD_AFTER_S:
                await asyncio.sleep(0)  # let informer events and binding answers in
                yielded = time.perf_counter()

    # --- the scheduling cycle ---------------------------------------------------------
    async def schedule_one(self, qpi: queue.QueuedPodInfo) -> None:
        pod = qpi.pod
        fwk = self.frameworks.get(pod.scheduler_name)
        if fwk is None or pod.terminating or pod.key in self.cache.pods:
            self.queue.done(pod.key)
            return
        started = self.clock.monotonic()
        cycle = self.queue.scheduling_cycle
        self.metrics.attempts += 1
        state = fw.CycleState()
        nominated = [
            (p, node)
            for node, p in self.queue.all_nominated()
            if p.key != pod.key and p.priority >= pod.priority
        ]
        try:
            if nominated:
                with self.cache.with_pods(nominated):
                    result = self.algorithm.schedule(fwk, state, pod)
            else:
                result = self.algorithm.schedule(fwk, state, pod)
        except algorithm.FitError as fit_error:
            await self._unschedulable(fwk, state, qpi, fit_error, cycle)
            return
        except algorithm.NoNodesError as exc:
            self.metrics.unschedulable += 1
            self._failed(fwk, qpi, str(exc), "Unschedulable", cycle)
            return
        except runtime.SchedulingError as exc:
            self.metrics.errors += 1
            self._failed(fwk, qpi, str(exc), "SchedulerError", cycle, error=True)
            return
        node = result.node
        self.cache.assume_pod(pod, node)
        status = fwk.run_reserve(state, pod, node)
        if not status.is_success():
            self.cache.forget_pod(pod.key)
            self.metrics.errors += 1
            self._failed(fwk, qpi, status.message, "SchedulerError", cycle, error=True)
            return
        self.queue.done(pod.key)
        self.queue.delete_nominated(pod.key)
        await self._bind_slots.acquire()
        self._spawn(self._binding_cycle(fwk, state, qpi, node, started), f"bind-{pod.key}")

    async def _unschedulable(
        self,
        fwk: runtime.Framework,
        state: fw.CycleState,
        qpi: queue.QueuedPodInfo,
        fit_error: algorithm.FitError,
        cycle: int,
    ) -> None:
        self.metrics.unschedulable += 1
        nominated: str | None = None
        diagnosis = fit_error.diagnosis
        for plugin in fwk.post_filter:
            nominated, status = await plugin.post_filter(state, qpi.pod, diagnosis.node_to_status)
            if status.is_success():
                self.metrics.preemptions += 1
                break
            diagnosis.post_filter_msg = status.message
            if status.code != fw.Code.UNSCHEDULABLE:
                break
        qpi.unschedulable_plugins = set(diagnosis.unschedulable_plugins)
        self._failed(fwk, qpi, str(fit_error), "Unschedulable", cycle, nominated=nominated)

    async def _binding_cycle(
        self,
        fwk: runtime.Framework,
        state: fw.CycleState,
        qpi: queue.QueuedPodInfo,
        node: str,
        started: float,
    ) -> None:
        pod = qpi.pod
        try:
            status = await fwk.run_pre_bind(state, pod, node)
            prebind_failed = not status.is_success()
            if not prebind_failed:
                status = await fwk.run_bind(state, pod, node)
            if not status.is_success():
                self.cache.forget_pod(pod.key)
                fwk.run_unreserve(state, pod, node)
                self.metrics.errors += 1
                self._failed(
                    fwk,
                    qpi,
                    f'running PreBind plugin "{status.plugin}": {status.message}'
                    if prebind_failed
                    else f"Binding rejected: {status.message}",
                    "SchedulerError",
                    self.queue.scheduling_cycle,
                    error=True,
                )
                self.queue.move_all(eventhandlers.ASSIGNED_POD_DELETE)
                return
            self.cache.finish_binding(pod.key)
            now = self.clock.monotonic()
            m = self.metrics
            m.scheduled += 1
            m.attempt_latency.append(now - started)
            m.e2e_latency.append(now - qpi.enqueued)
            m.last_bound = now
            if not m.first_bound:
                m.first_bound = now
            if self.record_scheduled_events:
                self.recorders[fwk.scheduler_name].event(
                    pod.pod,
                    events.NORMAL,
                    "Scheduled",
                    f"Successfully assigned {pod.key} to {node}",
                )
            fwk.run_post_bind(state, pod, node)
        finally:
            self._bind_slots.release()

    # --- failures ---------------------------------------------------------------------
    def _failed(
        self,
        fwk: runtime.Framework,
        qpi: queue.QueuedPodInfo,
        message: str,
        reason: str,
        cycle: int,
        *,
        nominated: str | None = None,
        error: bool = False,
    ) -> None:
        pod = qpi.pod
        current = self._pods.indexer.get(pod.key) if self._pods is not None else pod.pod
        if current is None or (current.get("spec") or {}).get("nodeName"):
            self.queue.done(pod.key)  # deleted, or bound by someone else meanwhile
            return
        if nominated:
            self.queue.add_nominated(pod, nominated)
        elif nominated == "":
            self.queue.delete_nominated(pod.key)
        self.queue.requeue(qpi, cycle, error=error)
        message = message[:MAX_MESSAGE]
        self.recorders[fwk.scheduler_name].event(
            current, events.WARNING, "FailedScheduling", message
        )
        self._spawn(
            podstatus.set_unschedulable(self.client, current, reason, message, nominated),
            f"status-{pod.key}",
        )
