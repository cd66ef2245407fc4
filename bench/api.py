"""API server benchmark: durable creates, latency under load, lists, watch fan-out.

Runs ``pilothouse server`` (SQLite store, fsync on every commit) as a child
process and drives it over HTTPS from this process, then prints one JSON object.
Baselines measured in the same run, so ratios survive a noisy machine:

* ``baseline_http_noop_rps`` — an aiohttp HTTPS server answering a fixed body,
  driven by the same client at the same concurrency (the ceiling of the HTTP
  stack on this machine);
* ``baseline_store_creates_per_s`` — the SQLite store alone, same concurrency;
* ``configmap_creates_per_s`` — beside ``custom_resource_creates_per_s``: a CRD's
  objects (schema with defaults, a CEL rule, printer columns) against ConfigMaps of
  the same size, alternating rounds in the same server (issue 16: goal ≥ 80 %).

With ``--datastore etcd`` the server runs on a local etcd (Debian's etcd-server,
fsync on) and the baselines are etcd's own put rate for values of a stored pod's
size, from the etcd store's client library at the same concurrency
(``baseline_etcd_puts_per_s``), and the same server on SQLite. CPU per create (the
server's, etcd's) and per put (the client's, etcd's) are reported beside the rates, and
``sqlite_creates_vs_etcd_puts`` — the same server on a store that costs next to nothing —
is the ceiling any etcd store could lift ``creates_vs_etcd_puts`` to.

With ``--rbac`` one server is measured twice in the same run: as the admin
(``system:masters``, allowed before RBAC is asked) and as a user whose rights come
from RBAC — ``edit`` bound to a group the user is in — with 1,000 other RoleBindings
in the cluster. The goal: the RBAC user's create rate and p99 within 10 % of the
admin's.

With ``--history`` the cost of object history (issue 20) is measured: one server
keeping every revision for the default 24 h and one with ``--history-retention 0``,
interleaved (off, on, off, on) in the same run: creates per second, then updates per
second (a merge patch of a label on existing pods, each a new revision), and the disk
each 1,000 pod updates take (the SQLite file after VACUUM, before and after the
updates; with history off after the compaction upstream's compactor would run). The
goal: with history on, at least 90 % of the write throughput without.

With ``--audit`` the same server is measured three times in one run: without an audit
log (the baseline), with every request recorded at level Metadata, and at level
RequestResponse (request and response bodies in every event), each writing JSON lines
to a file in blocking mode, as kube-apiserver's log backend does by default.

With ``--webhook`` pod creates with one validating webhook on the path, and with one
ValidatingAdmissionPolicy on the path, are measured beside the same creates with
neither (``bench/webhooks.py``; goal for the webhook ≥ 50 %).

Usage: python bench/api.py [--creates 3000] [--concurrency 32] [--quick] [--datastore etcd]
                           [--rbac] [--audit [--repeat 3]] [--webhook]
                           [--history [--updates 3000]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from pilothouse import testing
from pilothouse.storage import sqlite

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "", "labels": {"app": "bench", "tier": "web"}},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "busybox:1.36",
                "command": ["httpd", "-f", "-p", "8080"],
                "ports": [{"containerPort": 8080}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }
        ]
    },
}


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.bench.example.com"},
    "spec": {
        "group": "bench.example.com",
        "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-validations": [
                                    {"rule": "self.replicas <= self.maxReplicas"}
                                ],
                                "properties": {
                                    "cronSpec": {"type": "string", "maxLength": 64},
                                    "image": {"type": "string", "maxLength": 256},
                                    "replicas": {"type": "integer", "minimum": 0},
                                    "maxReplicas": {"type": "integer", "default": 10},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"replicas": {"type": "integer"}},
                            },
                        },
                    }
                },
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                ],
            }
        ],
    },
}


def crontab(name: str) -> bytes:
    return json.dumps(
        {
            "apiVersion": "bench.example.com/v1",
            "kind": "CronTab",
            "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
            "spec": {"cronSpec": "*/5 * * * *", "image": "busybox:1.36", "replicas": 2},
        }
    ).encode()


def configmap(name: str) -> bytes:
    # The same labels and a payload of the same size as the custom resource's spec.
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
            "data": {"cronSpec": "*/5 * * * *", "image": "busybox:1.36", "replicas": "2"},
        }
    ).encode()


def pod(name: str) -> bytes:
    body = json.loads(json.dumps(POD))
    body["metadata"]["name"] = name
    return json.dumps(body).encode()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Client:
    def __init__(
        self, base: str, data_dir: Path, concurrency: int, *, user: tuple[Path, Path] | None = None
    ) -> None:
        pki = data_dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        cert, key = user or (pki / "admin.crt", pki / "admin.key")
        ctx.load_cert_chain(str(cert), str(key))
        self.base = base
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=concurrency + 110),
            timeout=aiohttp.ClientTimeout(total=120),
        )

    async def request(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, bytes]:
        hdrs = {"Content-Type": "application/json", **headers}
        async with self.session.request(method, self.base + path, data=body, headers=hdrs) as resp:
            return resp.status, await resp.read()

    async def close(self) -> None:
        await self.session.close()


async def run_concurrently(n: int, concurrency: int, make: Any) -> float:
    """Run make(i) for i in range(n) with at most ``concurrency`` in flight; returns seconds."""
    queue = iter(range(n))
    start = time.perf_counter()

    async def worker() -> None:
        for i in queue:
            await make(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def bench_creates(
    client: Client,
    n: int,
    concurrency: int,
    *,
    namespace: str = "bench-create",
    admin: Client | None = None,
) -> float:
    status, _ = await (admin or client).request(
        "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": namespace}}).encode()
    )
    assert status == 201, status
    await namespace_ready(admin or client, namespace)

    async def make(i: int) -> None:
        status, body = await client.request(
            "POST", f"/api/v1/namespaces/{namespace}/pods", pod(f"p{i}")
        )
        if status != 201:
            raise RuntimeError(f"create failed: {status} {body[:200]!r}")

    elapsed = await run_concurrently(n, concurrency, make)
    return n / elapsed


async def namespace_ready(client: Client, namespace: str) -> None:
    """Wait for the namespace's default ServiceAccount (pods need it)."""
    for _ in range(500):
        status, _ = await client.request(
            "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
        )
        if status == 200:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"namespace {namespace} got no default ServiceAccount")


async def bench_custom_resources(client: Client, n: int, concurrency: int) -> dict[str, float]:
    """Creates of a custom resource (schema, defaults, a CEL rule) beside ConfigMap
    creates of the same size, in one namespace, alternating rounds so drift in the
    machine's speed hits both alike."""
    status, body = await client.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json.dumps(CRD).encode()
    )
    if status != 201:
        raise RuntimeError(f"CRD create failed: {status} {body[:300]!r}")
    status, _ = await client.request(
        "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": "bench-cr"}}).encode()
    )
    assert status == 201, status
    paths = {
        "configmap": ("/api/v1/namespaces/bench-cr/configmaps", configmap),
        "custom_resource": ("/apis/bench.example.com/v1/namespaces/bench-cr/crontabs", crontab),
    }
    elapsed = {k: 0.0 for k in paths}
    rounds = 10
    per_round = max(1, n // rounds)
    for r in range(rounds):
        # Alternate which kind goes first, so neither always meets a warmer server.
        order = list(paths.items()) if r % 2 == 0 else list(reversed(paths.items()))
        for kind, (path, make_body) in order:

            async def make(
                i: int, path: str = path, make_body: Any = make_body, r: int = r
            ) -> None:
                status, body = await client.request("POST", path, make_body(f"o{r}-{i}"))
                if status != 201:
                    raise RuntimeError(f"create failed: {status} {body[:300]!r}")

            elapsed[kind] += await run_concurrently(per_round, concurrency, make)
    total = per_round * rounds
    return {f"{kind}_creates_per_s": total / seconds for kind, seconds in elapsed.items()}


async def bench_latency_at_rate(
    client: Client,
    rate: float,
    seconds: float,
    *,
    namespace: str = "bench-rate",
    admin: Client | None = None,
) -> list[float]:
    """Open loop: a mutating request every 1/rate s regardless of answers (create + update mix)."""
    await (admin or client).request(
        "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": namespace}}).encode()
    )
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        if i % 2 == 0:
            status, _ = await client.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/configmaps",
                json.dumps({"metadata": {"name": f"c{i}"}, "data": {"v": "0"}}).encode(),
            )
            ok = status == 201
        else:
            target = f"c{i - 1}"
            body = json.dumps({"metadata": {"name": target}, "data": {"v": str(i)}}).encode()
            status, _ = await client.request(
                "PUT", f"/api/v1/namespaces/{namespace}/configmaps/{target}", body
            )
            ok = status in (200, 404)
        if ok:
            latencies.append((time.perf_counter() - t0) * 1000)

    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies


async def bench_list(client: Client, pods: int) -> dict[str, float]:
    await client.request(
        "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": "bench-list"}}).encode()
    )

    async def make(i: int) -> None:
        await client.request("POST", "/api/v1/namespaces/bench-list/pods", pod(f"l{i}"))

    await run_concurrently(pods, 32, make)
    json_ms, table_ms = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        status, body = await client.request("GET", "/api/v1/namespaces/bench-list/pods")
        json_ms.append((time.perf_counter() - t0) * 1000)
        assert status == 200 and len(json.loads(body)["items"]) == pods
        t0 = time.perf_counter()
        status, body = await client.request(
            "GET",
            "/api/v1/namespaces/bench-list/pods?limit=500",
            Accept="application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        table_ms.append((time.perf_counter() - t0) * 1000)
        assert status == 200
    return {
        "list_500_pods_ms": statistics.median(json_ms),
        "list_500_pods_table_ms": statistics.median(table_ms),
    }


async def bench_watch(client: Client, watchers: int, events: int) -> list[float]:
    """Each event's delivery delay to each of ``watchers`` watches: from just before the
    write is sent until the watcher reads the event."""
    await client.request(
        "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": "bench-watch"}}).encode()
    )
    # The namespace's kube-root-ca.crt (a ConfigMap) lands before the watches start.
    for _ in range(500):
        status, _ = await client.request(
            "GET", "/api/v1/namespaces/bench-watch/configmaps/kube-root-ca.crt"
        )
        if status == 200:
            break
        await asyncio.sleep(0.01)
    _, body = await client.request("GET", "/api/v1/namespaces/bench-watch/configmaps")
    rv = json.loads(body)["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    delays: list[float] = []
    ready = 0
    done = asyncio.Event()
    expected = watchers * events
    received = 0

    async def watch(all_ready: asyncio.Event) -> None:
        nonlocal ready, received
        url = f"{client.base}/api/v1/namespaces/bench-watch/configmaps?watch=true&resourceVersion={rv}"
        async with client.session.get(url) as resp:
            ready += 1
            if ready == watchers:
                all_ready.set()
            async for line in resp.content:
                now = time.perf_counter()
                name = json.loads(line)["object"]["metadata"]["name"]
                if name not in sent:
                    continue
                delays.append((now - sent[name]) * 1000)
                received += 1
                if received == expected:
                    done.set()
                if name == f"e{events - 1}":
                    return

    all_ready = asyncio.Event()
    tasks = [asyncio.create_task(watch(all_ready)) for _ in range(watchers)]
    await asyncio.wait_for(all_ready.wait(), 60)
    await asyncio.sleep(0.2)
    for i in range(events):
        name = f"e{i}"
        sent[name] = time.perf_counter()
        await client.request(
            "POST",
            "/api/v1/namespaces/bench-watch/configmaps",
            json.dumps({"metadata": {"name": name}}).encode(),
        )
        await asyncio.sleep(0.02)
    await asyncio.wait_for(done.wait(), 60)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return delays


async def baseline_http(concurrency: int, n: int, data_dir: Path) -> float:
    port = testing.free_port()
    # The no-op server runs in its own process so it gets a core, as the real one does.
    noop = Path(__file__).with_name("noop_server.py")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(noop), str(data_dir / "baseline"), str(port)
    )
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        client = Client(f"https://127.0.0.1:{port}", data_dir / "baseline", concurrency)
        try:

            async def make(i: int) -> None:
                await client.request("POST", "/noop", pod(f"p{i}"))

            elapsed = await run_concurrently(n, concurrency, make)
        finally:
            await client.close()
    finally:
        proc.terminate()
        await proc.wait()
    return n / elapsed


async def baseline_store(n: int, concurrency: int, path: Path) -> float:
    store = sqlite.SQLiteStore(path)
    await store.start()
    try:
        value = pod("x")
        elapsed = await run_concurrently(
            n, concurrency, lambda i: store.create(f"/registry/pods/b/p{i}", value)
        )
    finally:
        await store.close()
    return n / elapsed


async def server_figures(
    data: Path,
    extra_args: list[str],
    args: argparse.Namespace,
    *,
    full: bool = True,
    etcd_pid: int | None = None,
) -> dict[str, Any]:
    """Start a server with ``extra_args`` and measure it; ``full`` adds lists and watches.
    The CPU the server (and ``etcd_pid``'s etcd) spent on the pod creates is reported
    per create: on a shared two-core machine CPU per create is what a rate is made of."""
    t0 = time.perf_counter()
    # The API server alone: controllers and the scheduler would add their own
    # writes for every pod (status, events) and measure the whole cluster instead.
    srv = testing.ServerProcess(
        data, extra_args=["--disable-scheduler", "--disable-controller-manager", *extra_args]
    ).start(timeout=60)
    out: dict[str, Any] = {}
    try:
        client = Client(srv.url, data, args.concurrency)
        # ready_s: process start until /readyz answers ok (python start-up included)
        while True:
            try:
                status, _ = await client.request("GET", "/readyz")
                if status == 200:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)
        out["ready_s"] = round(time.perf_counter() - t0, 3)
        await asyncio.sleep(1.0)
        assert srv.proc is not None
        out["idle_rss_mb"] = round(rss_mb(srv.proc.pid), 1)
        cpu_before = cpu_seconds(srv.proc.pid), cpu_seconds(etcd_pid) if etcd_pid else 0.0
        out["creates_per_s"] = round(await bench_creates(client, args.creates, args.concurrency), 1)
        out["server_cpu_ms_per_create"] = round(
            (cpu_seconds(srv.proc.pid) - cpu_before[0]) / args.creates * 1000, 3
        )
        if etcd_pid:
            out["etcd_cpu_ms_per_create"] = round(
                (cpu_seconds(etcd_pid) - cpu_before[1]) / args.creates * 1000, 3
            )
        if full:
            rates = await bench_custom_resources(client, args.creates, args.concurrency)
            out.update({k: round(v, 1) for k, v in rates.items()})
            out["custom_resource_vs_configmap"] = round(
                rates["custom_resource_creates_per_s"] / rates["configmap_creates_per_s"], 3
            )
        latencies = await bench_latency_at_rate(client, 200.0, 5.0 if args.quick else 15.0)
        out["mutating_p50_ms_at_200rps"] = round(pct(latencies, 50), 2)
        out["mutating_p99_ms_at_200rps"] = round(pct(latencies, 99), 2)
        if full:
            listing = await bench_list(client, 500)
            out.update({k: round(v, 2) for k, v in listing.items()})
            delays = await bench_watch(client, 100, 20 if args.quick else 50)
            out["watch_delivery_p50_ms"] = round(pct(delays, 50), 2)
            out["watch_delivery_p99_ms"] = round(pct(delays, 99), 2)
            out["watchers"] = 100
            out["rss_after_bench_mb"] = round(rss_mb(srv.proc.pid), 1)
        await client.close()
    finally:
        srv.stop()
    return out


async def baseline_etcd_puts(
    endpoint: str, n: int, concurrency: int, size: int, *, etcd_pid: int
) -> dict[str, float]:
    """etcd's own put rate for values of ``size`` bytes, from the client library the
    etcd store uses, at the same concurrency; with the CPU per put of the client (this
    process) and of etcd."""
    from pilothouse.storage.etcd import client as etcd_client

    c = etcd_client.Client(etcd_client.parse_endpoints(endpoint))
    value = b"x" * size
    try:
        await c.put(b"/baseline/warm", value)  # the channel connected before the clock
        client_cpu, etcd_cpu = time.process_time(), cpu_seconds(etcd_pid)
        elapsed = await run_concurrently(
            n, concurrency, lambda i: c.put(f"/baseline/{i}".encode(), value)
        )
        client_cpu, etcd_cpu = time.process_time() - client_cpu, cpu_seconds(etcd_pid) - etcd_cpu
    finally:
        await c.close()
    return {
        "baseline_etcd_puts_per_s": round(n / elapsed, 1),
        "baseline_etcd_put_client_cpu_ms": round(client_cpu / n * 1000, 3),
        "baseline_etcd_put_etcd_cpu_ms": round(etcd_cpu / n * 1000, 3),
    }


async def baseline_etcd_store(
    endpoint: str, n: int, concurrency: int, size: int
) -> dict[str, float]:
    """The etcd store alone (no HTTP, no API logic): transactions on the create revision
    plus waiting for each write's own watch event, values of ``size`` bytes; with its
    CPU per create in this process (the part of a server's create the store is)."""
    from pilothouse.storage.etcd import client as etcd_client
    from pilothouse.storage.etcd import store as etcd_store

    store = etcd_store.EtcdStore(
        etcd_client.parse_endpoints(endpoint), prefix="/baseline-store", compact_interval=0
    )
    await store.start()
    value = b"x" * size
    try:
        cpu = time.process_time()
        elapsed = await run_concurrently(
            n, concurrency, lambda i: store.create(f"/registry/pods/b/p{i}", value)
        )
        cpu = time.process_time() - cpu
    finally:
        await store.close()
    return {
        "baseline_etcd_store_creates_per_s": round(n / elapsed, 1),
        "baseline_etcd_store_cpu_ms_per_create": round(cpu / n * 1000, 3),
    }


async def stored_pod_size(endpoint: str) -> int:
    from pilothouse.storage.etcd import client as etcd_client
    from pilothouse.storage.etcd import proto

    c = etcd_client.Client(etcd_client.parse_endpoints(endpoint))
    try:
        found = await c.range(proto.RangeRequest(key=b"/registry/pods/bench-create/p0"))
    finally:
        await c.close()
    return len(found.kvs[0].value)


async def rbac_figures(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """Admin vs an RBAC user on one server, 1,000 RoleBindings in the cluster."""
    from pilothouse.apiserver.auth import certs

    srv = testing.ServerProcess(
        data, extra_args=["--disable-scheduler", "--disable-controller-manager"]
    ).start(timeout=60)
    out: dict[str, Any] = {}
    try:
        admin = Client(srv.url, data, args.concurrency)
        cert, key = certs.issue_client_cert(
            certs.PKI.at(data / "pki"), common_name="bench-user", organizations=["bench-group"]
        )
        (data / "user.crt").write_bytes(cert)
        (data / "user.key").write_bytes(key)
        user = Client(srv.url, data, args.concurrency, user=(data / "user.crt", data / "user.key"))
        # 1,000 RoleBindings for other users, across 50 namespaces.
        for n in range(50):
            await admin.request(
                "POST",
                "/api/v1/namespaces",
                json.dumps({"metadata": {"name": f"other-{n}"}}).encode(),
            )

        async def other(i: int) -> None:
            binding = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"rb-{i}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "view",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": f"someone-{i}",
                    }
                ],
            }
            status, body = await admin.request(
                "POST",
                f"/apis/rbac.authorization.k8s.io/v1/namespaces/other-{i % 50}/rolebindings",
                json.dumps(binding).encode(),
            )
            assert status == 201, body

        await run_concurrently(1000, 16, other)
        rounds = 1 if args.quick else 4
        figures: dict[str, list[float]] = {}
        for r in range(rounds):
            # Alternate who goes first: the cluster grows by every round's pods, and the
            # second measurement of a round would otherwise always pay for it.
            order = [("admin", admin), ("rbac", user)]
            for who, client in order if r % 2 == 0 else order[::-1]:
                ns = f"bench-{who}-{r}"
                if who == "rbac":
                    for target in (ns, f"{ns}-rate"):
                        await admin.request(
                            "POST",
                            "/api/v1/namespaces",
                            json.dumps({"metadata": {"name": target}}).encode(),
                        )
                        grant = {
                            "apiVersion": "rbac.authorization.k8s.io/v1",
                            "kind": "RoleBinding",
                            "metadata": {"name": "edit"},
                            "roleRef": {
                                "apiGroup": "rbac.authorization.k8s.io",
                                "kind": "ClusterRole",
                                "name": "edit",
                            },
                            "subjects": [
                                {
                                    "apiGroup": "rbac.authorization.k8s.io",
                                    "kind": "Group",
                                    "name": "bench-group",
                                }
                            ],
                        }
                        status, body = await admin.request(
                            "POST",
                            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{target}/rolebindings",
                            json.dumps(grant).encode(),
                        )
                        assert status == 201, body
                        await namespace_ready(admin, target)
                    rate = await bench_creates_existing(client, args.creates, args.concurrency, ns)
                    latencies = await bench_latency_existing(
                        client, 200.0, 5.0 if args.quick else 15.0, f"{ns}-rate"
                    )
                else:
                    rate = await bench_creates(client, args.creates, args.concurrency, namespace=ns)
                    latencies = await bench_latency_at_rate(
                        client, 200.0, 5.0 if args.quick else 15.0, namespace=f"{ns}-rate"
                    )
                figures.setdefault(f"{who}_creates_per_s", []).append(rate)
                figures.setdefault(f"{who}_mutating_p99_ms_at_200rps", []).append(
                    pct(latencies, 99)
                )
                figures.setdefault(f"{who}_mutating_p50_ms_at_200rps", []).append(
                    pct(latencies, 50)
                )
        for key, values in figures.items():
            out[key] = round(statistics.mean(values), 2)
        out["rbac_vs_admin_creates"] = round(
            out["rbac_creates_per_s"] / out["admin_creates_per_s"], 3
        )
        out["rbac_vs_admin_p99"] = round(
            out["admin_mutating_p99_ms_at_200rps"] / out["rbac_mutating_p99_ms_at_200rps"], 3
        )
        out["other_rolebindings"] = 1000
        out["rounds"] = rounds
        await admin.close()
        await user.close()
    finally:
        srv.stop()
    return out


async def bench_creates_existing(client: Client, n: int, concurrency: int, namespace: str) -> float:
    """Pod creates into an existing namespace (the RBAC user may not make namespaces)."""

    async def make(i: int) -> None:
        status, body = await client.request(
            "POST", f"/api/v1/namespaces/{namespace}/pods", pod(f"p{i}")
        )
        if status != 201:
            raise RuntimeError(f"create failed: {status} {body[:200]!r}")

    elapsed = await run_concurrently(n, concurrency, make)
    return n / elapsed


async def bench_latency_existing(
    client: Client, rate: float, seconds: float, namespace: str
) -> list[float]:
    """bench_latency_at_rate in an existing namespace."""
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        if i % 2 == 0:
            status, _ = await client.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/configmaps",
                json.dumps({"metadata": {"name": f"c{i}"}, "data": {"v": "0"}}).encode(),
            )
            ok = status == 201
        else:
            target = f"c{i - 1}"
            body = json.dumps({"metadata": {"name": target}, "data": {"v": str(i)}}).encode()
            status, _ = await client.request(
                "PUT", f"/api/v1/namespaces/{namespace}/configmaps/{target}", body
            )
            ok = status in (200, 404)
        if ok:
            latencies.append((time.perf_counter() - t0) * 1000)
        elif status == 403:
            raise RuntimeError("the RBAC user was refused")

    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies


async def bench_updates(
    client: Client, n: int, concurrency: int, pods: int, namespace: str
) -> float:
    """Merge patches of a label on ``pods`` existing pods, ``n`` in all; per second."""

    async def make(i: int) -> None:
        body = json.dumps({"metadata": {"labels": {"round": str(i)}}}).encode()
        status, answer = await client.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/p{i % pods}",
            body,
            **{"Content-Type": "application/merge-patch+json"},
        )
        if status != 200:
            raise RuntimeError(f"update failed: {status} {answer[:200]!r}")

    return n / await run_concurrently(n, concurrency, make)


def vacuumed_size(db: Path, *, compact: bool) -> int:
    """The store's size on disk once written compactly, optionally after compacting
    every revision no live key needs (what history off keeps)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        if compact:
            conn.execute(
                "DELETE FROM log WHERE deleted = 1 OR revision NOT IN (SELECT revision FROM latest)"
            )
            conn.commit()
        conn.execute("VACUUM")
    return db.stat().st_size


async def history_round(data: Path, args: argparse.Namespace, *, keep: bool) -> dict[str, float]:
    retention = [] if keep else ["--history-retention", "0"]
    srv = testing.ServerProcess(
        data, extra_args=["--disable-scheduler", "--disable-controller-manager", *retention]
    ).start(timeout=60)
    pods = 1000
    try:
        client = Client(srv.url, data, args.concurrency)
        creates = await bench_creates(client, pods, args.concurrency, namespace="bench-history")
        await client.request("POST", "/api/v1/namespaces", b'{"metadata":{"name":"warm"}}')
        srv_db = data / "db" / "state.db"
        await client.close()
    finally:
        srv.stop()
    before = vacuumed_size(srv_db, compact=not keep)
    srv = testing.ServerProcess(
        data, extra_args=["--disable-scheduler", "--disable-controller-manager", *retention]
    ).start(timeout=60)
    try:
        client = Client(srv.url, data, args.concurrency)
        updates = await bench_updates(client, args.updates, args.concurrency, pods, "bench-history")
        await client.close()
    finally:
        srv.stop()
    after = vacuumed_size(srv_db, compact=not keep)
    return {
        "creates_per_s": creates,
        "updates_per_s": updates,
        "bytes_per_1000_updates": (after - before) / args.updates * 1000,
    }


async def history_figures(args: argparse.Namespace) -> dict[str, Any]:
    rounds: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp:
        for i, keep in enumerate((False, True, False, True)):
            rounds[keep].append(await history_round(Path(tmp) / f"data-{i}", args, keep=keep))

    def best(keep: bool, key: str) -> float:
        return max(r[key] for r in rounds[keep])

    def mean(keep: bool, key: str) -> float:
        return statistics.mean(r[key] for r in rounds[keep])

    return {
        "history_off_creates_per_s": round(best(False, "creates_per_s"), 1),
        "history_on_creates_per_s": round(best(True, "creates_per_s"), 1),
        "history_off_updates_per_s": round(best(False, "updates_per_s"), 1),
        "history_on_updates_per_s": round(best(True, "updates_per_s"), 1),
        "creates_on_vs_off": round(best(True, "creates_per_s") / best(False, "creates_per_s"), 3),
        "updates_on_vs_off": round(best(True, "updates_per_s") / best(False, "updates_per_s"), 3),
        "history_on_bytes_per_1000_pod_updates": round(mean(True, "bytes_per_1000_updates")),
        "history_off_bytes_per_1000_pod_updates": round(mean(False, "bytes_per_1000_updates")),
        "rounds": {"off": rounds[False], "on": rounds[True]},
        "updates": args.updates,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
    }


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: {level}
"""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def audit_run(data: Path, extra: list[str], args: argparse.Namespace) -> dict[str, float]:
    """One server: create rate, the server's CPU per create, and mutating latency at 200/s."""
    srv = testing.ServerProcess(
        data, extra_args=["--disable-scheduler", "--disable-controller-manager", *extra]
    ).start(timeout=60)
    try:
        assert srv.proc is not None
        client = Client(srv.url, data, args.concurrency)
        while True:
            try:
                if (await client.request("GET", "/readyz"))[0] == 200:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)
        cpu0 = cpu_seconds(srv.proc.pid)
        rate = await bench_creates(client, args.creates, args.concurrency)
        cpu = cpu_seconds(srv.proc.pid) - cpu0
        latencies = await bench_latency_at_rate(client, 200.0, 5.0 if args.quick else 15.0)
        await client.close()
    finally:
        srv.stop()
    return {
        "creates_per_s": rate,
        "cpu_ms_per_create": cpu * 1000 / args.creates,
        "p99_ms": pct(latencies, 99),
    }


async def main_audit(args: argparse.Namespace) -> dict[str, Any]:
    """The audit log off, at Metadata and at RequestResponse: ``--repeat`` rounds, the three
    interleaved in each, medians reported (the machine is shared; rounds even out noise).
    CPU per create is the server process's own time, the figure least moved by neighbours."""
    runs: dict[str, list[dict[str, float]]] = {"off": [], "Metadata": [], "RequestResponse": []}
    lines: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp:
        for round_ in range(args.repeat):
            for level in runs:
                extra: list[str] = []
                log = Path(tmp) / f"audit-{level}-{round_}.log"
                if level != "off":
                    policy = Path(tmp) / f"policy-{level}.yaml"
                    policy.write_text(AUDIT_POLICY.format(level=level))
                    extra = ["--audit-policy-file", str(policy), "--audit-log-path", str(log)]
                data = Path(tmp) / f"data-{level}-{round_}"
                runs[level].append(await audit_run(data, extra, args))
                if level != "off":
                    lines[level] = log.read_text().count("\n")
    out: dict[str, Any] = {}
    for level, results in runs.items():
        key = "audit_off" if level == "off" else f"audit_{level.lower()}"
        for metric in ("creates_per_s", "cpu_ms_per_create", "p99_ms"):
            values = [r[metric] for r in results]
            out[f"{key}_{metric}"] = round(statistics.median(values), 2)
            out[f"{key}_{metric}_runs"] = [round(v, 2) for v in values]
        if level in lines:
            out[f"{key}_log_lines_last_run"] = lines[level]
    base_rate, base_cpu = out["audit_off_creates_per_s"], out["audit_off_cpu_ms_per_create"]
    for key in ("audit_metadata", "audit_requestresponse"):
        out[f"{key}_vs_off_creates"] = round(out[f"{key}_creates_per_s"] / base_rate, 3)
        out[f"{key}_vs_off_cpu"] = round(out[f"{key}_cpu_ms_per_create"] / base_cpu, 3)
    out.update(concurrency=args.concurrency, creates=args.creates, repeat=args.repeat)
    out["cpus"] = os.cpu_count()
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.history:
        return await history_figures(args)
    if args.audit:
        return await main_audit(args)
    if args.webhook:
        import webhooks

        args.rounds = 2 if args.quick else 4
        args.creates = min(args.creates, 300 if args.quick else 2000)
        return await webhooks.main_async(args)
    if args.rbac:
        with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp:
            figures = await rbac_figures(args, Path(tmp) / "data")
        return {
            **figures,
            "concurrency": args.concurrency,
            "creates": args.creates,
            "cpus": os.cpu_count(),
        }
    if args.datastore == "etcd":
        return await main_etcd(args)
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp:
        figures = await server_figures(Path(tmp) / "data", [], args)
        http_rps = await baseline_http(args.concurrency, args.creates, Path(tmp))
        store_rate = await baseline_store(args.creates, args.concurrency, Path(tmp) / "store.db")
    return {
        **figures,
        "baseline_http_noop_rps": round(http_rps, 1),
        "baseline_store_creates_per_s": round(store_rate, 1),
        "creates_vs_http_noop": round(figures["creates_per_s"] / http_rps, 3),
        "concurrency": args.concurrency,
        "creates": args.creates,
        "cpus": os.cpu_count(),
    }


async def main_etcd(args: argparse.Namespace) -> dict[str, Any]:
    """The same server on etcd (Debian's etcd-server, fsync on, on loopback), beside
    etcd's own put rate and the same server on SQLite, all in this run."""
    from pilothouse.storage.etcd import testing as etcd_testing

    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp:
        with etcd_testing.EtcdProcess(Path(tmp) / "etcd") as etcd:
            assert etcd.process is not None
            etcd_pid = etcd.process.pid
            figures = await server_figures(
                Path(tmp) / "data-etcd",
                ["--datastore-endpoint", etcd.endpoint],
                args,
                etcd_pid=etcd_pid,
            )
            size = await stored_pod_size(etcd.endpoint)
            puts = await baseline_etcd_puts(
                etcd.endpoint, args.creates, args.concurrency, size, etcd_pid=etcd_pid
            )
            store = await baseline_etcd_store(etcd.endpoint, args.creates, args.concurrency, size)
        sqlite_figures = await server_figures(Path(tmp) / "data-sqlite", [], args, full=False)
    put_rate = puts["baseline_etcd_puts_per_s"]
    return {
        "datastore": "etcd",
        **figures,
        **puts,
        "baseline_etcd_put_bytes": size,
        "creates_vs_etcd_puts": round(figures["creates_per_s"] / put_rate, 3),
        **store,
        "etcd_store_vs_etcd_puts": round(store["baseline_etcd_store_creates_per_s"] / put_rate, 3),
        "sqlite_creates_per_s": sqlite_figures["creates_per_s"],
        "sqlite_server_cpu_ms_per_create": sqlite_figures["server_cpu_ms_per_create"],
        "sqlite_mutating_p99_ms_at_200rps": sqlite_figures["mutating_p99_ms_at_200rps"],
        "etcd_vs_sqlite_creates": round(
            figures["creates_per_s"] / sqlite_figures["creates_per_s"], 3
        ),
        # The same API server on a store that costs next to nothing (SQLite's store
        # alone creates ~40,000/s), against etcd's puts: the most any etcd store could
        # lift creates_vs_etcd_puts to without a cheaper API create path.
        "sqlite_creates_vs_etcd_puts": round(sqlite_figures["creates_per_s"] / put_rate, 3),
        "concurrency": args.concurrency,
        "creates": args.creates,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--creates", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="shorter runs (for CI smoke checks)")
    parser.add_argument(
        "--datastore",
        choices=["sqlite", "etcd"],
        default="sqlite",
        help="etcd: run the server on a local etcd, beside etcd's own put rate and SQLite",
    )
    parser.add_argument(
        "--rbac",
        action="store_true",
        help="an RBAC user (edit through a group, 1,000 other RoleBindings) beside the admin",
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="object history kept (24 h) beside --history-retention 0: throughput and disk",
    )
    parser.add_argument("--updates", type=int, default=3000, help="pod updates for --history")
    parser.add_argument(
        "--audit",
        action="store_true",
        help="measure creates with the audit log off, at Metadata and at RequestResponse",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="--audit: rounds to take medians of (default 3)"
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="pod creates with one validating webhook on the path beside the same without",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
