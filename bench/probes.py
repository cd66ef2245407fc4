"""Probes at scale: 200 containers on one node, each with a 1 s readiness probe.

Runs `pilothouse server --disable-agent` and a separate `pilothouse agent`
process (real containers: crun under conmon, the CNI bridge), imports a
busybox image built from Debian's busybox-static, then creates ``--pods``
pods of ``--containers`` containers each. Containers alternate (``--exec-share``
sets the mix) between

* ``httpd`` on a port of its own with an ``httpGet`` readiness probe, and
* ``sleep`` with an ``exec`` readiness probe (``true``, run by ``crun exec``);

every probe has ``periodSeconds: 1``. Once every pod is Ready and a warm-up
has passed, it measures over ``--window`` seconds:

* ``agent_cpu_share``: the agent process's own CPU time (utime + stime from
  /proc/<pid>/stat) per second of wall time, in cores (1.0 = one core busy);
* ``exec_children_cpu_share``: the CPU of the processes the agent ran and
  reaped in the window (the ``crun exec`` of exec probes: cutime + cstime);
* ``machine_cpu_busy``: the whole machine's busy share (/proc/stat), for context;
* ``probes_per_s`` and ``lateness_ms``: from the agent's own measurement
  (``pilothouse_prober_probe_lateness_seconds`` on its /metrics): how long after
  its scheduled time each probe started, p50/p90/p99/max over the last minute.

Needs root. Usage: sudo .venv/bin/python bench/probes.py [--pods 20 --containers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.node.runtime.images import testimage


def _resource(plural: str) -> resources.Resource:
    found = resources.DEFAULT.by_path("", "v1", plural)
    assert found is not None
    return found


PODS, NS, NODES = _resource("pods"), _resource("namespaces"), _resource("nodes")
NODE = "probe-node"
LATENESS = "pilothouse_prober_probe_lateness_seconds"
TICKS = os.sysconf("SC_CLK_TCK")


def pod(name: str, containers: int, exec_share: float) -> dict[str, Any]:
    specs = []
    exec_every = round(1 / exec_share) if exec_share > 0 else 0
    for i in range(containers):
        # exec_share 0.5: every other container is probed by exec; 0: none; 1: all.
        use_exec = exec_share >= 1 or (exec_every and i % exec_every == 0)
        if use_exec:
            command = ["sleep", "3600"]
            probe: dict[str, Any] = {"exec": {"command": ["true"]}}
        else:
            port = 8000 + i
            command = ["sh", "-c", f"mkdir -p /w && echo ok > /w/index.html && exec httpd -f -p {port} -h /w"]  # fmt: skip
            probe = {"httpGet": {"path": "/", "port": port}}
        probe.update(periodSeconds=1, timeoutSeconds=1, failureThreshold=3)
        specs.append(
            {
                "name": f"c{i}",
                "image": "busybox:1.36",
                "command": command,
                "readinessProbe": probe,
            }
        )
    return {
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "nodeName": NODE, "containers": specs},
    }


def proc_cpu(pid: int) -> tuple[float, float]:
    """(own, reaped children) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def scrape(session: aiohttp.ClientSession) -> dict[str, float]:
    """The agent's metrics we need, by sample name (and quantile)."""
    async with session.get("https://127.0.0.1:10250/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {"failed": 0.0, "successful": 0.0}
    for line in text.splitlines():
        if line.startswith(LATENESS):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
        elif line.startswith("prober_probe_total{"):
            name, value = line.rsplit(" ", 1)
            result = "failed" if 'result="failed"' in name else "successful"
            out[result] += float(value)
    return out


async def all_ready(client: rest.Client, ns: str) -> int:
    items = (await client.list(PODS, ns))["items"]
    return sum(
        1
        for p in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pilothouse-probebench-") as tmp_s:
        tmp = Path(tmp_s)
        layout = testimage.build_busybox_oci(tmp / "layout", tag="busybox:1.36")
        testimage.oci_archive(layout, tmp / "busybox.tar")
        srv = testing.ServerProcess(tmp / "server").start(timeout=60)
        agent_dir = tmp / "agent-node"
        subprocess.run(
            [sys.executable, "-m", "pilothouse.cli.main", "images", "import",
             str(tmp / "busybox.tar"), "--data-dir", str(agent_dir)],
            check=True, capture_output=True,
        )  # fmt: skip
        agent_log = (tmp / "agent.log").open("wb")
        agent = subprocess.Popen(
            [sys.executable, "-m", "pilothouse.cli.main", "agent", "--server", srv.url,
             "--token-file", str(tmp / "server" / "token"), "--data-dir", str(agent_dir),
             "--node-name", NODE, "--address", "127.0.0.1"],
            stdout=agent_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = rest.Client(config.load_kubeconfig(srv.kubeconfig), max_connections=64)
        pki = tmp / "server" / "pki"
        tls = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        tls.check_hostname = False
        tls.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        metrics = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls))
        n_pods, per_pod = args.pods, args.containers
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    node = await client.get(NODES, NODE)
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in node["status"]["conditions"]
                    ):
                        break
                except Exception:
                    pass
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise RuntimeError((tmp / "agent.log").read_text()[-3000:])
                await asyncio.sleep(0.2)
            await client.create(NS, {"metadata": {"name": "bench"}})
            t0 = time.monotonic()
            for i in range(n_pods):
                await client.create(PODS, pod(f"p{i}", per_pod, args.exec_share), "bench")
            while (ready := await all_ready(client, "bench")) < n_pods:
                if time.monotonic() - t0 > 300 or agent.poll() is not None:
                    raise RuntimeError(f"only {ready}/{n_pods} pods ready")
                await asyncio.sleep(1)
            all_ready_s = time.monotonic() - t0
            await asyncio.sleep(args.warmup)
            before_metrics = await scrape(metrics)
            own0, children0 = proc_cpu(agent.pid)
            busy0, total0 = machine_cpu()
            w0 = time.monotonic()
            await asyncio.sleep(args.window)
            wall = time.monotonic() - w0
            own1, children1 = proc_cpu(agent.pid)
            busy1, total1 = machine_cpu()
            after = await scrape(metrics)
            still_ready = await all_ready(client, "bench")
            await client.delete(NS, "bench")
            deadline = time.monotonic() + 180
            while (await client.list(PODS, "bench"))["items"] and time.monotonic() < deadline:
                await asyncio.sleep(1)
        finally:
            await metrics.close()
            await client.close()
            agent.terminate()
            agent.wait(30)
            srv.stop()
            agent_log.close()
    containers = n_pods * per_pod
    exec_probes = sum(
        1
        for c in pod("x", per_pod, args.exec_share)["spec"]["containers"]
        if "exec" in c["readinessProbe"]
    )
    runs = after[f"{LATENESS}_count"] - before_metrics[f"{LATENESS}_count"]

    def ms(q: str) -> float:
        return round(after.get(f'{LATENESS}{{quantile="{q}"}}', float("nan")) * 1000, 1)

    return {
        "containers": containers,
        "pods": n_pods,
        "exec_probes": exec_probes * n_pods,
        "http_probes": (per_pod - exec_probes) * n_pods,
        "period_s": 1,
        "window_s": round(wall, 1),
        "probes_per_s": round(runs / wall, 1),
        "failed_probes_in_window": after["failed"] - before_metrics["failed"],
        "agent_cpu_share": round((own1 - own0) / wall, 3),
        "exec_children_cpu_share": round((children1 - children0) / wall, 3),
        "machine_cpu_busy": round((busy1 - busy0) / max(1, total1 - total0), 3),
        "lateness_ms": {"p50": ms("0.5"), "p90": ms("0.9"), "p99": ms("0.99"), "max": ms("1")},
        "all_ready_s": round(all_ready_s, 1),
        "pods_ready_at_end": still_ready,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--containers", type=int, default=10, help="per pod")
    parser.add_argument(
        "--exec-share", type=float, default=0.5, help="share of exec probes (the rest httpGet)"
    )
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/probes.py runs real containers: run it as root")
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
