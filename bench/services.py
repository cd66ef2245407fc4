"""Services: how fast the proxy programs the kernel, and what a cluster IP costs a request.

Everything runs in network namespaces this script makes (and removes), so the
machine's own rules are untouched:

* ``proxy_full_sync_ms`` — the proxier's full sync (render every Service from
  the informers' caches, then one ``nft -f`` transaction that replaces the
  table) for ``--services`` Services x ``--endpoints`` endpoints, created
  through a real API server (in-process) and read by real informers; beside
  ``nft_load_ms``, the time ``nft -f`` alone takes to load the very same
  script (baseline, same run). Median of ``--repeat`` runs each.
* ``proxy_incremental_sync_ms`` — after one endpoint of one Service changes
  (an EndpointSlice update through the API), the sync that follows: p50 and
  max over ``--changes`` changes.
* ``latency_us`` — connect + request + response from one "pod" namespace to
  another over the node's bridge, through the Service's cluster IP (DNAT by
  the proxy's rules, with the whole ruleset above loaded) and directly to the
  pod IP (baseline, same run): p50 and p99 over ``--requests`` requests each,
  interleaved in rounds so drift hits both alike.
* ``dns`` — the cluster DNS benchmark (``bench/dnsperf.py``'s ``measure()``),
  when that file is present.

Goals (issue 10): full sync ≤ 2x the nft baseline, incremental ≤ 50 ms,
VIP/direct latency ratio ≤ 1.2.

Needs root. Usage: sudo .venv/bin/python bench/services.py [--services 1000 --endpoints 10]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, informer, rest
from pilothouse.proxy import kernel, proxier, rules

TAG = str(os.getpid())
NODE, POD_A, POD_B = f"phb-node-{TAG}", f"phb-a-{TAG}", f"phb-b-{TAG}"
SERVICES = resources.DEFAULT.by_path("", "v1", "services")
SLICES = resources.DEFAULT.by_path("discovery.k8s.io", "v1", "endpointslices")
NAMESPACES = resources.DEFAULT.by_path("", "v1", "namespaces")
assert SERVICES and SLICES and NAMESPACES

SERVER = """
import asyncio, sys
async def serve(r, w):
    while await r.readline():
        w.write(b"ok\\n"); await w.drain()
    w.close()
async def main():
    s = await asyncio.start_server(serve, "0.0.0.0", int(sys.argv[1]), backlog=512)
    await s.serve_forever()
asyncio.run(main())
"""
CLIENT = """
import json, socket, sys, time
targets = sys.argv[1].split(","); rounds = int(sys.argv[2]); per = int(sys.argv[3])
out = {t: [] for t in targets}
for _ in range(rounds):
    for t in targets:
        host, port = t.rsplit(":", 1)
        for _ in range(per):
            a = time.perf_counter()
            with socket.create_connection((host, int(port))) as c:
                c.sendall(b"x\\n"); c.recv(16)
            out[t].append(time.perf_counter() - a)
print(json.dumps(out))
"""


def sh(*cmd: str, check: bool = True) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr}")
    return proc.stdout


def in_ns(ns: str, *cmd: str, check: bool = True) -> str:
    return sh("ip", "netns", "exec", ns, *cmd, check=check)


def make_topology() -> None:
    for ns in (NODE, POD_A, POD_B):
        sh("ip", "netns", "add", ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
    in_ns(NODE, "ip", "link", "add", "br0", "type", "bridge")
    in_ns(NODE, "ip", "addr", "add", "10.42.0.1/24", "dev", "br0")
    in_ns(NODE, "ip", "link", "set", "br0", "up")
    for pod, host_if, ip in ((POD_A, "va", "10.42.0.2"), (POD_B, "vb", "10.42.0.3")):
        in_ns(NODE, "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0",
              "netns", pod)  # fmt: skip
        in_ns(NODE, "ip", "link", "set", host_if, "master", "br0", "up")
        in_ns(pod, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        in_ns(pod, "ip", "link", "set", "eth0", "up")
        in_ns(pod, "ip", "route", "add", "default", "via", "10.42.0.1")
    in_ns(NODE, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    in_ns(NODE, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")


def remove_topology() -> None:
    for ns in (POD_A, POD_B, NODE):
        sh("ip", "netns", "del", ns, check=False)


def service(i: int) -> dict[str, Any]:
    return {"metadata": {"name": f"s{i}"},
            "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": f"s{i}"}}}  # fmt: skip


def endpoint_slice(i: int, endpoints: int, *, bump: int = 0) -> dict[str, Any]:
    ips = [f"10.42.{(i * endpoints + j) // 250 % 250 + 1}.{(i * endpoints + j) % 250 + 1}"
           for j in range(endpoints)]  # fmt: skip
    if bump:
        ips[0] = f"10.41.{bump // 250 % 250}.{bump % 250 + 1}"
    return {
        "metadata": {"name": f"s{i}-slice", "labels": {"kubernetes.io/service-name": f"s{i}"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "nodeName": "n1", "conditions": {"ready": True}}
                      for ip in ips],
    }  # fmt: skip


async def bounded(n: int, coros: list[Any]) -> None:
    sem = asyncio.Semaphore(n)

    async def one(c: Any) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def proxy_figures(args: argparse.Namespace, server: testing.ServerThread) -> dict[str, Any]:
    client = rest.Client(config.local_socket(server.server.socket_path), max_connections=32)
    ns = "bench-services"
    try:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        started = time.monotonic()
        await bounded(32, [client.create(SERVICES, service(i), ns) for i in range(args.services)])
        await bounded(
            32,
            [client.create(SLICES, endpoint_slice(i, args.endpoints), ns)
             for i in range(args.services)],
        )  # fmt: skip
        # The Service the latency test uses: one endpoint, pod B.
        target = await client.create(SERVICES, service(args.services), ns)
        body = endpoint_slice(args.services, 1)
        body["endpoints"][0]["addresses"] = ["10.42.0.3"]
        await client.create(SLICES, body, ns)
        setup_s = time.monotonic() - started
        services = informer.Informer(client, SERVICES, namespace=ns)
        slices = informer.Informer(client, SLICES, namespace=ns)
        nft = kernel.NftKernel(prefix=("ip", "netns", "exec", NODE))
        p = proxier.Proxier(
            services=services,
            slices=slices,
            kernel=nft,
            config=rules.Config(node_name="n1"),
            min_interval=0,
        )
        services.start()
        slices.start()
        await services.wait_synced(120)
        await slices.wait_synced(120)
        full, baseline = [], []
        script = ""
        for _ in range(args.repeat):
            result = await p.sync(full=True)
            full.append(result.seconds * 1000)
            script = p.ruleset.full(dict(p.ruleset.by_service)).script
            a = time.perf_counter()
            await nft.apply(script)
            baseline.append((time.perf_counter() - a) * 1000)
        incremental = []
        for n in range(args.changes):
            i = n % args.services
            current = await client.get(SLICES, f"s{i}-slice", ns)
            current["endpoints"] = endpoint_slice(i, args.endpoints, bump=n + 1)["endpoints"]
            await client.update(SLICES, current)
            await _until(lambda: p.pending > 0)  # the event reached the proxier
            result = await p.sync()
            assert not result.full
            incremental.append(result.seconds * 1000)
        await services.stop()
        await slices.stop()
        figures = {
            "services": args.services,
            "endpoints_per_service": args.endpoints,
            "script_lines": script.count("\n"),
            "setup_s": round(setup_s, 1),
            "proxy_full_sync_ms": round(statistics.median(full), 1),
            "nft_load_ms": round(statistics.median(baseline), 1),
            "full_sync_vs_nft": round(statistics.median(full) / statistics.median(baseline), 2),
            "proxy_incremental_sync_ms": {
                "p50": round(statistics.median(incremental), 1),
                "max": round(max(incremental), 1),
                "lines_last": p.last.lines if p.last else 0,
            },
        }
        return {"figures": figures, "vip": target["spec"]["clusterIP"]}
    finally:
        await client.close()


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the informer did not deliver the change")
        await asyncio.sleep(0.001)


def latency(vip: str, requests: int) -> dict[str, Any]:
    server = subprocess.Popen(["ip", "netns", "exec", POD_B, sys.executable, "-c", SERVER, "8080"])
    try:
        via_t, direct_t = f"{vip}:80", "10.42.0.3:8080"  # the VIP's 80 is DNATed to 8080
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = in_ns(POD_A, sys.executable, "-c", CLIENT, direct_t, "1", "1", check=False)
            if probe.startswith("{"):
                break
            time.sleep(0.1)
        rounds, per = 20, max(1, requests // 20)
        raw = json.loads(
            in_ns(POD_A, sys.executable, "-c", CLIENT, f"{via_t},{direct_t}", str(rounds), str(per))
        )
    finally:
        server.kill()
        server.wait()

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6, 1)

    via, direct = raw[via_t], raw[direct_t]
    return {
        "requests_each": len(via),
        "cluster_ip_us": {"p50": pct(via, 0.5), "p99": pct(via, 0.99)},
        "pod_ip_us": {"p50": pct(direct, 0.5), "p99": pct(direct, 0.99)},
        "ratio_p50": round(pct(via, 0.5) / pct(direct, 0.5), 3),
        "ratio_p99": round(pct(via, 0.99) / pct(direct, 0.99), 3),
    }


def dns_figures() -> dict[str, Any] | None:
    path = Path(__file__).with_name("dnsperf.py")
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("dnsperf", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result: dict[str, Any] = module.measure()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="full syncs (and baselines)")
    parser.add_argument("--changes", type=int, default=20, help="incremental syncs measured")
    parser.add_argument("--requests", type=int, default=2000, help="requests per target")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/services.py needs root (network namespaces, nftables)", file=sys.stderr)
        return 2
    make_topology()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="pilothouse-bench-svc-") as tmp,
            testing.server_thread(Path(tmp) / "data") as server,
        ):
            proxy = asyncio.run(proxy_figures(args, server))
            machine = {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "kernel": platform.release(),
                "nft": sh("nft", "--version").strip(),
            }
            result: dict[str, Any] = {
                "benchmark": "services",
                "machine": machine,
                "proxy": proxy["figures"],
                "latency": latency(proxy["vip"], args.requests),
            }
        dns = dns_figures()
        if dns is not None:
            result["dns"] = dns
        goals = {
            "full_sync_within_2x_nft": result["proxy"]["full_sync_vs_nft"] <= 2.0,
            "incremental_within_50ms": result["proxy"]["proxy_incremental_sync_ms"]["p50"] <= 50,
            "latency_ratio_within_1_2": result["latency"]["ratio_p50"] <= 1.2,
        }
        result["goals_met"] = goals
        print(json.dumps(result))
        return 0
    finally:
        remove_topology()


if __name__ == "__main__":
    sys.exit(main())
