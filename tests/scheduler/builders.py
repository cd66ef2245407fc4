"""Builders for scheduler unit tests: nodes, pods, and a framework over a bare cache."""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np

from pilothouse.scheduler import algorithm, cache, config, registry, types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.framework import runtime

Obj = dict[str, Any]
_uid = itertools.count(1)


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "32Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    unschedulable: bool = False,
    extra: dict[str, str] | None = None,
) -> Obj:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods), **(extra or {})}
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {types.HOSTNAME_LABEL: name, **(labels or {})}},
        "spec": spec,
        "status": {"capacity": alloc, "allocatable": alloc},
    }


def pod(
    name: str,
    *,
    namespace: str = "default",
    cpu: str | None = None,
    memory: str | None = None,
    labels: dict[str, str] | None = None,
    node_name: str = "",
    priority: int | None = None,
    spec: Obj | None = None,
    init_cpu: str | None = None,
) -> Obj:
    requests = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    container: Obj = {"name": "c", "image": "pause"}
    if requests:
        container["resources"] = {"requests": requests}
    body: Obj = {"containers": [container], **(spec or {})}
    if init_cpu is not None:
        body["initContainers"] = [
            {"name": "i", "image": "pause", "resources": {"requests": {"cpu": init_cpu}}}
        ]
    if node_name:
        body["nodeName"] = node_name
    if priority is not None:
        body["priority"] = priority
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{next(_uid)}",
            "labels": labels or {},
        },
        "spec": body,
        "status": {},
    }


class Harness:
    """A framework over a cache, no API: add nodes and pods, then schedule."""

    def __init__(
        self, profile: config.Profile | None = None, *, seed: int = 1, **handle_kw: Any
    ) -> None:
        self.cache = cache.Cache()
        self.handle = runtime.Handle(cache=self.cache, **handle_kw)
        self.framework = runtime.Framework(
            profile or config.Profile(), registry.default_registry(), self.handle
        )
        self.algorithm = algorithm.Algorithm(self.cache, rng=random.Random(seed))

    def add_nodes(self, *nodes: Obj) -> Harness:
        for n in nodes:
            self.cache.add_node(n)
        return self

    def add_pod(self, obj: Obj, node: str | None = None) -> types.PodInfo:
        if node is not None:
            obj["spec"]["nodeName"] = node
        info = types.make_pod_info(obj)
        self.cache.add_pod(info)
        return info

    def plugin(self, name: str) -> Any:
        return self.framework.plugins[name]

    def schedule(self, obj: Obj, *, assume: bool = True) -> str:
        info = types.make_pod_info(obj)
        result = self.algorithm.schedule(self.framework, fw.CycleState(), info)
        if assume:
            self.cache.assume_pod(info, result.node)
        return result.node

    def fit_error(self, obj: Obj) -> algorithm.FitError:
        info = types.make_pod_info(obj)
        try:
            self.algorithm.schedule(self.framework, fw.CycleState(), info)
        except algorithm.FitError as exc:
            return exc
        raise AssertionError("expected the pod not to fit")

    def filter_mask(self, obj: Obj) -> dict[str, bool]:
        """Feasibility per node name after PreFilter and Filter."""
        info = types.make_pod_info(obj)
        state = fw.CycleState()
        _names, status = self.framework.run_pre_filter(state, info)
        table = self.cache.table
        if not status.is_success():
            return {table.names[r]: False for r in table.valid_rows().tolist()}
        mask, _ = self.framework.run_filter(state, info, table.valid.copy())
        return {table.names[r]: bool(mask[r]) for r in table.valid_rows().tolist()}

    def scores(self, obj: Obj, plugin: str) -> dict[str, int]:
        """One plugin's normalized score for every node (after its PreScore)."""
        info = types.make_pod_info(obj)
        state = fw.CycleState()
        self.framework.run_pre_filter(state, info)
        rows = self.cache.table.valid_rows()
        p = self.framework.plugins[plugin]
        if isinstance(p, fw.PreScorePlugin):
            status = p.pre_score(state, info, rows)
            if status.is_skip():
                return {}
        raw = p.score(state, info, rows)
        out = p.normalize(state, info, rows, np.asarray(raw, dtype=np.int64))
        return {
            self.cache.table.names[r]: int(s)
            for r, s in zip(rows.tolist(), out.tolist(), strict=True)
        }
