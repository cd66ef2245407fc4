"""Scheduler benchmark: upstream's scheduler_perf workloads through the real API.

For each workload a fresh API server (SQLite store, durable commits, the
controllers running, the embedded scheduler off) runs as a child process.
This process creates the nodes, the initial pods (already bound, spread over
the nodes) and the measured pods (pending, ``schedulerName: bench-scheduler``)
through the API, then starts a scheduler on the server's private socket — as
``pilothouse server`` runs its own — and measures until every measured pod's
binding has been acknowledged by the server:

* ``pods_per_s`` — measured pods / (last binding acknowledged - scheduler ready);
* ``latency_p50_ms`` / ``latency_p99_ms`` — per pod, from leaving the active queue
  to its binding acknowledged (scheduling attempt plus the binding write);
* ``scheduler_cpu_ms_per_pod`` — this process's CPU time per measured pod.

Pod and node templates are upstream's (``pod-default.yaml``: 100m / 500Mi;
``node-default.yaml``: 4 cpu, 32Gi, 110 pods). Printed beside: upstream's
published throughput floors and this machine's CPU count.

Usage: python bench/scheduler.py [--quick] [--only SchedulingBasic,...] [--no-events]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy

from pilothouse import heap
from pilothouse import supervisor as supervision
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.scheduler import config as scheduler_config
from pilothouse.scheduler import scheduler

Obj = dict[str, Any]
PODS = resources.Resource("", "v1", "Pod", "pods", True)
NODES = resources.Resource("", "v1", "Node", "nodes", False)
NAMESPACES = resources.Resource("", "v1", "Namespace", "namespaces", False)
SCHEDULER_NAME = "bench-scheduler"
ZONE = "topology.kubernetes.io/zone"

# Upstream's published SchedulingThroughput for these workloads (pods/s, 5000 nodes,
# kube-scheduler on a many-core CI machine): the range the issue quotes for
# SchedulingBasic, and the CI thresholds of performance-config.yaml.
UPSTREAM = {
    "SchedulingBasic": {"published_pods_per_s": "680-810", "ci_threshold_pods_per_s": 270},
    "SchedulingNodeAffinity": {"ci_threshold_pods_per_s": 220},
    "TopologySpreading": {"ci_threshold_pods_per_s": 85},
    "SchedulingPodAntiAffinity": {"ci_threshold_pods_per_s": 70},
}


def pod_template(**extra: Any) -> Obj:
    spec = {
        "schedulerName": SCHEDULER_NAME,
        "containers": [
            {
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10",
                "ports": [{"containerPort": 80}],
                "resources": {
                    "limits": {"cpu": "100m", "memory": "500Mi"},
                    "requests": {"cpu": "100m", "memory": "500Mi"},
                },
            }
        ],
    }
    labels = extra.pop("labels", None)
    spec.update(extra)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": labels or {}}, "spec": spec}


NODE_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {"key": ZONE, "operator": "In", "values": ["zone1", "zone2"]}
                    ]
                }
            ]
        }
    }
}
ANTI_AFFINITY = {
    "podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {
                "labelSelector": {"matchLabels": {"color": "green"}},
                "topologyKey": "kubernetes.io/hostname",
                "namespaces": ["sched-1", "sched-0"],
            }
        ]
    }
}
SPREAD = [
    {
        "maxSkew": 5,
        "topologyKey": ZONE,
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"color": "blue"}},
    }
]


@dataclass
class Workload:
    name: str
    nodes: int
    init_pods: int
    measure_pods: int
    zones: list[str] = field(default_factory=list)
    init_template: Obj = field(default_factory=pod_template)
    measure_template: Obj = field(default_factory=pod_template)
    init_namespace: str = "sched-0"
    measure_namespace: str = "sched-0"


def workloads(quick: bool) -> list[Workload]:
    n = 500 if quick else 5000
    scale = 10 if quick else 1
    return [
        Workload("SchedulingBasic", n, 1000 // scale, 10000 // scale),
        Workload(
            "SchedulingNodeAffinity",
            n,
            1000 // scale,
            5000 // scale,
            zones=["zone1"],
            init_template=pod_template(affinity=NODE_AFFINITY),
            measure_template=pod_template(affinity=NODE_AFFINITY),
        ),
        Workload(
            "TopologySpreading",
            n,
            1000 // scale,
            5000 // scale,
            zones=["moon-1", "moon-2", "moon-3"],
            measure_template=pod_template(
                labels={"color": "blue"}, topologySpreadConstraints=SPREAD
            ),
        ),
        Workload(
            "SchedulingPodAntiAffinity",
            n,
            1000 // scale,
            2000 // scale,
            init_template=pod_template(labels={"color": "green"}, affinity=ANTI_AFFINITY),
            measure_template=pod_template(labels={"color": "green"}, affinity=ANTI_AFFINITY),
            measure_namespace="sched-1",
        ),
    ]


def node_object(name: str, zone: str | None) -> Obj:
    capacity = {"pods": "110", "cpu": "4", "memory": "32Gi"}
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels[ZONE] = zone
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True"}],
            "phase": "Running",
        },
    }


# --- the server child ---------------------------------------------------------------------
def serve(data_dir: Path) -> None:
    """Run an all-in-one server without the embedded scheduler (the bench brings its own)."""
    from pilothouse.apiserver import serverconfig
    from pilothouse.cli import allinone
    from pilothouse.testing import free_port

    async def main() -> None:
        cfg = serverconfig.ServerConfig(
            data_dir=data_dir,
            bind_address="127.0.0.1",
            https_port=free_port(),
            advertise_address="127.0.0.1",
        )
        cluster = allinone.AllInOne(cfg, allinone.Options(controllers=True, scheduler=False))
        await cluster.start()
        heap.settle()  # as `pilothouse server` does once started
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await cluster.stop()

    asyncio.run(main())


@contextlib.contextmanager
def server_process(data_dir: Path) -> Any:
    log = open(data_dir.parent / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError(
                f"server did not start: {(data_dir.parent / 'server.log').read_text()[-2000:]}"
            )
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settle(pid: int, *, idle: float = 0.1, timeout: float = 300.0) -> float:
    """Wait until the server's controllers have caught up with the setup (its CPU use
    falls below ``idle`` of a core over half a second); returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if (cpu_seconds(pid) - before) / 0.5 < idle:
            break
    return time.monotonic() - start


# --- one workload ---------------------------------------------------------------------------
async def bounded(items: list[Any], fn: Any, limit: int = 64) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(item: Any) -> None:
        async with sem:
            await fn(item)

    await asyncio.gather(*(one(i) for i in items))


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def run_workload(
    w: Workload, socket_path: Path, server_pid: int, *, events: bool, profile: str = ""
) -> Obj:
    client = rest.Client(config.local_socket(socket_path), max_connections=128)
    try:
        await client.wait_ready(timeout=60)
        for ns in {w.init_namespace, w.measure_namespace}:
            await client.create(NAMESPACES, {"metadata": {"name": ns}})
        t0 = time.monotonic()
        names = [f"node-{i}" for i in range(w.nodes)]
        zones = w.zones or [None]
        await bounded(
            list(enumerate(names)),
            lambda item: client.create(NODES, node_object(item[1], zones[item[0] % len(zones)])),
        )

        async def create_pod(item: tuple[int, str, Obj, str, str]) -> None:
            i, prefix, template, ns, node = item
            body = json.loads(json.dumps(template))
            body["metadata"]["name"] = f"{prefix}-{i}"
            if node:
                body["spec"]["nodeName"] = node
            await client.create(PODS, body, ns)

        await bounded(
            [
                (i, "init", w.init_template, w.init_namespace, names[i % len(names)])
                for i in range(w.init_pods)
            ],
            create_pod,
        )
        await bounded(
            [
                (i, "pod", w.measure_template, w.measure_namespace, "")
                for i in range(w.measure_pods)
            ],
            create_pod,
        )
        setup_s = time.monotonic() - t0
        settle_s = await settle(server_pid)
        server_cpu0 = cpu_seconds(server_pid)

        sched_client = rest.Client(config.local_socket(socket_path), max_connections=128)
        configuration = scheduler_config.Configuration(
            profiles=[scheduler_config.Profile(scheduler_name=SCHEDULER_NAME)]
        )
        sched_supervisor = supervision.Supervisor("scheduler")
        sched = scheduler.Scheduler(
            sched_client,
            supervisor=sched_supervisor,
            configuration=configuration,
            record_scheduled_events=events,
            freeze_gc_after_sync=True,  # as `pilothouse scheduler` runs
        )
        started = time.monotonic()
        sched_supervisor.start("main", sched.run)
        try:
            await asyncio.wait_for(sched.ready.wait(), 120)
            ready = time.monotonic()
            spies = []
            if profile:  # py-spy both processes for the measured phase (a developer aid)
                for pid, suffix in ((os.getpid(), "scheduler"), (server_pid, "server")):
                    spies.append(
                        subprocess.Popen(
                            [
                                "py-spy",
                                "record",
                                "-p",
                                str(pid),
                                "-d",
                                "5",
                                "-r",
                                "200",
                                "-f",
                                "raw",
                                "-o",
                                f"{profile}-{w.name}-{suffix}.txt",
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
            cpu0 = time.process_time()
            deadline = ready + 600
            while sched.metrics.scheduled < w.measure_pods and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            cpu = time.process_time() - cpu0
            server_cpu = cpu_seconds(server_pid) - server_cpu0
            for spy in spies:
                spy.wait()
            metrics = sched.metrics
        finally:
            await sched_supervisor.stop()
            await sched_client.close()
        pending = await client.list_all(PODS, w.measure_namespace, field_selector="spec.nodeName=")
        elapsed = metrics.last_bound - ready if metrics.last_bound else float("nan")
        latencies = list(metrics.attempt_latency)
        return {
            "nodes": w.nodes,
            "init_pods": w.init_pods,
            "measured_pods": w.measure_pods,
            "scheduled": metrics.scheduled,
            "left_pending": len(pending["items"]),
            "pods_per_s": round(metrics.scheduled / elapsed, 1) if elapsed > 0 else 0.0,
            "latency_p50_ms": round(pct(latencies, 0.50) * 1000, 2),
            "latency_p99_ms": round(pct(latencies, 0.99) * 1000, 2),
            "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
            "scheduler_cpu_ms_per_pod": round(cpu / max(metrics.scheduled, 1) * 1000, 3),
            "server_cpu_ms_per_pod": round(server_cpu / max(metrics.scheduled, 1) * 1000, 3),
            "schedule_s": round(elapsed, 2),
            "scheduler_startup_s": round(ready - started, 2),
            "setup_s": round(setup_s, 1),
            "settle_s": round(settle_s, 1),
            "unschedulable_attempts": metrics.unschedulable,
            "errors": metrics.errors,
            **UPSTREAM.get(w.name, {}),
        }
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="500 nodes and a tenth of the pods")
    parser.add_argument("--only", default="", help="comma-separated workload names")
    parser.add_argument("--no-events", action="store_true", help="do not write Scheduled events")
    parser.add_argument("--profile", default="", help="py-spy the measured phase into PREFIX-*.txt")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    chosen = [w for w in workloads(args.quick) if not args.only or w.name in args.only.split(",")]
    results: Obj = {}
    for w in chosen:
        with tempfile.TemporaryDirectory(prefix="pilothouse-sched-bench-") as tmp:
            data = Path(tmp) / "data"
            with server_process(data) as proc:
                results[w.name] = asyncio.run(
                    run_workload(
                        w,
                        data / "run" / "apiserver.sock",
                        proc.pid,
                        events=not args.no_events,
                        profile=args.profile,
                    )
                )
            print(f"{w.name}: {results[w.name]}", file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "benchmark": "scheduler",
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "numpy": numpy.__version__,
                    "platform": platform.platform(),
                },
                "transport": "API server's Unix socket (as the embedded scheduler); SQLite store",
                "scheduled_events": not args.no_events,
                "workloads": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
