"""Controller benchmark: a 1,000-replica Deployment on hollow nodes, then a rollout of it;
and a DaemonSet rolled out across 500 hollow nodes (bench/daemonset_rollout.py).

The API server (SQLite store, durable commits) runs as a child process with no
controllers and no scheduler of its own, so every request crosses real HTTPS.
This process runs, on one event loop, the ReplicaSet and Deployment
controllers (one client) and the hollow nodes that mark pods Running and Ready
and confirm deletions (another client); a third client only observes, through
a pod watch and the Deployment's status. Pods are pinned to one hollow node
through ``spec.template.spec.nodeName`` (no scheduler in the measurement).

Printed, as one JSON object: time until all replicas are available and pod
creations per second through the API; time until the rollout (a new image,
maxSurge/maxUnavailable 25%) completes; API requests per phase, the
controllers' and the hollow nodes' counted apart.

A second measurement, :func:`measure_job`, runs a Job of 1,000 completions with
parallelism 100 on 50 hollow nodes against a fresh server: the Job controller and the
scheduler (one client each) and the hollow nodes, whose containers run ``true`` and
so end at once. Printed: completed pods per second (Job created → Complete), beside
the same server's rate of no-op requests (``GET /version``, 32 at a time) measured in
the same run just before.

Usage: python bench/controllers.py [--replicas 1000] [--nodes 10] [--ds-nodes 500]
           [--job-completions 1000 --job-parallelism 100 --job-nodes 50]
           [--only deployment|daemonset|job]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import daemonset_rollout  # bench/: the DaemonSet part
from pilothouse import supervisor as supervision
from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.controllers import deployment, job, manager, replicaset
from pilothouse.node import hollow


def _resource(group: str, plural: str) -> resources.Resource:
    r = resources.DEFAULT.by_path(group, "v1", plural)
    assert r is not None
    return r


DEPLOYMENTS = _resource("apps", "deployments")
JOBS = _resource("batch", "jobs")
PODS = _resource("", "pods")
NAMESPACES = _resource("", "namespaces")


# --- the server, in its own process ------------------------------------------------------
def serve(data_dir: Path, port: int, scheduler: bool = False) -> None:
    """Child process: the API server (and the scheduler when asked), no controllers."""
    from pilothouse import heap
    from pilothouse.apiserver import serverconfig
    from pilothouse.cli import allinone

    async def main() -> None:
        cfg = serverconfig.ServerConfig(
            data_dir=data_dir,
            bind_address="127.0.0.1",
            https_port=port,
            advertise_address="127.0.0.1",
        )
        cluster = allinone.AllInOne(cfg, allinone.Options(controllers=False, scheduler=scheduler))
        await cluster.start()
        heap.settle()  # as `pilothouse server` does once started
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_server(data_dir: Path, *, scheduler: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    port = testing.free_port()
    extra = ["--serve-scheduler"] if scheduler else []
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(data_dir), str(port), *extra],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, port


# --- measurement ---------------------------------------------------------------------------
class PodCounter:
    """Watches pods; remembers when each was first seen and when it became ready."""

    def __init__(self, client: rest.Client, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.created: dict[str, float] = {}
        self.live: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listing = await self.client.list(PODS, self.namespace)
        rv = listing["metadata"]["resourceVersion"]
        self.task = asyncio.create_task(self._run(rv))

    async def _run(self, rv: str) -> None:
        async for event in self.client.watch(
            PODS, self.namespace, resource_version=rv, timeout_seconds=3600
        ):
            obj = event["object"]
            if event["type"] == "BOOKMARK":
                continue
            name = obj["metadata"]["name"]
            if event["type"] == "ADDED":
                self.created.setdefault(name, time.monotonic())
            if event["type"] == "DELETED" or obj["metadata"].get("deletionTimestamp"):
                self.live.discard(name)
            else:
                self.live.add(name)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def wait_for(check: Any, timeout: float, interval: float = 0.05) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await check():
            return time.monotonic()
        await asyncio.sleep(interval)
    raise TimeoutError("benchmark phase did not finish")


def deployment_obj(replicas: int, node: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ],
                },
            },
        },
    }


async def measure(port: int, data_dir: Path, replicas: int, nodes: int) -> dict[str, Any]:
    cfg = config.load_kubeconfig(data_dir / "kubeconfig.yaml")
    ctl_client = rest.Client(cfg.with_user_agent("bench-controllers"), max_connections=64)
    node_client = rest.Client(cfg.with_user_agent("bench-hollow"), max_connections=64)
    observer = rest.Client(cfg.with_user_agent("bench-observer"))
    per_node = max(110, replicas * 2 // max(1, nodes) + 10)
    sim = hollow.HollowCluster(
        node_client, count=nodes, pods=max(per_node, replicas * 2 + 10), heartbeat=30
    )
    ns = "bench"
    await observer.create(NAMESPACES, {"metadata": {"name": ns}})
    await sim.start()
    node_name = next(iter(sim.nodes))
    cm_supervisor = supervision.Supervisor("controller-manager")
    cm = manager.ControllerManager(
        ctl_client,
        supervisor=cm_supervisor,
        factories={
            "replicaset": replicaset.ReplicaSetController,
            "deployment": deployment.DeploymentController,
        },
    )
    cm_supervisor.start("main", cm.run)
    await asyncio.wait_for(cm.ready.wait(), 30)
    counter = PodCounter(observer, ns)
    await counter.start()

    async def status() -> dict[str, Any]:
        d = await observer.get(DEPLOYMENTS, "bench", ns)
        return d

    def snapshot() -> tuple[int, int]:
        return ctl_client.requests, node_client.requests

    out: dict[str, Any] = {}
    # Phase 1: create and scale up from nothing.
    c0, n0 = snapshot()
    t0 = time.monotonic()
    await observer.create(DEPLOYMENTS, deployment_obj(replicas, node_name, "nginx:1.0"), ns)

    async def all_available() -> bool:
        st = (await status()).get("status") or {}
        return (
            int(st.get("availableReplicas") or 0) == replicas
            and int(st.get("updatedReplicas") or 0) == replicas
        )

    t_avail = await wait_for(all_available, 600)
    first_pods = sorted(counter.created.values())[:replicas]
    t_created = first_pods[-1] if len(first_pods) == replicas else float("nan")
    c1, n1 = snapshot()
    out["scale_up"] = {
        "replicas": replicas,
        "seconds_to_all_created": round(t_created - t0, 3),
        "seconds_to_all_available": round(t_avail - t0, 3),
        "pod_creations_per_s": round(replicas / (t_created - t0), 1),
        "controller_requests": c1 - c0,
        "hollow_node_requests": n1 - n0,
    }
    await asyncio.sleep(1.0)  # let trailing status writes settle before the next phase

    # Phase 2: roll out a new image (RollingUpdate, 25% surge and unavailable).
    c1, n1 = snapshot()
    created_before = len(counter.created)
    t1 = time.monotonic()
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2.0"}]}}}
    }
    await observer.patch(DEPLOYMENTS, "bench", patch, ns, patch_type=rest.STRATEGIC_PATCH)

    async def rolled_out() -> bool:
        d = await status()
        st = d.get("status") or {}
        return (
            int(st.get("observedGeneration") or 0) >= d["metadata"]["generation"]
            and int(st.get("updatedReplicas") or 0) == replicas
            and int(st.get("replicas") or 0) == replicas
            and int(st.get("availableReplicas") or 0) == replicas
        )

    t_rolled = await wait_for(rolled_out, 900)
    c2, n2 = snapshot()
    new_pods = len(counter.created) - created_before
    out["rollout"] = {
        "seconds_to_complete": round(t_rolled - t1, 3),
        "pods_created": new_pods,
        "pods_replaced_per_s": round(new_pods / (t_rolled - t1), 1),
        "controller_requests": c2 - c1,
        "hollow_node_requests": n2 - n1,
    }
    out["requests_per_pod"] = {
        "controllers": round((c2 - c0) / (replicas + new_pods), 2),
        "hollow_nodes": round((n2 - n0) / (replicas + new_pods), 2),
    }

    await counter.stop()
    await cm_supervisor.stop()
    await sim.stop()
    for c in (ctl_client, node_client, observer):
        await c.close()
    return out


# --- a Job of many completions ------------------------------------------------------------
async def noop_rate(client: rest.Client, *, seconds: float = 3.0, concurrency: int = 32) -> float:
    """Requests per second the server answers for ``GET /version`` (no store, no encoding work)."""
    done = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await client.request("GET", "/version")
            done += 1

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - start)


def job_obj(completions: int, parallelism: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bench"},
        "spec": {
            "completions": completions,
            "parallelism": parallelism,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "work",
                            "image": "busybox",
                            "command": ["true"],
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ],
                }
            },
        },
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure_job(
    data_dir: Path, *, completions: int, parallelism: int, nodes: int, server_pid: int
) -> dict[str, Any]:
    from pilothouse.scheduler import scheduler as scheduler_mod

    cfg = config.load_kubeconfig(data_dir / "kubeconfig.yaml")
    ctl_client = rest.Client(cfg.with_user_agent("bench-job-controller"), max_connections=64)
    sched_client = rest.Client(cfg.with_user_agent("bench-scheduler"), max_connections=64)
    node_client = rest.Client(cfg.with_user_agent("bench-hollow"), max_connections=64)
    observer = rest.Client(cfg.with_user_agent("bench-observer"), max_connections=64)
    ns = "bench"
    await observer.create(NAMESPACES, {"metadata": {"name": ns}})
    noop_rps = await noop_rate(observer)
    sim = hollow.HollowCluster(node_client, count=nodes, heartbeat=30, workers=32)
    await sim.start()
    sched = scheduler_mod.Scheduler(sched_client, record_scheduled_events=False)
    sched_task = asyncio.create_task(sched.run())
    cm = manager.ControllerManager(ctl_client, factories={"job": job.JobController})
    cm_task = asyncio.create_task(cm.run())
    await asyncio.wait_for(cm.ready.wait(), 30)
    await asyncio.wait_for(sched.ready.wait(), 30)
    c0, s0, n0 = ctl_client.requests, sched_client.requests, node_client.requests
    server_cpu0, bench_cpu0 = cpu_seconds(server_pid), cpu_seconds(os.getpid())
    t0 = time.monotonic()
    await observer.create(JOBS, job_obj(completions, parallelism), ns)

    async def complete() -> bool:
        status = (await observer.get(JOBS, "bench", ns)).get("status") or {}
        return any(
            c.get("type") == "Complete" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )

    t_done = await wait_for(complete, 600, interval=0.02)
    elapsed = t_done - t0
    server_cpu = cpu_seconds(server_pid) - server_cpu0
    bench_cpu = cpu_seconds(os.getpid()) - bench_cpu0
    final = (await observer.get(JOBS, "bench", ns))["status"]
    pods = await observer.list_all(PODS, ns)
    used_nodes = {p["spec"].get("nodeName") for p in pods["items"]}
    out = {
        "completions": completions,
        "parallelism": parallelism,
        "nodes": nodes,
        "nodes_used": len(used_nodes),
        "succeeded": final.get("succeeded"),
        "pods_created": len(pods["items"]),
        "seconds_to_complete": round(elapsed, 3),
        "pods_completed_per_s": round(completions / elapsed, 1),
        "baseline_noop_requests_per_s": round(noop_rps, 1),
        "completions_vs_noop": round(completions / elapsed / noop_rps, 4),
        "job_controller_requests": ctl_client.requests - c0,
        "scheduler_requests": sched_client.requests - s0,
        "hollow_node_requests": node_client.requests - n0,
        # Cores busy while the Job ran (1.0 = one core): which side held it back.
        "server_cores_busy": round(server_cpu / elapsed, 2),
        "bench_process_cores_busy": round(bench_cpu / elapsed, 2),
    }
    for task in (cm_task, sched_task):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await sim.stop()
    for c in (ctl_client, sched_client, node_client, observer):
        await c.close()
    return out


def run_job_benchmark(completions: int, parallelism: int, nodes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-job-") as tmp:
        data_dir = Path(tmp) / "data"
        proc, _port = start_server(data_dir)
        try:
            return asyncio.run(
                measure_job(
                    data_dir,
                    completions=completions,
                    parallelism=parallelism,
                    nodes=nodes,
                    server_pid=proc.pid,
                )
            )
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)


def run_server(data_dir: Path, body: Any, *, scheduler: bool = False) -> dict[str, Any]:
    proc, port = start_server(data_dir, scheduler=scheduler)
    try:
        result: dict[str, Any] = asyncio.run(body(port))
        return result
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=1000)
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--job-completions", type=int, default=1000)
    p.add_argument("--job-parallelism", type=int, default=100)
    p.add_argument("--job-nodes", type=int, default=50)
    p.add_argument(
        "--ds-nodes", type=int, default=500, help="hollow nodes of the DaemonSet rollout"
    )
    p.add_argument(
        "--only",
        choices=("deployment", "daemonset", "job"),
        help="run one part only (default: all)",
    )
    p.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT"), help=argparse.SUPPRESS)
    p.add_argument("--serve-scheduler", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), int(args.serve[1]), args.serve_scheduler)
        return 0
    result: dict[str, Any] = {}
    if args.only in (None, "deployment"):
        with tempfile.TemporaryDirectory(prefix="pilothouse-bench-ctl-") as tmp:
            data_dir = Path(tmp) / "data"
            result.update(
                run_server(
                    data_dir,
                    lambda port: measure(port, data_dir, args.replicas, args.nodes),
                )
            )
    if args.only in (None, "daemonset"):
        with tempfile.TemporaryDirectory(prefix="pilothouse-bench-ds-") as tmp:
            data_dir = Path(tmp) / "data"
            result["daemonset"] = run_server(
                data_dir,
                lambda port: daemonset_rollout.measure(
                    config.load_kubeconfig(data_dir / "kubeconfig.yaml"), nodes=args.ds_nodes
                ),
                scheduler=True,
            )
    if args.only in (None, "job"):
        result["job"] = run_job_benchmark(
            args.job_completions, args.job_parallelism, args.job_nodes
        )
    result = {
        "benchmark": "controllers",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "setup": {
            "server": "child process, HTTPS, SQLite (durable commits), no controllers; "
            "the scheduler only for the DaemonSet part",
            "bench_process": "the controllers measured (and the scheduler for the Job) and "
            "hollow nodes on one event loop",
            "nodes": args.nodes,
            "pods_pinned_to": "hollow-0 (spec.template.spec.nodeName) for the Deployment; "
            "DaemonSet and Job pods placed by a scheduler",
        },
        **result,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
