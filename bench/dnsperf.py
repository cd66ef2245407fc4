"""Cluster DNS benchmark: queries per second answered, and latency at 1,000 queries per second.

Two servers, each in a child process of its own on 127.0.0.1, driven by the same load
generator in this process (plain non-blocking UDP, packets built in advance):

* ``pilothouse`` — the cluster DNS server as the agent runs it (``DNSServer`` with the
  kubernetes-plugin resolver and its answer cache) over 1,000 Services in 10 namespaces,
  a tenth of them headless with 10 ready endpoints each;
* ``bare`` (the baseline) — a bare dnslib server answering one fixed A record: parse,
  look up, pack (:class:`pilothouse.dns.fake.FixedDNSServer`).

Figures, for each server:

* ``qps`` — answers per second with 64 queries in flight for ``--seconds``; for
  pilothouse over a mix of what pods ask (Service names, headless names, SRV, and the
  search-path misses ``ndots:5`` makes: 60 % of queries NXDOMAIN), and
  ``qps_uncached`` over names never asked before (every answer computed afresh);
* ``p50_ms`` / ``p99_ms`` / ``max_ms`` — latency at a steady 1,000 queries per second,
  send to receipt, and ``lost`` (no answer within a second).

Goals (issue 10): ``qps`` ≥ 50 % of the bare server's, ``p99_ms`` ≤ 5 ms at 1,000 qps.

``measure()`` returns the figures as a dict (``bench/services.py`` includes them);
``main()`` prints them as one JSON object.

Usage: python bench/dnsperf.py [--seconds 5] [--latency-seconds 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dnslib import DNSRecord

SERVICES = 1000
NAMESPACES = 10
WINDOW = 64


# --- the servers (child processes) -------------------------------------------------------
def _fill(records: Any) -> None:
    from pilothouse.dns import records as recs

    for n in range(NAMESPACES):
        records.on_namespace({"metadata": {"name": f"ns{n}"}})
    for i in range(SERVICES):
        ns, name = f"ns{i % NAMESPACES}", f"svc{i}"
        headless = i % 10 == 0
        ip = "None" if headless else f"10.43.{i // 250 + 1}.{i % 250 + 1}"
        records.on_service(
            {
                "metadata": {"namespace": ns, "name": name},
                "spec": {
                    "clusterIP": ip,
                    "clusterIPs": [ip],
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                },
            }
        )
        if headless:
            records.on_slice(
                {
                    "metadata": {
                        "namespace": ns,
                        "name": f"{name}-abcde",
                        "labels": {recs.SERVICE_NAME_LABEL: name},
                    },
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                    "endpoints": [
                        {
                            "addresses": [f"10.42.{i // 250}.{e * 20 + i % 20 + 1}"],
                            "conditions": {"ready": True},
                        }
                        for e in range(10)
                    ],
                }
            )


async def _serve(kind: str) -> None:
    from pilothouse import supervisor
    from pilothouse.dns import fake, forward, resolver, server
    from pilothouse.dns import records as recs

    if kind == "bare":
        bare = await fake.FixedDNSServer(
            {"bench.example": {"A": ["192.0.2.1"]}}, log_queries=False
        ).start("127.0.0.1", 0)
        port = bare.port
    else:
        records = recs.ClusterRecords()
        _fill(records)
        tasks = supervisor.Supervisor("bench")
        srv = server.DNSServer(
            records=records,
            resolver=resolver.ClusterResolver(records),
            forwarder=forward.Forwarder(resolv_conf=Path("/dev/null")),  # nothing forwarded
            spawn=lambda coro, name: tasks.spawn(coro, name=name),
        )
        await srv.listen("127.0.0.1", 0)
        port = srv.port
    from pilothouse import heap

    heap.settle()  # as the agent does once it has started (both servers alike)
    print(port, flush=True)
    await asyncio.Event().wait()


class Child:
    def __init__(self, kind: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- the load ---------------------------------------------------------------------------
def _packets(names: list[tuple[str, str]]) -> list[bytes]:
    return [bytes(DNSRecord.question(n, t).pack()) for n, t in names]


def cluster_mix(count: int) -> list[tuple[str, str]]:
    """What pods ask: ndots:5 search-path misses, Service A/AAAA, headless, SRV."""
    rnd = random.Random(7)
    out: list[tuple[str, str]] = []
    while len(out) < count:
        i = rnd.randrange(SERVICES)
        ns, other = f"ns{i % NAMESPACES}", f"ns{(i + 1) % NAMESPACES}"
        svc = f"svc{i}"
        roll = rnd.random()
        if roll < 0.3:  # `svc.other-ns` from another namespace: a miss, then the hit
            out += [(f"{svc}.{ns}.{other}.svc.cluster.local", "A"),
                    (f"{svc}.{ns}.svc.cluster.local", "A")]  # fmt: skip
        elif roll < 0.6:  # an outside name's first search-path steps
            out += [(f"api{i % 50}.example.com.{ns}.svc.cluster.local", "A"),
                    (f"api{i % 50}.example.com.svc.cluster.local", "A"),
                    (f"api{i % 50}.example.com.cluster.local", "A")]  # fmt: skip
        elif roll < 0.9:
            out += [
                (f"{svc}.{ns}.svc.cluster.local", "A"),
                (f"{svc}.{ns}.svc.cluster.local", "AAAA"),
            ]
        else:
            out.append((f"_http._tcp.{svc}.{ns}.svc.cluster.local", "SRV"))
    return out[:count]


def unique_names(count: int) -> list[tuple[str, str]]:
    """Names never asked before: pod names (an answer each), every one computed afresh."""
    return [
        (f"10-{i >> 16 & 255}-{i >> 8 & 255}-{i & 255}.ns{i % NAMESPACES}.pod.cluster.local", "A")
        for i in range(count)
    ]


class Load:
    """A client socket with each query's send time kept by ID (16-bit, reused in turn)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.connect(("127.0.0.1", port))
        self.sent_at: dict[int, float] = {}
        self.next_id = 0
        self.lost = 0

    def send(self, packet: bytes) -> None:
        qid = self.next_id
        while qid in self.sent_at:  # still waiting for this one: take the next
            qid = (qid + 1) & 0xFFFF
        self.next_id = (qid + 1) & 0xFFFF
        self.sent_at[qid] = time.perf_counter()
        self.sock.send(qid.to_bytes(2, "big") + packet[2:])

    def receive(self, timeout: float) -> float | None:
        """The latency (s) of the next answer, or None when none came within ``timeout``
        (the wait blocks, so the server gets the CPU — this machine has two)."""
        self.sock.settimeout(max(timeout, 0.0001))
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        t = self.sent_at.pop(int.from_bytes(data[:2], "big"), None)
        return None if t is None else time.perf_counter() - t

    def expire(self, older_than: float) -> None:
        now = time.perf_counter()
        for qid, t in list(self.sent_at.items()):
            if now - t > older_than:
                del self.sent_at[qid]
                self.lost += 1

    def close(self) -> None:
        self.sock.close()


def throughput(port: int, packets: list[bytes], seconds: float) -> float:
    """Answers per second with WINDOW queries in flight (a query unanswered for 0.5 s is
    counted lost and its place given to the next)."""
    load = Load(port)
    n, sent, answered = len(packets), 0, 0
    started = time.perf_counter()
    deadline, sweep = started + seconds, started
    while True:
        while len(load.sent_at) < WINDOW:
            load.send(packets[sent % n])
            sent += 1
        now = time.perf_counter()
        if now >= deadline:
            break
        if load.receive(0.05) is not None:
            answered += 1
        if now - sweep > 0.1:
            load.expire(0.5)
            sweep = now
    elapsed = time.perf_counter() - started
    load.close()
    return answered / elapsed


def latency(port: int, packets: list[bytes], rate: int, seconds: float) -> dict[str, float]:
    """Send at ``rate`` per second; latency of every answer (ms) and how many were lost."""
    load = Load(port)
    total = int(rate * seconds)
    lat: list[float] = []
    start = time.perf_counter()
    i = 0
    while i < total or load.sent_at:
        now = time.perf_counter()
        if i < total and now >= start + i / rate:
            load.send(packets[i % len(packets)])
            i += 1
            continue
        if i >= total and now - start > seconds + 1.0:
            break  # what is still unanswered after a second is lost
        wait = (start + i / rate - now) if i < total else 0.05
        got = load.receive(wait)
        if got is not None:
            lat.append(got * 1000)
    load.expire(0.0)
    load.close()
    lat.sort()

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 3) if lat else float("nan")

    return {"p50_ms": pct(50), "p99_ms": pct(99), "max_ms": round(lat[-1], 3) if lat else 0.0,
            "lost": load.lost, "answered": len(lat)}  # fmt: skip


# --- the bench --------------------------------------------------------------------------
def measure(seconds: float = 5.0, latency_seconds: float = 10.0) -> dict[str, Any]:
    mix = _packets(cluster_mix(20_000))
    fresh = _packets(unique_names(int(seconds * 60_000)))
    bare_packets = _packets([("bench.example", "A")])
    result: dict[str, Any] = {}
    for kind in ("bare", "pilothouse"):
        child = Child(kind)
        try:
            packets = bare_packets if kind == "bare" else mix
            throughput(child.port, packets, 1.0)  # warm up (and fill the answer cache)
            cpu0 = child.cpu_seconds()
            qps = throughput(child.port, packets, seconds)
            figures: dict[str, Any] = {"qps": round(qps), "server_cpu_cores": round(
                (child.cpu_seconds() - cpu0) / seconds, 2)}  # fmt: skip
            if kind == "pilothouse":
                figures["qps_uncached"] = round(throughput(child.port, fresh, seconds))
            figures.update(latency(child.port, packets, 1000, latency_seconds))
            result[kind] = figures
        finally:
            child.stop()
    bare, ours = result["bare"], result["pilothouse"]
    result["qps_ratio"] = round(ours["qps"] / bare["qps"], 2)
    result["qps_uncached_ratio"] = round(ours["qps_uncached"] / bare["qps"], 2)
    result["goals"] = {
        "qps_ratio>=0.5": result["qps_ratio"] >= 0.5,
        "p99_ms<=5_at_1000qps": ours["p99_ms"] <= 5.0,
    }
    result["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                         "load": round(os.getloadavg()[0], 2)}  # fmt: skip
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="throughput window (default 5)")
    p.add_argument("--latency-seconds", type=float, default=10.0,
                   help="the 1,000 qps window (default 10)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="1 s windows, for a smoke run")
    p.add_argument("--serve", choices=["bare", "pilothouse"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    if args.quick:
        args.seconds = args.latency_seconds = 1.0
    print(json.dumps(measure(args.seconds, args.latency_seconds)))


if __name__ == "__main__":
    main()
