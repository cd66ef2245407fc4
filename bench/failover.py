"""Fail-over time: the leader's process is killed → the new leader's first write.

Three ``pilothouse server`` processes (no agent) on one local etcd (Debian's
etcd-server, fsync on), joined as a cluster would be (the first founds it, the
others join with its token). The controller manager and the scheduler lead through
Leases in kube-system (15 s lease, 2 s retry, as upstream's defaults).

Each round finds the server holding the ``kube-controller-manager`` Lease, kills it
and measures, on a surviving server:

* ``lease_acquired_s`` — kill → the new holder's write of the Lease (its
  ``acquireTime``, written by the new leader; same machine, same clock);
* ``first_controller_write_s`` — kill → the first write a controller of the new
  leader makes: a Deployment scaled from 1 to 2 just after the kill gets its new
  ReplicaSet size (``status.replicas`` of the ReplicaSet written by the controller).

Goal: ``lease_acquired_s`` ≤ lease duration + 2 s (17 s). The baseline in the same
run is a *clean* stop (SIGTERM) of the leader: the Lease is released and the next
server takes it at its next retry — the fail-over time with nothing to wait for.
The killed server is started again between rounds.

Usage: python bench/failover.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.storage.etcd import testing as etcd_testing

LEASES = resources.DEFAULT.by_path("coordination.k8s.io", "v1", "leases")
DEPLOYMENTS = resources.DEFAULT.by_path("apps", "v1", "deployments")
REPLICASETS = resources.DEFAULT.by_path("apps", "v1", "replicasets")
LEASE_NAME = "kube-controller-manager"
LEASE_DURATION = 15.0


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Cluster:
    def __init__(self, root: Path, endpoint: str) -> None:
        self.root = root
        self.endpoint = endpoint
        self.servers: list[testing.ServerProcess] = []

    def start(self) -> None:
        args = ["--datastore-endpoint", self.endpoint]
        first = testing.ServerProcess(self.root / "s0", extra_args=args).start(timeout=60)
        self.servers.append(first)
        token = (first.data_dir / "token").read_text().strip()
        for i in (1, 2):
            join = [*args, "--token", token, "--server", first.url]
            self.servers.append(
                testing.ServerProcess(self.root / f"s{i}", extra_args=join).start(timeout=60)
            )

    def stop(self) -> None:
        for s in self.servers:
            s.stop()

    def alive(self) -> list[int]:
        return [
            i for i, s in enumerate(self.servers) if s.proc is not None and s.proc.poll() is None
        ]


async def holder(c: rest.Client) -> dict[str, Any]:
    lease = await c.get(LEASES, LEASE_NAME, "kube-system")
    spec: dict[str, Any] = lease["spec"]
    return spec


def leader_index(cluster: Cluster, identity: str) -> int:
    for i, s in enumerate(cluster.servers):
        if f"{identity}: became leader of kube-system/{LEASE_NAME}" in s.log_path.read_text():
            return i
    raise RuntimeError(f"no server log names {identity} as leader")


async def one_round(cluster: Cluster, n: int, *, graceful: bool) -> dict[str, float]:
    clients = {
        i: rest.Client(config.load_kubeconfig(cluster.servers[i].kubeconfig))
        for i in cluster.alive()
    }
    try:
        any_client = next(iter(clients.values()))
        # Wait for a settled leader (after a previous round's restart).
        while True:
            with_holder = await holder(any_client)
            if with_holder.get("holderIdentity"):
                break
            await asyncio.sleep(0.2)
        old = with_holder["holderIdentity"]
        victim = leader_index(cluster, old)
        survivor = next(i for i in clients if i != victim)
        c = clients[survivor]
        name = f"failover-{n}-{'term' if graceful else 'kill'}"
        await c.create(DEPLOYMENTS, deployment(name), "default")
        while True:  # the Deployment settled at one replica under the old leader
            rs = (await c.list(REPLICASETS, "default", label_selector=f"app={name}"))["items"]
            if rs and (rs[0].get("status") or {}).get("replicas") == 1:
                break
            await asyncio.sleep(0.05)
        killed_at = time.time()
        if graceful:
            cluster.servers[victim].stop()
        else:
            cluster.servers[victim].kill()
        await c.patch(DEPLOYMENTS, name, {"spec": {"replicas": 2}}, "default")
        lease_s = controller_s = 0.0
        while not (lease_s and controller_s):
            if not lease_s:
                spec = await holder(c)
                if spec.get("holderIdentity") not in (None, "", old):
                    lease_s = parse_time(spec["acquireTime"]) - killed_at
            if not controller_s:
                rs = (await c.list(REPLICASETS, "default", label_selector=f"app={name}"))["items"]
                if rs and (rs[0].get("status") or {}).get("replicas") == 2:
                    controller_s = time.time() - killed_at
            await asyncio.sleep(0.02)
        return {
            "lease_acquired_s": round(lease_s, 2),
            "first_controller_write_s": round(controller_s, 2),
            "victim": victim,
        }
    finally:
        for cl in clients.values():
            await cl.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="ph-failover-") as tmp,
        etcd_testing.EtcdProcess() as etcd,
    ):
        cluster = Cluster(Path(tmp), etcd.endpoint)
        cluster.start()
        results: dict[str, list[dict[str, float]]] = {"kill": [], "sigterm": []}
        try:
            for n in range(args.rounds):
                for mode in ("kill", "sigterm"):
                    r = await one_round(cluster, n, graceful=mode == "sigterm")
                    results[mode].append(r)
                    cluster.servers[int(r["victim"])].start(timeout=60)
        finally:
            cluster.stop()

    def summary(rounds: list[dict[str, float]], key: str) -> dict[str, float]:
        values = [r[key] for r in rounds]
        return {"median": round(statistics.median(values), 2), "max": round(max(values), 2)}

    kill_lease = summary(results["kill"], "lease_acquired_s")
    return {
        "servers": 3,
        "rounds": args.rounds,
        "lease_duration_s": LEASE_DURATION,
        "kill9_lease_acquired_s": kill_lease,
        "kill9_first_controller_write_s": summary(results["kill"], "first_controller_write_s"),
        "baseline_sigterm_lease_acquired_s": summary(results["sigterm"], "lease_acquired_s"),
        "baseline_sigterm_first_controller_write_s": summary(
            results["sigterm"], "first_controller_write_s"
        ),
        "goal_s": LEASE_DURATION + 2,
        "goal_met": kill_lease["max"] <= LEASE_DURATION + 2,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="kills (and clean stops) to time")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
