"""Overload benchmark: four times the server's create capacity, offered for 30 s.

Runs ``pilothouse server`` (SQLite, fsync on every commit; no agent, scheduler or
controllers) as a child process and measures, in one run:

1. **capacity** — ConfigMap creates per second a closed loop of ``--concurrency``
   clients gets, as a plain authenticated user (priority level ``global-default``);
2. **baseline** — latency of GETs of one ConfigMap at ``--get-rate`` per second on the
   idle server, sent as a node (level ``system``: another level than the flood's);
3. **overload** — ``--factor`` times the capacity in creates per second offered open-loop (sent on
   schedule whatever the answers) for ``--seconds``, the same GETs alongside: their
   p50/p99, the creates answered 201 / 429 (with Retry-After) / otherwise, and how long
   the flood's answers took. When the load stops its clients go away: a request still
   waiting for a free connection then is never sent (counted), those on the wire are
   answered;
4. **recovery** — the closed loop of step 1 again, right after, as the same user on
   connections of its own (the flood's clients went away): throughput against capacity,
   and second by second (does the first second already run at full speed?);
5. **rested** — the closed loop once more after ``--rest-seconds`` of idleness: what the
   server does now that nothing of the flood is left but what it stored. The flood leaves
   tens of thousands more ConfigMaps behind than step 1 ran against, so "full throughput"
   after it is this figure, and capacity (step 1) is beside it to show how much the
   store's growth alone costs. Recovery is "at once" when it matches the rested figure
   from its first second on.

``--control`` runs the closed loop of step 1 for ``--seconds`` instead of the flood: the
store grows as much or more and nothing is refused, so what the loops after it lose
against capacity is the store's growth, not the flood.

Offering thousands of requests a second takes a lean client: HTTP/1.1 over TLS, bodies
built once (``generateName``), only the status line and Content-Length parsed. One
request at a time per connection, as client-go and kubectl send them (pipelined
requests would wait unread in the server's socket, where no limit can see them), on a
pool of ``--connections`` opened beforehand; a request due while every connection is
busy waits its turn on the client, and that wait counts in its latency.

Prints one JSON object. Usage: python bench/overload.py [--seconds 30] [--factor 4]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pilothouse import testing
from pilothouse.apiserver.auth import certs

NS = "overload"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Connection(asyncio.Protocol):
    """One keep-alive HTTPS connection, one request at a time."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.pending: tuple[float, str] | None = None  # (due at, kind) of the request out
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pending is not None:
            self.client.answered(self, 0, False, *self.pending)  # no answer
        self.transport = None

    def send(self, request: bytes, due: float, kind: str) -> None:
        assert self.transport is not None
        self.pending = (due, kind)
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length :]
        pending, self.pending = self.pending, None
        assert pending is not None
        retry_after = b"\r\nretry-after:" in head.lower()
        self.client.answered(self, int(head[9:12]), retry_after, *pending)


class Client:
    """HTTPS requests for one identity (a client certificate) on a pool of connections."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext) -> None:
        self.host, self.port, self.ctx = host, port, ctx
        self.idle: list[Connection] = []
        self.busy = 0
        self.backlog: collections.deque[tuple[bytes, float, str]] = collections.deque()
        self.answers: list[tuple[int, bool, float, float, str]] = []  # status, retry, at, ms

    async def open(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(n):
            _, conn = await loop.create_connection(
                lambda: Connection(self), self.host, self.port, ssl=self.ctx
            )
            self.idle.append(conn)

    def send(self, request: bytes, kind: str, due: float | None = None) -> None:
        due = time.perf_counter() if due is None else due
        if self.idle:
            self.busy += 1
            self.idle.pop().send(request, due, kind)
        else:
            self.backlog.append((request, due, kind))

    def answered(self, conn: Connection, status: int, retry: bool, due: float, kind: str) -> None:
        now = time.perf_counter()
        self.answers.append((status, retry, now, (now - due) * 1000, kind))
        self.busy -= 1
        if conn.transport is None:
            return
        if self.backlog:
            request, due, kind = self.backlog.popleft()
            self.busy += 1
            conn.send(request, due, kind)
        else:
            self.idle.append(conn)

    def in_flight(self) -> int:
        return self.busy + len(self.backlog)

    def abandon(self) -> int:
        """Give up the requests still waiting for a connection (the load stops: its
        clients go away); how many there were."""
        left = len(self.backlog)
        self.backlog.clear()
        return left

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()


def request(method: str, path: str, body: bytes = b"", host: str = "bench") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


CREATE = request(
    "POST",
    f"/api/v1/namespaces/{NS}/configmaps",
    json.dumps(
        {
            "metadata": {"generateName": "load-", "labels": {"bench": "overload"}},
            "data": {"k": "v" * 200},
        }
    ).encode(),
)
GET = request("GET", f"/api/v1/namespaces/{NS}/configmaps/probe")


def identity(srv: testing.ServerProcess, name: str, groups: list[str]) -> list[str]:
    """CA, certificate and key files of a client certificate for ``name`` in ``groups``,
    signed by the server's CA."""
    pki = certs.PKI.at(srv.data_dir / "pki")
    cert, key = certs.ensure_client_pair(
        pki, name.replace(":", "-"), common_name=name, organizations=groups
    )
    return [str(pki.ca_cert), str(cert), str(key)]


def tls(files: list[str]) -> ssl.SSLContext:
    ca, cert, key = files
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    return ctx


async def probe_from_another_process(
    port: int, files: list[str], rate: float, seconds: float
) -> list[float]:
    """The GET probe runs in a process of its own: the flood's client work must not
    delay the answers it times."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--probe", str(port), *files, str(rate), str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    answers = json.loads(out)
    assert all(code == 200 for code, _ in answers), answers[:5]
    return [ms for _, ms in answers]


async def probe(port: int, files: list[str], rate: float, seconds: float) -> None:
    client = Client("127.0.0.1", port, tls(files))
    await client.open(4)
    await paced(client, GET, "get", rate, seconds)
    await drain(client)
    json.dump([(a[0], a[3]) for a in client.answers], sys.stdout)
    client.close()


async def closed_loop(client: Client, seconds: float, concurrency: int) -> float:
    """Creates per second with ``concurrency`` outstanding at all times."""
    start = len(client.answers)
    began = time.perf_counter()
    for _ in range(concurrency):
        client.send(CREATE, "create")
    done = 0
    while time.perf_counter() - began < seconds:
        await asyncio.sleep(0.002)
        answered = len(client.answers) - start
        for _ in range(answered - done):
            client.send(CREATE, "create")
        done = answered
    while client.in_flight():
        await asyncio.sleep(0.01)
    ok = sum(1 for a in client.answers[start:] if a[0] == 201)
    return ok / (time.perf_counter() - began)


async def measured_loop(
    client: Client, server_pid: int, seconds: float, concurrency: int
) -> dict[str, Any]:
    """:func:`closed_loop` with what tells a slower server from a busier machine: the
    creates accepted in each whole second, the server's CPU per accepted create, and
    the share of a core the server got (below ~1 the machine, not the server, set the
    pace)."""
    start = len(client.answers)
    cpu0, began = cpu_seconds(server_pid), time.perf_counter()
    rate = await closed_loop(client, seconds, concurrency)
    cpu, wall = cpu_seconds(server_pid) - cpu0, time.perf_counter() - began
    per_second = [0] * int(seconds)
    accepted = 0
    for status, _, at, _, _ in client.answers[start:]:
        if status == 201:
            accepted += 1
            second = int(at - began)
            if second < len(per_second):
                per_second[second] += 1
    return {
        "creates_per_s": round(rate, 1),
        "each_second": per_second,
        "server_cpu_ms_per_create": round(1000 * cpu / max(1, accepted), 3),
        "server_cpu_share": round(cpu / wall, 2),
    }


async def paced(client: Client, what: bytes, kind: str, rate: float, seconds: float) -> None:
    """``rate`` requests a second for ``seconds``, on schedule whatever the answers (each
    one's latency counts from when it was due)."""
    began = time.perf_counter()
    sent = 0
    while True:
        elapsed = time.perf_counter() - began
        if elapsed >= seconds:
            return
        due = int(elapsed * rate) + 1
        for i in range(sent, due):
            client.send(what, kind, began + i / rate)
        sent = due
        await asyncio.sleep(0.001)


async def drain(*clients: Client, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while any(c.in_flight() for c in clients) and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)


def summary(answers: list[tuple[int, bool, float, float, str]], since: int) -> dict[str, Any]:
    part = answers[since:]
    codes = collections.Counter(a[0] for a in part)
    return {
        "answered": len(part),
        "codes": {str(k): v for k, v in sorted(codes.items())},
        "with_retry_after_429": sum(1 for a in part if a[0] == 429 and a[1]),
        "p50_ms": round(pct([a[3] for a in part], 50), 2),
        "p99_ms": round(pct([a[3] for a in part], 99), 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pilothouse-overload-") as tmp:
        srv = testing.ServerProcess(
            Path(tmp) / "data",
            extra_args=[
                "--disable-scheduler",
                "--disable-controller-manager",
                *(args.server_args.split() if args.server_args else []),
            ],
        ).start()
        try:
            assert srv.proc is not None
            admin = tls(identity(srv, "overload-admin", ["system:masters"]))
            flood_ctx = tls(identity(srv, "overload-user", []))  # level global-default
            # The GETs come from a node (level system): another level than the flood's.
            probe_files = identity(srv, "system:node:overload-probe", ["system:nodes"])
            setup = Client("127.0.0.1", srv.port, admin)
            await setup.open(1)
            ns = json.dumps({"metadata": {"name": NS}}).encode()
            setup.send(request("POST", "/api/v1/namespaces", ns), "setup")
            probe_obj = json.dumps({"metadata": {"name": "probe"}, "data": {"k": "v"}}).encode()
            setup.send(request("POST", f"/api/v1/namespaces/{NS}/configmaps", probe_obj), "setup")
            # Their rights come from RBAC, as a real user's and a node's would (a role of
            # our own: edit's rules come from the aggregation controller, not run here).
            rbac = "/apis/rbac.authorization.k8s.io/v1"
            role = {
                "metadata": {"name": "bench-overload"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}],
            }
            setup.send(request("POST", f"{rbac}/clusterroles", json.dumps(role).encode()), "setup")
            users = ("overload-user", "system:node:overload-probe")
            binding = {
                "metadata": {"name": "bench-overload"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "bench-overload",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u}
                    for u in users
                ],
            }
            path = f"{rbac}/namespaces/{NS}/rolebindings"
            setup.send(request("POST", path, json.dumps(binding).encode()), "setup")
            await drain(setup)
            assert [a[0] for a in setup.answers] == [201] * 4, setup.answers

            flood = Client("127.0.0.1", srv.port, flood_ctx)
            await flood.open(args.connections)

            await closed_loop(flood, 2.0, args.concurrency)  # warm-up
            pid = srv.proc.pid
            first = await measured_loop(flood, pid, args.capacity_seconds, args.concurrency)
            capacity = first["creates_per_s"]

            baseline = await probe_from_another_process(
                srv.port, probe_files, args.get_rate, args.baseline_seconds
            )

            offered = args.factor * capacity
            flood_mark = len(flood.answers)
            cpu0, began = cpu_seconds(srv.proc.pid), time.perf_counter()
            client_cpu0 = time.process_time()
            during, _ = await asyncio.gather(
                probe_from_another_process(srv.port, probe_files, args.get_rate, args.seconds),
                closed_loop(flood, args.seconds, args.concurrency)
                if args.control
                else paced(flood, CREATE, "create", offered, args.seconds),
            )
            load_s = time.perf_counter() - began
            # The load stops: what never got a connection is not sent at all (the clients
            # went away); what is on the wire is answered.
            never_sent = flood.abandon()
            server_cpu_load = cpu_seconds(srv.proc.pid) - cpu0
            client_cpu_load = time.process_time() - client_cpu0
            in_load = [a for a in flood.answers[flood_mark:] if a[2] <= began + load_s]
            answered_in_load = len(in_load)
            accepted_in_load = sum(1 for a in in_load if a[0] == 201)
            rejected_in_load = sum(1 for a in in_load if a[0] == 429)
            await drain(flood, timeout=120)
            server_cpu = cpu_seconds(srv.proc.pid) - cpu0
            drained_s = time.perf_counter() - began - load_s
            overload = summary(flood.answers, flood_mark)
            accepted = overload["codes"].get("201", 0)

            # The flood's clients went away: the work after it comes on connections of
            # its own, as the same user (a connection refused with Retry-After is held
            # that long by the server, and a client that reused one would only measure
            # its own wait). Opened before the clock starts, as the flood's were.
            after_load = Client("127.0.0.1", srv.port, flood_ctx)
            await after_load.open(args.concurrency)
            after = await measured_loop(after_load, pid, args.capacity_seconds, args.concurrency)
            await asyncio.sleep(args.rest_seconds)
            rested = await measured_loop(after_load, pid, args.capacity_seconds, args.concurrency)
            for c in (setup, flood, after_load):
                c.close()
        finally:
            srv.stop()
    return {
        "benchmark": "overload",
        "control_run_no_flood": args.control,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "server_args": args.server_args,
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "create_capacity_per_s": round(capacity, 1),
        "offered_creates_per_s": round(offered, 1),
        "seconds": args.seconds,
        "get_rate_per_s": args.get_rate,
        "gets": len(during),
        "baseline_get_p50_ms": round(pct(baseline, 50), 2),
        "baseline_get_p99_ms": round(pct(baseline, 99), 2),
        "overload_get_p50_ms": round(pct(during, 50), 2),
        "overload_get_p99_ms": round(pct(during, 99), 2),
        "creates_sent": overload["answered"],
        "creates_never_sent_every_connection_busy": never_sent,
        "creates_accepted_per_s_during_load": round(accepted_in_load / load_s, 1),
        "creates_429_per_s_during_load": round(rejected_in_load / load_s, 1),
        "creates_accepted_total": accepted,
        "creates_codes": overload["codes"],
        "creates_429_with_retry_after": overload["with_retry_after_429"],
        "create_answer_p50_ms": overload["p50_ms"],
        "create_answer_p99_ms": overload["p99_ms"],
        "seconds_to_answer_the_rest_after_the_load": round(drained_s, 2),
        "server_cpu_share_during_load": round(server_cpu_load / load_s, 2),
        "server_cpu_share_load_and_drain": round(server_cpu / (load_s + drained_s), 2),
        "client_cpu_share_during_load": round(client_cpu_load / load_s, 2),
        "flood_answered_per_s_during_load": round(answered_in_load / load_s, 1),
        "recovery_creates_per_s": after["creates_per_s"],
        "recovery_vs_capacity": round(after["creates_per_s"] / capacity, 2),
        "rested_creates_per_s": rested["creates_per_s"],
        "recovery_vs_rested": round(after["creates_per_s"] / rested["creates_per_s"], 2),
        # A closed loop's first second includes its own ramp-up; the rested loop's has the
        # same ramp, so the two first seconds are the fair pair.
        "recovery_first_second_vs_rested_first_second": round(
            after["each_second"][0] / max(1, rested["each_second"][0]), 2
        )
        if after["each_second"]
        else None,
        "rested_vs_capacity": round(rested["creates_per_s"] / capacity, 2),
        "closed_loops": {"capacity": first, "recovery": after, "rested": rested},
    }


def main() -> int:
    if sys.argv[1:2] == ["--probe"]:  # the GET probe's own process (see above)
        port, ca, cert, key, rate, seconds = sys.argv[2:8]
        asyncio.run(probe(int(port), [ca, cert, key], float(rate), float(seconds)))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="length of the overload")
    p.add_argument("--factor", type=float, default=4.0, help="offered load / capacity")
    p.add_argument("--concurrency", type=int, default=64, help="closed-loop outstanding creates")
    p.add_argument("--connections", type=int, default=400, help="connections of the flood")
    p.add_argument("--get-rate", type=float, default=50.0, help="GETs per second alongside")
    p.add_argument("--capacity-seconds", type=float, default=8.0)
    p.add_argument("--baseline-seconds", type=float, default=10.0)
    p.add_argument(
        "--rest-seconds", type=float, default=10.0, help="idle time before the rested loop"
    )
    p.add_argument("--server-args", default="", help="more flags for pilothouse server")
    p.add_argument(
        "--control",
        action="store_true",
        help="a control run: instead of the flood, the closed loop of step 1 for --seconds "
        "(the store grows as much or more, nothing is ever refused), to tell what the "
        "store's growth costs the loops after it from what the flood leaves behind",
    )
    p.add_argument("--quick", action="store_true", help="short phases, for a smoke test")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.capacity_seconds, args.baseline_seconds = 5.0, 3.0, 3.0
        args.rest_seconds = 2.0
    result = asyncio.run(run(args))
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
