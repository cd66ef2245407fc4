"""Placements: where the scheduler puts each pod, as one digest per workload, to compare
two builds (a change meant to make the scheduler cheaper must not move a pod).

Runs in process, no API: ``bench/scheduler.py``'s four workloads at their quick sizes
(500 nodes) and a Deployment's pods under the spreading defaults on 1,000 unzoned and
zoned nodes (the owner's selector given to the plugin), each scheduled one pod after the
other through the test harness (``tests/scheduler/builders.py``) with a seeded tie-break.
Prints one JSON object: per workload the digest of every placement and the CPU time a
pod's cycle took (noisy: compare digests, not times).

Usage: python bench/placements.py   (PYTHONPATH=<another build's src> for the other side)
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from pilothouse.api import selectors

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


builders = _load("placements_builders", ROOT / "tests" / "scheduler" / "builders.py")
bench = _load("placements_bench_scheduler", ROOT / "bench" / "scheduler.py")


def run(workload: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    h = builders.Harness(seed=7, **({"extra": extra} if extra else {}))
    zones = workload.zones
    for i in range(workload.nodes):
        h.cache.add_node(bench.node_object(f"node-{i}", zones[i % len(zones)] if zones else None))
    for i in range(workload.init_pods):
        obj = copy.deepcopy(workload.init_template)
        obj["metadata"].update(name=f"init-{i}", namespace=workload.init_namespace, uid=f"i{i}")
        obj["spec"]["nodeName"] = f"node-{i % workload.nodes}"
        h.add_pod(obj)
    digest = hashlib.sha1()
    start = time.process_time()
    for i in range(workload.measure_pods):
        obj = copy.deepcopy(workload.measure_template)
        obj["metadata"].update(name=f"m-{i}", namespace=workload.measure_namespace, uid=f"m{i}")
        digest.update(h.schedule(obj).encode() + b"\n")
    cpu = (time.process_time() - start) / workload.measure_pods
    return {
        "pods": workload.measure_pods,
        "digest": digest.hexdigest(),
        "cpu_us_per_pod": round(cpu * 1e6),
    }


def main() -> None:
    out: dict[str, Any] = {"bench": "placements", "workloads": {}}
    for workload in bench.workloads(quick=True):
        out["workloads"][workload.name] = run(workload)
    selector = selectors.from_label_selector_dict({"matchLabels": {"app": "big"}})
    owner = {"default_selector": lambda _pod: selector}
    for name, zones in (
        ("DeploymentDefaults", []),
        ("DeploymentDefaultsZoned", ["z1", "z2", "z3"]),
    ):
        deployment = bench.Workload(
            name,
            1000,
            0,
            3000,
            zones=zones,
            measure_template=bench.pod_template(labels={"app": "big"}),
        )
        out["workloads"][name] = run(deployment, owner)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
