"""Runs one profile's plugins at each extension point (upstream ``framework/runtime``).

A :class:`Framework` is built from a profile (which plugins at which point,
score weights, plugin arguments) and the explicit registry of factories. It
owns one instance per plugin; a plugin that implements several extension
points is called at each of them.

Filters are vectorised: each Filter plugin returns a mask over all node rows,
and the framework remembers, for every row, the first plugin that rejected it
— which is what upstream's per-node ``RunFilterPlugins`` reports — so the
"0/N nodes are available" diagnosis can be built afterwards, only when needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pilothouse.scheduler import cache as cache_module
from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw

if TYPE_CHECKING:
    from pilothouse.client import events, informer, rest
    from pilothouse.scheduler import config

log = logging.getLogger(__name__)

Factory = Callable[[dict[str, Any], "Handle"], fw.Plugin]


@dataclass
class Handle:
    """What plugins may use besides the pod: the cache, the API, and cluster listers."""

    cache: cache_module.Cache
    scheduler_name: str = "default-scheduler"
    client: rest.Client | None = None
    recorder: events.EventRecorder | None = None
    # Listers filled by the scheduler from its informers (empty in unit tests).
    list_pdbs: Callable[[], list[dict[str, Any]]] = list
    namespaces_matching: Callable[[Any], set[str]] = lambda _sel: set()
    nominated_pods: Callable[[str], list[types.PodInfo]] = lambda _node: []
    all_nominated_pods: Callable[[], list[types.PodInfo]] = list
    framework: Framework | None = None
    # The scheduler's informers: plugins add the ones they read (started with the rest).
    informers: informer.InformerFactory | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Diagnosis:
    """Why a pod fits nowhere: each rejected row's status, and who rejected it."""

    node_to_status: dict[int, fw.Status] = field(default_factory=dict)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""


class Framework:
    """One profile's plugins, ready to run."""

    def __init__(
        self, profile: config.Profile, registry: dict[str, Factory], handle: Handle
    ) -> None:
        self.profile = profile
        self.scheduler_name = profile.scheduler_name
        self.handle = handle
        handle.framework = self
        self.percentage_of_nodes_to_score = profile.percentage_of_nodes_to_score
        self.plugins: dict[str, fw.Plugin] = {}
        for name in profile.plugin_names():
            factory = registry.get(name)
            if factory is None:
                raise ValueError(f'plugin "{name}" does not exist')
            self.plugins[name] = factory(profile.plugin_args(name), handle)
        for name in profile.args:
            if name not in self.plugins:
                raise ValueError(f'pluginConfig for plugin "{name}", which is not enabled')
        points = self._expand(profile)

        def at(point: str) -> list[Any]:
            return [self.plugins[name] for name, _weight in points.get(point, [])]

        sorts = at("queueSort")
        if len(sorts) != 1:
            raise ValueError("one queue sort plugin required for profile")
        self.queue_sort: fw.QueueSortPlugin = sorts[0]
        self.pre_enqueue: list[fw.PreEnqueuePlugin] = at("preEnqueue")
        self.pre_filter: list[fw.PreFilterPlugin] = at("preFilter")
        self.filter: list[fw.FilterPlugin] = at("filter")
        self.post_filter: list[fw.PostFilterPlugin] = at("postFilter")
        self.pre_score: list[fw.PreScorePlugin] = at("preScore")
        self.score: list[tuple[fw.ScorePlugin, int]] = [
            (self.plugins[name], weight or 1)  # type: ignore[misc]
            for name, weight in points.get("score", [])
        ]
        self.reserve: list[fw.ReservePlugin] = at("reserve")
        self.pre_bind: list[fw.PreBindPlugin] = at("preBind")
        self.bind: list[fw.BindPlugin] = at("bind")
        if not self.bind:
            raise ValueError("at least one bind plugin is needed")
        self.post_bind: list[fw.PostBindPlugin] = at("postBind")

    def _expand(self, profile: config.Profile) -> dict[str, list[tuple[str, int]]]:
        """Spread multiPoint plugins over the points they implement (upstream's order:
        plugins also named at the point, then multiPoint-only ones, then the rest)."""
        multi = dict(profile.multi_point)
        out: dict[str, list[tuple[str, int]]] = {}
        for point, kind in fw.EXTENSION_POINTS.items():
            specific = profile.points.get(point)
            enabled = specific.enabled if specific else []
            disabled = specific.disabled if specific else set()
            named = {n for n, _ in enabled}
            for name, _ in enabled:
                if not isinstance(self.plugins[name], kind):
                    raise ValueError(f'plugin "{name}" does not extend {point} plugin')
            overrides = [(n, w or multi.get(n, 0)) for n, w in enabled if n in multi]
            from_multi = []
            if "*" not in disabled:
                from_multi = [
                    (n, w)
                    for n, w in profile.multi_point
                    if isinstance(self.plugins[n], kind) and n not in disabled and n not in named
                ]
            rest = [(n, w) for n, w in enabled if n not in multi]
            out[point] = overrides + from_multi + rest
        return out

    def events_to_register(self) -> dict[str, list[fw.ClusterEvent]]:
        return {name: p.events_to_register() for name, p in self.plugins.items()}

    # --- queueing ---------------------------------------------------------------------
    def run_pre_enqueue(self, pod: types.PodInfo) -> fw.Status:
        for plugin in self.pre_enqueue:
            status = plugin.pre_enqueue(pod)
            if not status.is_success():
                return status.with_plugin(plugin.name)
        return fw.SUCCESS

    # --- filtering --------------------------------------------------------------------
    def run_pre_filter(
        self, state: fw.CycleState, pod: types.PodInfo
    ) -> tuple[frozenset[str] | None, fw.Status]:
        names: frozenset[str] | None = None
        for plugin in self.pre_filter:
            result, status = plugin.pre_filter(state, pod)
            if status.is_skip():
                state.skip_filter.add(plugin.name)
                continue
            if not status.is_success():
                return None, status.with_plugin(plugin.name)
            if result is not None and result.node_names is not None:
                names = result.node_names if names is None else names & result.node_names
                if not names:
                    return None, fw.unresolvable(
                        f"node(s) didn't satisfy plugin(s) [{plugin.name}] simultaneously"
                    ).with_plugin(plugin.name)
        return names, fw.SUCCESS

    def run_filter(
        self, state: fw.CycleState, pod: types.PodInfo, mask: fw.Mask
    ) -> tuple[fw.Mask, npt.NDArray[np.int8]]:
        """Apply every Filter plugin; returns the feasible mask and, per row, the index of
        the first plugin that rejected it (-1: none)."""
        first_fail = np.full(len(mask), -1, dtype=np.int8)
        for i, plugin in enumerate(self.filter):
            if plugin.name in state.skip_filter:
                continue
            passed = plugin.filter(state, pod)
            if passed is None:
                continue
            newly = mask & ~passed
            if newly.any():
                first_fail[newly] = i
                mask = mask & passed
        return mask, first_fail

    def explain(
        self, state: fw.CycleState, pod: types.PodInfo, first_fail: npt.NDArray[np.int8]
    ) -> Diagnosis:
        diagnosis = Diagnosis()
        for i, plugin in enumerate(self.filter):
            rows = np.flatnonzero(first_fail == i)
            if len(rows) == 0:
                continue
            diagnosis.unschedulable_plugins.add(plugin.name)
            for row, status in zip(rows.tolist(), plugin.explain(state, pod, rows), strict=True):
                diagnosis.node_to_status[row] = status.with_plugin(plugin.name)
        return diagnosis

    def filter_row(self, pod: types.PodInfo, row: int) -> fw.Status:
        """Run PreFilter and Filter afresh for one node (preemption's what-if)."""
        state = fw.CycleState()
        names, status = self.run_pre_filter(state, pod)
        if not status.is_success():
            return status
        table = self.handle.cache.table
        if names is not None and table.names[row] not in names:
            return fw.unresolvable("node(s) didn't satisfy plugin(s) PreFilter")
        mask = np.zeros(table.capacity, dtype=np.bool_)
        mask[row] = bool(table.valid[row])
        mask, first_fail = self.run_filter(state, pod, mask)
        if mask[row]:
            return fw.SUCCESS
        index = int(first_fail[row])
        if index < 0:
            return fw.unresolvable("node not found")
        plugin = self.filter[index]
        return plugin.explain(state, pod, np.array([row]))[0].with_plugin(plugin.name)

    # --- scoring ----------------------------------------------------------------------
    def run_score(self, state: fw.CycleState, pod: types.PodInfo, rows: fw.Rows) -> fw.Scores:
        for pre in self.pre_score:
            status = pre.pre_score(state, pod, rows)
            if status.is_skip():
                state.skip_score.add(pre.name)
            elif not status.is_success():
                raise SchedulingError(f"running PreScore plugin {pre.name}: {status.message}")
        total = np.zeros(len(rows), dtype=np.int64)
        for plugin, weight in self.score:
            if plugin.name in state.skip_score:
                continue
            scores = plugin.normalize(state, pod, rows, plugin.score(state, pod, rows))
            total += scores * weight
        return total

    # --- reserve and bind -------------------------------------------------------------
    def run_reserve(self, state: fw.CycleState, pod: types.PodInfo, node: str) -> fw.Status:
        for i, plugin in enumerate(self.reserve):
            status = plugin.reserve(state, pod, node)
            if not status.is_success():
                for done in reversed(self.reserve[:i]):
                    done.unreserve(state, pod, node)
                return status.with_plugin(plugin.name)
        return fw.SUCCESS

    def run_unreserve(self, state: fw.CycleState, pod: types.PodInfo, node: str) -> None:
        for plugin in reversed(self.reserve):
            plugin.unreserve(state, pod, node)

    async def run_pre_bind(self, state: fw.CycleState, pod: types.PodInfo, node: str) -> fw.Status:
        for plugin in self.pre_bind:
            status = await plugin.pre_bind(state, pod, node)
            if not status.is_success():
                return status.with_plugin(plugin.name)
        return fw.SUCCESS

    async def run_bind(self, state: fw.CycleState, pod: types.PodInfo, node: str) -> fw.Status:
        status = fw.SKIP
        for plugin in self.bind:
            status = await plugin.bind(state, pod, node)
            if status.is_skip():
                continue
            return status.with_plugin(plugin.name)
        return status

    def run_post_bind(self, state: fw.CycleState, pod: types.PodInfo, node: str) -> None:
        for plugin in self.post_bind:
            plugin.post_bind(state, pod, node)


class SchedulingError(Exception):
    """A plugin failed (not: the pod does not fit)."""
