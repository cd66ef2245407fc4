"""Write path: the API server's CPU per write, by kind — the writes a pod costs at scale.

Runs ``pilothouse server`` as a child process with only the API server working
(``--disable-scheduler --disable-controller-manager``, no agent), so the server's CPU
during a phase is the cost of that phase's requests and nothing else. From this
process, over HTTPS at ``--concurrency``, with bodies encoded by orjson as pilothouse's
own clients (controllers, scheduler, hollow nodes) encode them, one phase per kind:

- ``floor``: ``GET /version`` — the HTTP, TLS and middleware cost every request pays
  (the baseline, measured in the same run);
- ``create``: ``POST`` a pod as the ReplicaSet controller makes it (``generateName``,
  labels, an owner reference, one container);
- ``binding``: ``POST pods/NAME/binding``, as the scheduler binds;
- ``status``: ``PUT pods/NAME/status`` of the whole bound pod now Running and Ready (with
  its resourceVersion), on half the pods;
- ``status_patch``: the same status as a merge patch of ``/status`` guarded by the pod's
  uid, as the agent's status manager writes it, on the other half;
- ``lease``: ``PUT`` of a node's Lease with a new ``renewTime`` (one per node in
  ``--pods`` Leases), as a node renews.

Each figure is the server's CPU seconds during the phase (user + system, from
/proc) divided by the phase's requests, in µs, and the same less the floor. Between
phases (unmeasured) the bench lists the pods to learn their resourceVersions.

Prints progress on stderr and one JSON object on stdout.
Usage: python bench/writepath.py [--pods 3000] [--concurrency 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from pilothouse import testing
from pilothouse.client import config

NS = "default"
NODE = "bench-node"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def say(msg: str) -> None:
    print(f"[writepath {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Api:
    """An HTTPS client with the kubeconfig's admin identity (aiohttp, one pool)."""

    def __init__(self, kubeconfig: Path, concurrency: int) -> None:
        cfg = config.load_kubeconfig(kubeconfig)
        self.base = cfg.server
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=cfg.ssl_context() or False, limit=concurrency),
            headers={"Accept": "application/json", "User-Agent": "bench-writepath/1"},
        )

    async def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method, self.base + path, data=data, headers=headers
        ) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
            return orjson.loads(payload)

    async def close(self) -> None:
        await self.session.close()


def pod_template(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "big-5d8f7c9b6-",
            "namespace": NS,
            "labels": {"app": "big", "pod-template-hash": "5d8f7c9b6"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "big-5d8f7c9b6",
                    "uid": "0b7d2f1e-6a43-4c39-9a8e-2f0d1c3b4a59",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "img",
                    "image": "img:1",
                    "imagePullPolicy": "IfNotPresent",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        },
    }


def running(pod: dict[str, Any], i: int) -> dict[str, Any]:
    """The pod as a node reports it Running and Ready (the hollow node's status)."""
    t = now()
    ip = f"10.1.{i // 250}.{i % 250 + 1}"
    conditions = [
        {"type": c, "status": "True", "lastProbeTime": None, "lastTransitionTime": t}
        for c in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
    ]
    old = [
        c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"
    ]
    return {
        **pod,
        "status": {
            "phase": "Running",
            "conditions": conditions + old,
            "hostIP": "10.0.0.1",
            "hostIPs": [{"ip": "10.0.0.1"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": t,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": "img",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "image": "img:1",
                    "imageID": "sha256:0000",
                    "containerID": "hollow://img",
                    "state": {"running": {"startedAt": t}},
                    "lastState": {},
                }
            ],
        },
    }


async def phase(
    srv_pid: int, count: int, concurrency: int, request: Callable[[int], Awaitable[Any]]
) -> dict[str, float]:
    """Run ``request(i)`` for every i at ``concurrency``; the server's CPU per request."""
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await request(i)

    cpu0, t0 = cpu_seconds(srv_pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = cpu_seconds(srv_pid) - cpu0, time.perf_counter() - t0
    return {"server_cpu_us": round(cpu / count * 1e6, 1), "per_s": round(count / wall, 1)}


async def round_(api: Api, pid: int, n: int, c: int, tag: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    out["floor"] = await phase(pid, n, c, lambda i: api.call("GET", "/version"))
    names: list[str] = [""] * n

    async def create(i: int) -> None:
        created = await api.call("POST", f"/api/v1/namespaces/{NS}/pods", pod_template(i))
        names[i] = created["metadata"]["name"]

    out["create"] = await phase(pid, n, c, create)

    async def bind(i: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": names[i]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
        }
        await api.call("POST", f"/api/v1/namespaces/{NS}/pods/{names[i]}/binding", body)

    out["binding"] = await phase(pid, n, c, bind)
    listed = await api.call("GET", f"/api/v1/namespaces/{NS}/pods")
    pods = {p["metadata"]["name"]: p for p in listed["items"]}

    async def status(i: int) -> None:
        i *= 2  # the even pods
        pod = pods[names[i]]
        await api.call("PUT", f"/api/v1/namespaces/{NS}/pods/{names[i]}/status", running(pod, i))

    async def status_patch(i: int) -> None:
        i = 2 * i + 1  # the odd pods
        pod = pods[names[i]]
        body = {"metadata": {"uid": pod["metadata"]["uid"]}, "status": running(pod, i)["status"]}
        await api.call(
            "PATCH",
            f"/api/v1/namespaces/{NS}/pods/{names[i]}/status",
            body,
            content_type="application/merge-patch+json",
        )

    out["status"] = await phase(pid, n // 2, c, status)
    out["status_patch"] = await phase(pid, n // 2, c, status_patch)
    leases: list[dict[str, Any]] = [{}] * n

    async def make_lease(i: int) -> None:
        leases[i] = await api.call(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": f"{tag}-node-{i}"},
                "spec": {
                    "holderIdentity": f"{tag}-node-{i}",
                    "leaseDurationSeconds": 40,
                    "renewTime": now().replace("Z", ".000000Z"),
                },
            },
        )

    await asyncio.gather(*(make_lease(i) for i in range(n)))

    async def renew(i: int) -> None:
        lease = leases[i]
        body = {**lease, "spec": {**lease["spec"], "renewTime": now().replace("Z", ".123456Z")}}
        await api.call(
            "PUT",
            f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{tag}-node-{i}",
            body,
        )

    out["lease"] = await phase(pid, n, c, renew)
    floor = out["floor"]["server_cpu_us"]
    for kind in ("create", "binding", "status", "status_patch", "lease"):
        out[kind]["over_floor_us"] = round(out[kind]["server_cpu_us"] - floor, 1)
    # Leave the next round an empty namespace, unmeasured.
    await api.call("DELETE", f"/api/v1/namespaces/{NS}/pods?gracePeriodSeconds=0")
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ph-writepath-"))
    srv = testing.ServerProcess(
        tmp / "server", extra_args=["--disable-scheduler", "--disable-controller-manager"]
    )
    result: dict[str, Any] = {
        "bench": "writepath",
        "pods": args.pods,
        "concurrency": args.concurrency,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
    }
    try:
        say(f"starting pilothouse server in {tmp}")
        srv.start(timeout=60)
        assert srv.proc is not None
        api = Api(srv.kubeconfig, args.concurrency)
        try:
            await api.call(
                "POST",
                "/api/v1/nodes",
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}},
            )
            rounds = []
            for r in range(args.rounds):
                say(f"round {r + 1}: {args.pods:,} of each write")
                rounds.append(await round_(api, srv.proc.pid, args.pods, args.concurrency, f"r{r}"))
                say(json.dumps(rounds[-1]))
            result["rounds"] = rounds
            result["best_us"] = {
                kind: min(r[kind]["server_cpu_us"] for r in rounds) for kind in rounds[0]
            }
        finally:
            await api.close()
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_after"] = os.getloadavg()[0]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=3000, help="writes of each kind per round")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
