"""Scale: one Deployment of ``--pods`` replicas on ``--nodes`` hollow nodes, as a user runs it.

Runs, as child processes, ``pilothouse server`` (its defaults: SQLite, every controller
and the scheduler in the one process; ``--disable-agent``, since the hollow nodes carry
the pods) and ``pilothouse simulate --nodes N``, waits for every node to be Ready, then
runs ``kubectl create deployment big --image=img:1 --replicas=P`` and measures, in one run:

- **time to all available**: from the ``kubectl create`` to ``availableReplicas == P``
  (polled every 0.2 s), and the pods/s over the first and the last 10 % (first: from
  the first available pod to 10 % of P; last: from 90 % to 100 %) — the ratio last/first
  says whether the work per pod grows with the number of pods;
- **API latency during the rollout**, from this process (not through kubectl): GETs of
  one ConfigMap at ``--get-rate``/s and merge PATCHes of another at ``--patch-rate``/s,
  sent on schedule whatever the answers (latency counts from the scheduled time), p50/p99;
- **server RSS** (VmRSS when all are available, and the peak VmHWM) and the CPU seconds
  the server and the hollow nodes spent during the rollout;
- **``kubectl get pods -A``** against the server, beside kubectl reading the very same
  responses (discovery and every page of the Table list, recorded on the way through a
  proxy) from a static in-memory server over TLS — the baseline is kubectl's own cost
  (decode, print) in the same run, so the ratio is what the server adds;
- **store size**: the SQLite files;
- **requests per pod during the rollout**: the server's ``apiserver_request_total``
  (in-process components' requests included) by verb, resource and subresource.

Prints progress on stderr and one JSON object on stdout.
Usage: python bench/scale.py [--nodes 1000] [--pods 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from pilothouse import testing
from pilothouse.apiserver.auth import certs
from pilothouse.client import config

PROBE_NS = "default"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def say(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Api:
    """A lean HTTPS client with the kubeconfig's admin identity (aiohttp, one pool)."""

    def __init__(self, kubeconfig: Path) -> None:
        cfg = config.load_kubeconfig(kubeconfig)
        self.base = cfg.server
        self.ssl = cfg.ssl_context() or False
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=32),
            headers={"Accept": "application/json"},
        )

    async def call(self, method: str, path: str, body: Any = None, ctype: str = "") -> Any:
        headers = {"Content-Type": ctype or "application/json"} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        async with self.session.request(
            method, self.base + path, data=data, headers=headers
        ) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
            return json.loads(payload)

    async def text(self, path: str) -> str:
        async with self.session.get(self.base + path) as resp:
            return await resp.text()

    async def close(self) -> None:
        await self.session.close()


async def request_counts(api: Api) -> dict[str, float]:
    """``apiserver_request_total`` summed by verb, resource and subresource (scopes together;
    answers other than 2xx apart, by code), from the server's ``/metrics``."""
    counts: dict[str, float] = {}
    for line in (await api.text("/metrics")).splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line[len("apiserver_request_total{") :].rpartition("} ")
        labels = {
            name: raw.strip('"')
            for name, _, raw in (part.partition("=") for part in labels_text.split('",'))
        }
        sub = labels.get("subresource", "")
        key = f"{labels.get('verb', '')} {labels.get('resource', '')}{'/' + sub if sub else ''}"
        if not labels.get("code", "").startswith("2"):
            key += f" {labels.get('code', '')}"
        counts[key] = counts.get(key, 0.0) + float(value)
    return counts


async def wait_nodes_ready(api: Api, count: int, timeout: float) -> float:
    start = time.perf_counter()
    deadline = start + timeout
    ready = 0
    while time.perf_counter() < deadline:
        nodes = await api.call("GET", "/api/v1/nodes")
        ready = sum(
            1
            for n in nodes.get("items") or []
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        )
        if ready >= count:
            return time.perf_counter() - start
        await asyncio.sleep(1.0)
    raise TimeoutError(f"only {ready} of {count} nodes Ready after {timeout:.0f} s")


class Probe:
    """GETs and PATCHes on schedule, each its own task, until stopped."""

    def __init__(self, api: Api, get_rate: float, patch_rate: float) -> None:
        self.api = api
        self.rates = {"get": get_rate, "patch": patch_rate}
        self.latency: dict[str, list[float]] = {"get": [], "patch": []}
        self.errors: dict[str, int] = {"get": 0, "patch": 0}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopped = asyncio.Event()

    async def setup(self) -> None:
        for name in ("scale-probe-get", "scale-probe-patch"):
            await self.api.call(
                "POST",
                f"/api/v1/namespaces/{PROBE_NS}/configmaps",
                {"metadata": {"name": name}, "data": {"n": "0"}},
            )

    async def one(self, kind: str, due: float, n: int) -> None:
        try:
            if kind == "get":
                await self.api.call(
                    "GET", f"/api/v1/namespaces/{PROBE_NS}/configmaps/scale-probe-get"
                )
            else:
                await self.api.call(
                    "PATCH",
                    f"/api/v1/namespaces/{PROBE_NS}/configmaps/scale-probe-patch",
                    {"data": {"n": str(n)}},
                    "application/merge-patch+json",
                )
            self.latency[kind].append((time.perf_counter() - due) * 1000)
        except (aiohttp.ClientError, RuntimeError, TimeoutError):
            self.errors[kind] += 1

    async def run(self, kind: str) -> None:
        interval = 1.0 / self.rates[kind]
        due = time.perf_counter()
        n = 0
        while not self.stopped.is_set():
            n += 1
            task = asyncio.create_task(self.one(kind, due, n))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            due += interval
            await asyncio.sleep(max(0.0, due - time.perf_counter()))

    async def stop(self) -> None:
        self.stopped.set()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=30)

    def summary(self) -> dict[str, Any]:
        return {
            kind: {
                "requests": len(vals),
                "errors": self.errors[kind],
                "p50_ms": round(pct(vals, 50), 1),
                "p99_ms": round(pct(vals, 99), 1),
                "max_ms": round(max(vals), 1) if vals else None,
            }
            for kind, vals in self.latency.items()
        }


async def rollout(api: Api, kubeconfig: Path, pods: int, timeout: float) -> dict[str, Any]:
    """Create the Deployment and follow its availableReplicas; samples (s, available)."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        "create",
        "deployment",
        "big",
        "--image=img:1",
        f"--replicas={pods}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl create deployment failed: {err.decode()}")
    samples: list[tuple[float, int]] = []
    last_say = start
    available = 0
    while time.perf_counter() - start < timeout:
        dep = await api.call("GET", "/apis/apps/v1/namespaces/default/deployments/big")
        available = int((dep.get("status") or {}).get("availableReplicas") or 0)
        now = time.perf_counter() - start
        samples.append((now, available))
        if available >= pods:
            break
        if now - (last_say - start) >= 10:
            last_say = time.perf_counter()
            say(f"{available:,} of {pods:,} available after {now:.0f} s")
        await asyncio.sleep(0.2)
    return {"samples": samples, "complete": available >= pods}


def crossing(samples: list[tuple[float, int]], count: float) -> float:
    """When ``count`` pods were available, interpolated between two samples."""
    prev_t, prev_n = 0.0, 0
    for t, n in samples:
        if n >= count:
            if n == prev_n:
                return t
            return prev_t + (t - prev_t) * (count - prev_n) / (n - prev_n)
        prev_t, prev_n = t, n
    return float("nan")


def rates(samples: list[tuple[float, int]], pods: int) -> dict[str, float]:
    tenth = pods / 10
    first_start = crossing(samples, 1)
    first = tenth / max(1e-9, crossing(samples, tenth) - first_start)
    last = tenth / max(1e-9, crossing(samples, pods) - crossing(samples, pods - tenth))
    return {
        "first_available_s": round(first_start, 2),
        "first_10pct_pods_per_s": round(first, 1),
        "last_10pct_pods_per_s": round(last, 1),
        "last_over_first": round(last / first, 3),
    }


class Replay:
    """A TLS proxy that records what kubectl asks and the server answers, then serves
    the recording alone (the static baseline)."""

    def __init__(self, upstream: str, ssl_client: Any, pki: certs.PKI) -> None:
        self.upstream = upstream
        self.ssl_client = ssl_client
        self.pki = pki
        self.recording = True
        self.records: dict[tuple[str, str, str], tuple[int, str, bytes]] = {}
        self.misses = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = (request.method, request.path_qs, request.headers.get("Accept", ""))
        if self.recording:
            headers = {
                k: v for k, v in request.headers.items() if k.lower() in ("accept", "user-agent")
            }
            async with (
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=self.ssl_client)
                ) as session,
                session.request(
                    request.method, self.upstream + request.path_qs, headers=headers
                ) as resp,
            ):
                body = await resp.read()
                ctype = resp.headers.get("Content-Type", "application/json")
                self.records[key] = (resp.status, ctype, body)
        record = self.records.get(key)
        if record is None:
            self.misses += 1
            return web.Response(status=404, text="not recorded")
        status, ctype, body = record
        # The whole Content-Type: kubectl reads aggregated discovery by its parameters.
        return web.Response(status=status, body=body, headers={"Content-Type": ctype})

    async def start(self) -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = testing.free_port()
        site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=self.pki.ssl_server_context())
        await site.start()
        return runner, port


def kubeconfig_for(kubeconfig: Path, server: str, dest: Path) -> Path:
    doc = yaml.safe_load(kubeconfig.read_text())
    for cluster in doc.get("clusters") or []:
        cluster["cluster"]["server"] = server
    dest.write_text(yaml.safe_dump(doc))
    return dest


async def kubectl_get_pods(kubeconfig: Path, cache: Path) -> tuple[float, int]:
    """Seconds for ``kubectl get pods -A``, and the rows it printed."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(cache),
        "get",
        "pods",
        "-A",
        "--request-timeout=600s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl get pods -A failed: {err.decode()[-500:]}")
    return elapsed, out.count(b"\n") - 1


async def kubectl_vs_static(srv: testing.ServerProcess, tmp: Path) -> dict[str, Any]:
    pki = certs.PKI.at(srv.data_dir / "pki")
    cfg = config.load_kubeconfig(srv.kubeconfig)
    replay = Replay(cfg.server, cfg.ssl_context(), pki)
    runner, port = await replay.start()
    try:
        via_proxy = kubeconfig_for(srv.kubeconfig, f"https://127.0.0.1:{port}", tmp / "kc-replay")
        # Warm kubectl's discovery cache against the server, then time the list.
        warm = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(srv.kubeconfig),
            "--cache-dir",
            str(tmp / "cache-server"),
            "get",
            "namespaces",
            stdout=asyncio.subprocess.DEVNULL,
        )
        await warm.wait()
        server_s, server_rows = await kubectl_get_pods(srv.kubeconfig, tmp / "cache-server")
        # Record (discovery from a cold cache, every page), then serve the recording.
        await kubectl_get_pods(via_proxy, tmp / "cache-record")
        replay.recording = False
        await kubectl_get_pods(via_proxy, tmp / "cache-static")  # warms its cache
        static_s, static_rows = await kubectl_get_pods(via_proxy, tmp / "cache-static")
        pages = sum(1 for m, p, _ in replay.records if m == "GET" and "/pods" in p)
    finally:
        await runner.cleanup()
    return {
        "server_s": round(server_s, 2),
        "static_baseline_s": round(static_s, 2),
        "ratio": round(server_s / static_s, 2),
        "rows": server_rows,
        "static_rows": static_rows,
        "pages": pages,
        "unrecorded_requests": replay.misses,
    }


def store_mb(data_dir: Path) -> float:
    files = list((data_dir / "db").glob("*"))
    return round(sum(f.stat().st_size for f in files if f.is_file()) / 2**20, 1)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ph-scale-"))
    srv = testing.ServerProcess(
        tmp / "server", extra_args=[] if args.in_process else ["--no-in-process-components"]
    )
    sim: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {
        "bench": "scale",
        "nodes": args.nodes,
        "in_process_components": args.in_process,
        "pods": args.pods,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
    }
    try:
        say(f"starting pilothouse server in {tmp}")
        srv.start(timeout=60)
        assert srv.proc is not None
        sim_log = (tmp / "simulate.log").open("wb")
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pilothouse.cli.main",
                "simulate",
                "--kubeconfig",
                str(srv.kubeconfig),
                "--nodes",
                str(args.nodes),
            ],
            stdout=sim_log,
            stderr=subprocess.STDOUT,
        )
        api = Api(srv.kubeconfig)
        try:
            say(f"waiting for {args.nodes:,} hollow nodes to be Ready")
            result["nodes_ready_s"] = round(await wait_nodes_ready(api, args.nodes, 600), 1)
            probe = Probe(api, args.get_rate, args.patch_rate)
            await probe.setup()
            server_cpu, sim_cpu = cpu_seconds(srv.proc.pid), cpu_seconds(sim.pid)
            requests_before = await request_counts(api)
            say(f"kubectl create deployment big --image=img:1 --replicas={args.pods}")
            probing = [asyncio.create_task(probe.run(k)) for k in ("get", "patch")]
            followed = await rollout(api, srv.kubeconfig, args.pods, args.timeout)
            await probe.stop()
            await asyncio.gather(*probing)
            samples = followed["samples"]
            result["complete"] = followed["complete"]
            result["all_available_s"] = round(samples[-1][0], 1) if samples else None
            result["available"] = samples[-1][1] if samples else 0
            if followed["complete"]:
                result.update(rates(samples, args.pods))
            result["server_memory_mb"] = memory_mb(srv.proc.pid)
            result["cpu_s_during_rollout"] = {
                "server": round(cpu_seconds(srv.proc.pid) - server_cpu, 1),
                "hollow_nodes": round(cpu_seconds(sim.pid) - sim_cpu, 1),
            }
            result["latency_during_rollout"] = probe.summary()
            requests_after = await request_counts(api)
            per_pod = {
                key: round((n - requests_before.get(key, 0.0)) / args.pods, 3)
                for key, n in requests_after.items()
            }
            result["requests_per_pod_during_rollout"] = dict(
                sorted(((k, v) for k, v in per_pod.items() if v >= 0.001), key=lambda kv: -kv[1])
            )
            say(f"all {result['available']:,} available after {result['all_available_s']} s")
        finally:
            await api.close()
        if not args.skip_kubectl:
            say("timing kubectl get pods -A against the server and against a static replay")
            result["kubectl_get_pods_A"] = await kubectl_vs_static(srv, tmp)
        result["store_mb"] = store_mb(srv.data_dir)
        result["server_memory_mb_end"] = memory_mb(srv.proc.pid)
    finally:
        if sim is not None and sim.poll() is None:
            sim.terminate()
            try:
                sim.wait(30)
            except subprocess.TimeoutExpired:
                sim.kill()
        srv.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            result["data"] = str(tmp)
    result["goals"] = goals(result)
    return result


def goals(r: dict[str, Any]) -> dict[str, bool | None]:
    lat = r.get("latency_during_rollout") or {}
    kubectl = r.get("kubectl_get_pods_A") or {}
    rss = (r.get("server_memory_mb") or {}).get("VmRSS")
    return {
        "all_available_le_90s": (r.get("all_available_s") or 1e9) <= 90
        if r.get("complete")
        else False,
        "last_over_first_ge_0.8": (r.get("last_over_first") or 0) >= 0.8,
        "rss_le_1GB": rss is not None and rss <= 1024,
        "get_p99_le_50ms": (lat.get("get") or {}).get("p99_ms", 1e9) <= 50,
        "patch_p99_le_200ms": (lat.get("patch") or {}).get("p99_ms", 1e9) <= 200,
        "kubectl_le_2x_static": kubectl.get("ratio", 1e9) <= 2 if kubectl else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1000, help="hollow nodes (default: %(default)s)")
    p.add_argument("--pods", type=int, default=30000, help="replicas (default: %(default)s)")
    p.add_argument("--get-rate", type=float, default=10.0, help="probe GETs per second")
    p.add_argument("--patch-rate", type=float, default=5.0, help="probe PATCHes per second")
    p.add_argument(
        "--timeout", type=float, default=1800.0, help="give up the rollout after S seconds"
    )
    p.add_argument("--skip-kubectl", action="store_true", help="skip kubectl get pods -A")
    p.add_argument(
        "--in-process-components",
        dest="in_process",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the server's components in process (its default) or, with --no-…, through "
        "its private socket (BENCHMARKS.md, inproc)",
    )
    p.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    args = p.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if not result.get("complete"):
        sys.exit(1)


if __name__ == "__main__":
    main()
