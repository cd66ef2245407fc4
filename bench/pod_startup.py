"""Pod start-up: from `kubectl create`-equivalent to Running (seen by a watch), with real containers.

Runs `pilothouse server --disable-agent` and a separate `pilothouse agent`
process (joined with the server's token, so its memory can be measured on its
own), imports a busybox image built from Debian's busybox-static, then:

* ``p50_ms``/``p99_ms``: 100 pods created one after another, each timed from
  the create request to the watch event that shows it Running;
* ``burst_100_s``: 100 pods created at once, until all are Running;
* ``agent_rss_mb``: the agent process's RSS with those 100 pods running
  (and ``agent_idle_rss_mb`` before any pod);
* ``baseline_ms``: in the same run, the bare steps a pod start needs on this
  machine — network namespace, CNI bridge ADD, overlay mount, ``crun run`` —
  without pilothouse's API, scheduler, agent or conmon.

Needs root. Usage: sudo .venv/bin/python bench/pod_startup.py [--pods 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.node.runtime.images import ImageStore, testimage

PODS = resources.DEFAULT.by_path("", "v1", "pods")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
NODES = resources.DEFAULT.by_path("", "v1", "nodes")
assert PODS and NS and NODES


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}],
        },
    }


class RunningWatcher:
    """One watch on the namespace; resolves a future when a pod is first seen Running.

    Also notes when each pod is first seen bound to the node (``bound``), to split
    the start-up into scheduling and the node's part."""

    def __init__(self, client: rest.Client, ns: str) -> None:
        self.client = client
        self.ns = ns
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.bound: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    def expect(self, name: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[name] = fut
        return fut

    async def run(self) -> None:
        async for event in self.client.watch(PODS, self.ns, timeout_seconds=3600):
            obj = event.get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            if (obj.get("spec") or {}).get("nodeName") and name not in self.bound:
                self.bound[name] = time.perf_counter()
            if (obj.get("status") or {}).get("phase") == "Running":
                fut = self.waiting.pop(name, None)
                if fut is not None and not fut.done():
                    fut.set_result(time.perf_counter())


async def baseline(n: int, tmp: Path) -> dict[str, Any]:
    from pilothouse.node.runtime import baseline as runtime_baseline
    from pilothouse.node.runtime.crun import CrunRuntime

    images = ImageStore(tmp / "baseline-images")
    await images.import_archive(tmp / "busybox.tar")
    image = images.get("busybox:1.36")
    assert image is not None
    rt = CrunRuntime(
        tmp / "baseline-runtime",
        images=images,
        pod_cidr="10.199.251.0/24",
        bridge="phbench0",
        run_dir=Path("/run/phbench"),
        cgroup_root="/pilothouse-bench",
    )
    await rt.start()
    try:
        return await runtime_baseline.measure_baseline(rt, image, n)
    finally:
        await rt.close()
        subprocess.run(["ip", "link", "delete", "phbench0"], capture_output=True)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pilothouse-podbench-") as tmp_s:
        tmp = Path(tmp_s)
        layout = testimage.build_busybox_oci(tmp / "layout", tag="busybox:1.36")
        testimage.oci_archive(layout, tmp / "busybox.tar")
        base = await baseline(20, tmp)
        srv = testing.ServerProcess(tmp / "server").start(timeout=60)
        agent_dir = tmp / "agent-node"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pilothouse.cli.main",
                "images",
                "import",
                str(tmp / "busybox.tar"),
                "--data-dir",
                str(agent_dir),
            ],
            check=True,
            capture_output=True,
        )
        agent_log = (tmp / "agent.log").open("wb")
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pilothouse.cli.main",
                "agent",
                "--server",
                srv.url,
                "--token-file",
                str(tmp / "server" / "token"),
                "--data-dir",
                str(agent_dir),
                "--node-name",
                "bench-node",
                "--address",
                "127.0.0.1",
            ],
            stdout=agent_log,
            stderr=subprocess.STDOUT,
        )
        client = rest.Client(config.load_kubeconfig(srv.kubeconfig), max_connections=128)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    node = await client.get(NODES, "bench-node")
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in node["status"]["conditions"]
                    ):
                        break
                except Exception:
                    pass
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise RuntimeError((tmp / "agent.log").read_text()[-3000:])
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            idle_rss = rss_mb(agent.pid)
            await client.create(NS, {"metadata": {"name": "bench"}})
            watcher = RunningWatcher(client, "bench")
            watcher.task = asyncio.create_task(watcher.run())
            await asyncio.sleep(0.3)
            latencies, bound = [], []
            for i in range(args.pods):
                name = f"seq-{i}"
                fut = watcher.expect(name)
                t0 = time.perf_counter()
                await client.create(PODS, pod(name), "bench")
                latencies.append((await asyncio.wait_for(fut, 60) - t0) * 1000)
                bound.append((watcher.bound[name] - t0) * 1000)
            await client.request(
                "DELETE", "/api/v1/namespaces/bench/pods", body={"gracePeriodSeconds": 1}
            )
            await asyncio.sleep(5)
            futs = [watcher.expect(f"burst-{i}") for i in range(args.pods)]
            t0 = time.perf_counter()
            await asyncio.gather(
                *(client.create(PODS, pod(f"burst-{i}"), "bench") for i in range(args.pods))
            )
            done = await asyncio.wait_for(asyncio.gather(*futs), 180)
            burst = max(done) - t0
            await asyncio.sleep(2)
            busy_rss = rss_mb(agent.pid)
            watcher.task.cancel()
            await client.delete(NS, "bench")
            deadline = time.monotonic() + 120
            while (await client.list(PODS, "bench"))["items"] and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
        finally:
            await client.close()
            agent.terminate()
            agent.wait(30)
            srv.stop()
            agent_log.close()
    raw = base["raw_ms"]
    baseline_ms = (
        sum(raw[k]["p50"] for k in raw if k != "total")
        if "total" not in raw
        else raw["total"]["p50"]
    )
    p50 = statistics.median(latencies)
    return {
        "p50_ms": round(p50, 1),
        "p99_ms": round(pct(latencies, 99), 1),
        "burst_100_s": round(burst, 2),
        "agent_idle_rss_mb": round(idle_rss, 1),
        "agent_rss_mb": round(busy_rss, 1),
        "agent_rss_budget_mb": 80 + 2 * args.pods,
        "baseline_ms": round(baseline_ms, 1),
        "p50_vs_baseline": round(p50 / baseline_ms, 2),
        # create → seen bound (API + scheduler + binding): the rest is the node's part
        "bound_p50_ms": round(statistics.median(bound), 1),
        "baseline_steps_p50_ms": {k: v["p50"] for k, v in raw.items()},
        "runtime_api_p50_ms": {k: v["p50"] for k, v in base["runtime_ms"].items()},
        "pods": args.pods,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=100)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/pod_startup.py runs real containers: run it as root")
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
