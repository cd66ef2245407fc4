"""StatefulSet start-up: a Parallel StatefulSet of 50 replicas on one node — seconds until
all are Ready — beside the same number of bare pods as the baseline.

:func:`statefulset_all_ready` and :func:`bare_pods_all_ready` take any connected
``rest.Client`` and a namespace, so bench/storage.py can measure them on a real node
with the local-path provisioner (``storage_class="local-path"``, a busybox image and a
command that keeps running). Run on its own, this script measures them on one hollow
node: the API server is a child process, the StatefulSet controller and the hollow node
run here, pods are pinned to the node (``nodeName``) and their claims stay Pending
(hollow nodes mount nothing) — the controller's own cost: claims made before pods,
names, identities and the revision.

Usage: python bench/statefulset_ready.py [--replicas 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import controllers  # bench/: the server child process
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.controllers import manager, statefulset
from pilothouse.node import hollow


def _resource(group: str, plural: str) -> resources.Resource:
    r = resources.DEFAULT.by_path(group, "v1", plural)
    assert r is not None
    return r


STATEFULSETS = _resource("apps", "statefulsets")
PODS = _resource("", "pods")
NAMESPACES = _resource("", "namespaces")


def stateful_set(
    name: str,
    replicas: int,
    *,
    image: str,
    command: list[str] | None,
    node_name: str | None,
    storage_class: str | None,
    claims: bool,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if command:
        container["command"] = command
    pod_spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 0}
    if node_name:
        pod_spec["nodeName"] = node_name
    spec: dict[str, Any] = {
        "replicas": replicas,
        "serviceName": name,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
    }
    if claims:
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "64Mi"}},
        }
        if storage_class:
            claim_spec["storageClassName"] = storage_class
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": claim_spec}]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": spec,
    }


async def statefulset_all_ready(
    client: rest.Client,
    *,
    namespace: str,
    replicas: int = 50,
    image: str = "busybox:1.36",
    command: list[str] | None = None,
    node_name: str | None = None,
    storage_class: str | None = None,
    claims: bool = True,
    name: str = "bench-sts",
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Create a Parallel StatefulSet and time it until ``status.readyReplicas`` is all of
    them; the StatefulSet controller (and, for claims, a provisioner) must be running."""
    body = stateful_set(
        name,
        replicas,
        image=image,
        command=command,
        node_name=node_name,
        storage_class=storage_class,
        claims=claims,
    )
    t0 = time.monotonic()
    await client.create(STATEFULSETS, body, namespace)
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        st = (await client.get(STATEFULSETS, name, namespace)).get("status") or {}
        if int(st.get("readyReplicas") or 0) == replicas:
            return {"replicas": replicas, "seconds_all_ready": round(time.monotonic() - t0, 3)}
        await asyncio.sleep(0.02)
    raise TimeoutError(f"StatefulSet {name}: not all {replicas} replicas Ready in {timeout}s")


async def bare_pods_all_ready(
    client: rest.Client,
    *,
    namespace: str,
    count: int = 50,
    image: str = "busybox:1.36",
    command: list[str] | None = None,
    node_name: str | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """The baseline: ``count`` pods with no controller and no claims, created at once."""
    container: dict[str, Any] = {"name": "app", "image": image}
    if command:
        container["command"] = command
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 0}
    if node_name:
        spec["nodeName"] = node_name
    t0 = time.monotonic()
    await asyncio.gather(
        *(
            client.create(
                PODS,
                {"metadata": {"name": f"bare-{i}", "labels": {"app": "bare"}}, "spec": spec},
                namespace,
            )
            for i in range(count)
        )
    )
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        items = (await client.list(PODS, namespace, label_selector="app=bare"))["items"]
        ready = sum(
            1
            for p in items
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        )
        if ready == count:
            return {"pods": count, "seconds_all_ready": round(time.monotonic() - t0, 3)}
        await asyncio.sleep(0.02)
    raise TimeoutError(f"not all {count} bare pods Ready in {timeout}s")


async def on_a_hollow_node(data_dir: Path, replicas: int) -> dict[str, Any]:
    cfg = config.load_kubeconfig(data_dir / "kubeconfig.yaml")
    ctl = rest.Client(cfg.with_user_agent("bench-statefulset"), max_connections=64)
    nodes = rest.Client(cfg.with_user_agent("bench-hollow"), max_connections=64)
    observer = rest.Client(cfg.with_user_agent("bench-observer"), max_connections=64)
    sim = hollow.HollowCluster(nodes, count=1, name_prefix="sts-", pods=replicas * 3, heartbeat=60)
    await sim.start()
    node = next(iter(sim.nodes))
    cm = manager.ControllerManager(
        ctl, factories={"statefulset": statefulset.StatefulSetController}
    )
    task = asyncio.create_task(cm.run())
    try:
        await asyncio.wait_for(cm.ready.wait(), 60)
        for ns in ("bench-sts", "bench-bare"):
            await observer.create(NAMESPACES, {"metadata": {"name": ns}})
        baseline = await bare_pods_all_ready(
            observer, namespace="bench-bare", count=replicas, node_name=node
        )
        c0 = ctl.requests
        result = await statefulset_all_ready(
            observer, namespace="bench-sts", replicas=replicas, node_name=node
        )
        result["controller_requests"] = ctl.requests - c0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sim.stop()
        for c in (ctl, nodes, observer):
            await c.close()
    return {
        "statefulset_parallel": result,
        "baseline_bare_pods": baseline,
        "ratio_to_baseline": round(result["seconds_all_ready"] / baseline["seconds_all_ready"], 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=50)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-sts-") as tmp:
        data_dir = Path(tmp) / "data"
        result = controllers.run_server(
            data_dir, lambda _port: on_a_hollow_node(data_dir, args.replicas)
        )
    print(
        json.dumps(
            {
                "benchmark": "statefulset_ready",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "setup": {
                    "server": "child process, HTTPS, SQLite (durable commits), no controllers",
                    "bench_process": "the StatefulSet controller and one hollow node",
                    "pods": "pinned to the hollow node; claims created, left Pending",
                },
                **result,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
