"""Storage: provisioning latency of local-path claims, with the bare work beside it.

Runs `pilothouse server` with its node agent (one node, this machine), then:

* ``provision_image_*``: 100 claims of the default ``local-path`` class (loop-mounted
  ext4 images, capacity enforced), created one after another, each timed from the
  create request to the watch event showing it Bound. The claims carry
  ``volume.kubernetes.io/selected-node`` from the start, as the scheduler writes it when
  it places a claim's first pod, so this is the provisioning path alone: the binder
  hands the claim to the provisioner, the agent makes the volume and its PV, the binder
  binds both ways.
* ``provision_directory_*``: the same with a class asking for plain directories
  (``parameters.backing: directory``; capacity not enforced).
* ``burst_image_s``: 100 image claims created at once, until all are Bound.
* ``baseline_*``, in the same run: what provisioning must do at least — ``mkdir`` and a
  PersistentVolume created through the API (the same HTTPS client), 100 times in a row;
  and ``baseline_image_ms``: mkfs + loop mount of one image (p50 of 20).

* ``statefulset_parallel_50_ready_s``: a StatefulSet of 50 replicas (Parallel, a
  local-path volumeClaimTemplate) until all are Ready, beside 50 bare pods created at
  once (``baseline_bare_pods_50_ready_s``) — the StatefulSet work's functions
  (bench/statefulset_ready.py), run here on a real node.

The encrypted-Secrets figure of issue 13 is measured by bench/encryption.py;
:func:`secret_create_throughput` is its place here, reported as null.

Needs root (loop devices, and the agent). Usage:
  sudo .venv/bin/python bench/storage.py [--claims 100] [--size 16Mi]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest
from pilothouse.node.runtime.images import testimage

PVC = resources.DEFAULT.by_path("", "v1", "persistentvolumeclaims")
PV = resources.DEFAULT.by_path("", "v1", "persistentvolumes")
SC = resources.DEFAULT.by_path("storage.k8s.io", "v1", "storageclasses")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
NODES = resources.DEFAULT.by_path("", "v1", "nodes")
assert PVC and PV and SC and NS and NODES


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def claim(name: str, node: str, cls: str, size: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": {"volume.kubernetes.io/selected-node": node}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": cls,
            "resources": {"requests": {"storage": size}},
        },
    }


class BoundWatcher:
    """One watch on the namespace's claims; resolves a future when a claim is Bound."""

    def __init__(self, client: rest.Client, ns: str) -> None:
        self.client = client
        self.ns = ns
        self.waiting: dict[str, asyncio.Future[float]] = {}

    def expect(self, name: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[name] = fut
        return fut

    async def run(self) -> None:
        async for event in self.client.watch(PVC, self.ns, timeout_seconds=3600):
            obj = event.get("object") or {}
            if (obj.get("status") or {}).get("phase") != "Bound":
                continue
            fut = self.waiting.get(obj["metadata"]["name"])
            if fut is not None and not fut.done():
                fut.set_result(time.perf_counter())


async def sequential(
    client: rest.Client,
    watcher: BoundWatcher,
    ns: str,
    node: str,
    cls: str,
    prefix: str,
    n: int,
    size: str,
) -> list[float]:
    out = []
    for i in range(n):
        name = f"{prefix}-{i}"
        fut = watcher.expect(name)
        t0 = time.perf_counter()
        await client.create(PVC, claim(name, node, cls, size), ns)
        out.append((await asyncio.wait_for(fut, 60) - t0) * 1000)
    return out


async def burst(
    client: rest.Client, watcher: BoundWatcher, ns: str, node: str, cls: str, n: int, size: str
) -> tuple[float, list[float]]:
    futs = [watcher.expect(f"burst-{i}") for i in range(n)]
    t0 = time.perf_counter()
    await asyncio.gather(
        *(client.create(PVC, claim(f"burst-{i}", node, cls, size), ns) for i in range(n))
    )
    done = await asyncio.wait_for(asyncio.gather(*futs), 300)
    return max(done) - t0, [(t - t0) * 1000 for t in done]


async def baseline_mkdir_and_pv(client: rest.Client, root: Path, n: int, size: str) -> list[float]:
    """What provisioning cannot avoid: a directory and a PersistentVolume through the API."""
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        path = root / f"base-{i}"
        path.mkdir(mode=0o777)
        await client.create(
            PV,
            {
                "metadata": {"name": f"bench-baseline-{i}"},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "bench-baseline",
                    "local": {"path": str(path)},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/hostname",
                                            "operator": "In",
                                            "values": ["nowhere"],
                                        }
                                    ]
                                }
                            ]
                        }
                    },
                },
            },
        )
        out.append((time.perf_counter() - t0) * 1000)
    return out


def baseline_image(root: Path, n: int) -> list[float]:
    """One ext4 image made and loop-mounted, the bare way (and unmounted after)."""
    out = []
    for i in range(n):
        image, mnt = root / f"img-{i}.ext4", root / f"mnt-{i}"
        mnt.mkdir()
        t0 = time.perf_counter()
        with open(image, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, 24 * 1024 * 1024)
        subprocess.run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-m",
                "0",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1",
                str(image),
            ],
            check=True,
        )
        subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
        out.append((time.perf_counter() - t0) * 1000)
        subprocess.run(["umount", str(mnt)], check=True)
        image.unlink()
    return out


async def statefulset_parallel_50(client: rest.Client, ns: str) -> dict[str, float]:
    """Seconds until a StatefulSet of 50 replicas (podManagementPolicy: Parallel, a
    volumeClaimTemplate of the default local-path class) is all Ready on this node, beside
    50 bare pods created at once (the StatefulSet work's functions, bench/statefulset_ready.py)."""
    import statefulset_ready  # bench/: the StatefulSet part's measurement

    command = ["sleep", "3600"]
    bare = await statefulset_ready.bare_pods_all_ready(
        client, namespace=ns, count=50, command=command
    )
    sts = await statefulset_ready.statefulset_all_ready(
        client, namespace=ns, replicas=50, command=command, storage_class="local-path"
    )
    return {
        "statefulset_parallel_50_ready_s": sts["seconds_all_ready"],
        "baseline_bare_pods_50_ready_s": bare["seconds_all_ready"],
    }


async def secret_create_throughput(client: rest.Client, ns: str) -> dict[str, float] | None:
    """Secrets created per second with encryption at rest on and off (goal: on ≥ 80 % of
    off). The encryption part of issue 13 measures it in bench/encryption.py (it needs
    servers with and without an encryption configuration); this is its place here should
    the two be merged. None until then."""
    return None


async def wait_gone(client: rest.Client, ns: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [
            v
            for v in (await client.list(PV))["items"]
            if (v["spec"].get("claimRef") or {}).get("namespace") == ns
        ]
        if not left:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"volumes of {ns} still there after {timeout}s")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pilothouse-storagebench-") as tmp_s:
        tmp = Path(tmp_s)
        image_ms = baseline_image(tmp, 20)
        # The busybox image the StatefulSet's pods run, in the node's image store.
        layout = testimage.build_busybox_oci(tmp / "layout", tag="busybox:1.36")
        testimage.oci_archive(layout, tmp / "busybox.tar")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pilothouse.cli.main",
                "images",
                "import",
                str(tmp / "busybox.tar"),
                "--data-dir",
                str(tmp / "server"),
            ],
            check=True,
            capture_output=True,
        )
        srv = testing.ServerProcess(tmp / "server", agent=True).start(timeout=60)
        client = rest.Client(config.load_kubeconfig(srv.kubeconfig), max_connections=128)
        try:
            node = ""
            deadline = time.monotonic() + 60
            while not node:
                nodes = (await client.list(NODES))["items"]
                ready = [
                    n
                    for n in nodes
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in n["status"].get("conditions") or []
                    )
                ]
                if ready:
                    node = ready[0]["metadata"]["name"]
                elif time.monotonic() > deadline:
                    raise RuntimeError(srv.log_path.read_text()[-3000:])
                else:
                    await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # the provisioner probes the node once at start
            await client.create(
                SC,
                {
                    "metadata": {"name": "bench-directory"},
                    "provisioner": "pilothouse.io/local-path",
                    "volumeBindingMode": "WaitForFirstConsumer",
                    "parameters": {"backing": "directory"},
                },
            )
            await client.create(NS, {"metadata": {"name": "bench"}})
            watcher = BoundWatcher(client, "bench")
            task = asyncio.create_task(watcher.run())
            await asyncio.sleep(0.3)
            n, size = args.claims, args.size
            (tmp / "baseline").mkdir()
            base = await baseline_mkdir_and_pv(client, tmp / "baseline", n, size)
            image = await sequential(client, watcher, "bench", node, "local-path", "img", n, size)
            directory = await sequential(
                client, watcher, "bench", node, "bench-directory", "dir", n, size
            )
            burst_s, burst_ms = await burst(client, watcher, "bench", node, "local-path", n, size)
            await client.create(NS, {"metadata": {"name": "bench-sts"}})
            sts = await statefulset_parallel_50(client, "bench-sts")
            secrets = await secret_create_throughput(client, "bench")
            task.cancel()
            await client.delete(NS, "bench-sts")
            await client.request(
                "DELETE", "/api/v1/namespaces/bench/persistentvolumeclaims", body={}
            )
            await wait_gone(client, "bench")
            await wait_gone(client, "bench-sts")
            for i in range(n):
                await client.delete(PV, f"bench-baseline-{i}")
        finally:
            await client.close()
            srv.stop()
    p50 = statistics.median(image)
    base_p50 = statistics.median(base)
    return {
        "provision_image_p50_ms": round(p50, 1),
        "provision_image_p99_ms": round(pct(image, 99), 1),
        "provision_directory_p50_ms": round(statistics.median(directory), 1),
        "provision_directory_p99_ms": round(pct(directory, 99), 1),
        "burst_image_s": round(burst_s, 2),
        "burst_image_p50_ms": round(statistics.median(burst_ms), 1),
        "burst_image_p99_ms": round(pct(burst_ms, 99), 1),
        "baseline_mkdir_pv_p50_ms": round(base_p50, 1),
        "baseline_mkdir_pv_p99_ms": round(pct(base, 99), 1),
        "baseline_image_ms": round(statistics.median(image_ms), 1),
        "image_p50_vs_baseline": round(p50 / (base_p50 + statistics.median(image_ms)), 2),
        "directory_p50_vs_baseline": round(statistics.median(directory) / base_p50, 2),
        **sts,
        "secret_creates_per_s": secrets,
        "claims": n,
        "size": size,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--claims", type=int, default=100)
    parser.add_argument("--size", default="16Mi")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/storage.py mounts images and runs the node agent: run it as root")
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
