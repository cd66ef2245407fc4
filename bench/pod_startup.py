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
* ``cold_p50_ms``: ``--cold-pods`` (20) pods, one after another, each of its own image
  (~5 MB, one layer shared with no other) that the node must pull through a docker.io
  mirror (``--private-registry``; Debian's docker-registry on 127.0.0.1), create to
  Running; beside ``skopeo_p50_ms``, ``skopeo copy`` of each same image from the same
  registry into a directory, in the same run. Goal: cold ≤ 1.5 x skopeo + the warm p50.

Needs root. Usage: sudo .venv/bin/python bench/pod_startup.py [--pods 100] [--cold-pods 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.node.runtime.images import ImageStore, standin, testimage

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


def pod(name: str, image: str = "busybox:1.36") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}],
        },
    }


class Registry:
    """Debian's docker-registry on a free 127.0.0.1 port, storage in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        port = testing.free_port()
        self.host = f"127.0.0.1:{port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "config.yml"
        config.write_text(
            "version: 0.1\nlog: {level: warn, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {workdir / 'data'}}}}}\n"
            f"http: {{addr: {self.host}}}\n"
        )
        self.proc = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def push_cold_images(registry: Registry, tmp: Path, n: int) -> list[str]:
    """``n`` images of ~5 MB that share no layer, pushed as library/cold-<i>:1."""
    names = []
    for i in range(n):
        layer = standin.busybox_with(f"cold-{i}", 4 << 20)
        layout = testimage.write_oci_layout(tmp / f"cold-{i}", [layer], tag=f"cold-{i}:1")
        await testimage.push_oci_layout(layout, f"{registry.host}/library/cold-{i}:1")
        names.append(f"cold-{i}:1")
    return names


def skopeo_copies(registry: Registry, names: list[str], tmp: Path) -> list[float]:
    """``skopeo copy`` of each image from the registry into a directory: the baseline."""
    out = []
    tmp.mkdir(parents=True, exist_ok=True)  # skopeo makes the last directory only
    for name in names:
        dest = tmp / f"skopeo-{name.replace(':', '-')}"
        t0 = time.perf_counter()
        subprocess.run(
            ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
             f"docker://{registry.host}/library/{name}", f"dir:{dest}"],
            check=True, capture_output=True,
        )  # fmt: skip
        out.append((time.perf_counter() - t0) * 1000)
    return out


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
        registry = Registry(tmp / "registry")
        cold_names = await push_cold_images(registry, tmp / "cold", args.cold_pods)
        (tmp / "registries.yaml").write_text(
            f'mirrors:\n  docker.io:\n    endpoint: ["http://{registry.host}"]\n'
        )
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
                "--private-registry",
                str(tmp / "registries.yaml"),
                "--disable-default-registry-endpoint",
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
            await client.request(
                "DELETE", "/api/v1/namespaces/bench/pods", body={"gracePeriodSeconds": 1}
            )
            await asyncio.sleep(5)
            cold = []
            for i, image in enumerate(cold_names):  # each pull is cold: a layer no one has
                name = f"cold-{i}"
                fut = watcher.expect(name)
                t0 = time.perf_counter()
                await client.create(PODS, pod(name, image), "bench")
                cold.append((await asyncio.wait_for(fut, 120) - t0) * 1000)
            skopeo = skopeo_copies(registry, cold_names, tmp / "skopeo")
            watcher.task.cancel()
        finally:
            # Whatever happened, the pods go before the agent stops: containers outlive it.
            with contextlib.suppress(Exception):
                await client.delete(NS, "bench")
                deadline = time.monotonic() + 120
                while (await client.list(PODS, "bench"))["items"] and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
            await client.close()
            agent.terminate()
            agent.wait(30)
            srv.stop()
            registry.stop()
            agent_log.close()
    raw = base["raw_ms"]
    baseline_ms = (
        sum(raw[k]["p50"] for k in raw if k != "total")
        if "total" not in raw
        else raw["total"]["p50"]
    )
    p50 = statistics.median(latencies)
    cold_p50, skopeo_p50 = statistics.median(cold), statistics.median(skopeo)
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
        "cold_p50_ms": round(cold_p50, 1),
        "cold_p99_ms": round(pct(cold, 99), 1),
        "skopeo_p50_ms": round(skopeo_p50, 1),
        "cold_goal_ms": round(1.5 * skopeo_p50 + p50, 1),
        "cold_image_mb": 5,
        "cold_pods": args.cold_pods,
        "pods": args.pods,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--cold-pods", type=int, default=20, help="pods of distinct images")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/pod_startup.py runs real containers: run it as root")
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
