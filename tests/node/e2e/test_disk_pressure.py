"""A node on small loop-mounted filesystems: image garbage collection on the image
filesystem, pods breaking their local-storage limits, and disk pressure on the node
filesystem — with real containers, the real kubectl, and upstream's thresholds and
messages from a KubeletConfiguration file.

Layout: the server's data directory is a 400 MiB ext4 (the node filesystem, "nodefs");
the agent's image store inside it is a 64 MiB ext4 of its own (a dedicated "imagefs").
Images come through a docker.io mirror on 127.0.0.1, or from `pilothouse images import`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.node.runtime import fsstats
from pilothouse.node.runtime.images import standin, testimage

from .conftest import Leftovers
from .loopfs import loop_filesystem
from .realcluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.containers, pytest.mark.netns, pytest.mark.kubectl]

MI = 1 << 20
KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
imageGCHighThresholdPercent: 60
imageGCLowThresholdPercent: 40
imageMinimumGCAge: 0s
evictionHard:
  nodefs.available: 25%
  imagefs.available: 5%
evictionPressureTransitionPeriod: 5s
nodeStatusUpdateFrequency: 2s
"""


class DiskCluster(Cluster):
    data: Path
    images: Path


@pytest.fixture(scope="module")
def disk_cluster(
    tmp_path_factory: pytest.TempPathFactory, local_registry: Any, machine_leftovers: Leftovers
) -> Iterator[DiskCluster]:
    tmp = tmp_path_factory.mktemp("disk")
    data = tmp / "data"
    images = data / "agent" / "images"
    asyncio.run(
        local_registry.push(testimage.build_busybox_oci(tmp / "bb"), "library/busybox:latest")
    )
    (tmp / "kubelet.yaml").write_text(KUBELET_CONFIG)
    (tmp / "registries.yaml").write_text(
        f'mirrors:\n  docker.io:\n    endpoint: ["http://{local_registry.host}"]\n'
    )
    with (
        loop_filesystem(tmp / "nodefs.img", data, size_mb=400),
        loop_filesystem(tmp / "imagefs.img", images, size_mb=64),
    ):
        srv = testing.ServerProcess(
            data,
            agent=True,
            extra_args=[
                "--kubelet-config", str(tmp / "kubelet.yaml"),
                "--private-registry", str(tmp / "registries.yaml"),
                "--disable-default-registry-endpoint",
            ],
        )  # fmt: skip
        srv.start(timeout=60)
        c = DiskCluster(srv, "busybox")
        c.data, c.images = data, images
        try:
            c.wait(
                lambda: (
                    "Ready" in c.kubectl("get", "nodes", "--no-headers", check=False).stdout.split()
                ),
                timeout=60,
                what="the node to be Ready",
            )
            yield c
        finally:
            (data / "fill").unlink(missing_ok=True)
            listing = c.kubectl("get", "pods", "-A", "-o", "json", check=False).stdout
            uids = c.uids | {
                p["metadata"]["uid"] for p in json.loads(listing or "{}").get("items", [])
            }
            for ns in c.kubectl("get", "ns", "-o", "name", check=False).stdout.split():
                if ns.startswith("namespace/e2e-"):
                    c.kubectl("delete", ns, "--wait=false", check=False)
            c.kubectl("delete", "priorityclass", "e2e-low", "e2e-high", check=False)
            try:
                c.wait(
                    lambda: (
                        not [
                            line
                            for line in c.kubectl(
                                "get", "pods", "-A", "--no-headers", check=False
                            ).stdout.splitlines()
                            if line.startswith("e2e-")
                        ]
                    ),
                    timeout=90,
                    what="test pods to go",
                )
            finally:
                srv.stop()
            ours = {str(data), str(images)}  # the two test filesystems, unmounted next
            left = [x for x in machine_leftovers(data, uids) if x not in ours]
            assert not left, f"left behind on the machine: {left}"


@pytest.fixture
def ns(disk_cluster: DiskCluster) -> str:
    import uuid

    name = "e2e-" + uuid.uuid4().hex[:8]
    disk_cluster.kubectl("create", "namespace", name)
    return name


def usage_percent(path: Path) -> int:
    s = fsstats.fs_stats(path)
    return 100 - int(s.available * 100 / s.capacity)


def stored(c: DiskCluster) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", "images", "ls", "-o", "json",
         "--data-dir", str(c.data)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return {i["id"]: i["repoTags"] for i in json.loads(out)["images"]}


def failed(c: Cluster, ns: str, name: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = c.pod(ns, name).get("status") or {}
        return status if status.get("phase") == "Failed" else None

    result: dict[str, Any] = c.wait(done, timeout=timeout, what=f"{ns}/{name} to fail")
    return result


def test_image_gc_frees_the_image_filesystem_down_to_the_low_threshold(
    disk_cluster: DiskCluster, ns: str, tmp_path: Path
) -> None:
    c = disk_cluster
    c.run(ns, "user", ["sleep", "3600"])  # busybox:latest, pulled through the mirror: in use
    busybox = next(
        iid for iid, tags in stored(c).items() if "docker.io/library/busybox:latest" in tags
    )
    imported: list[str] = []
    usage = [usage_percent(c.images)]
    for i in range(7):
        layout = testimage.write_oci_layout(
            tmp_path / f"img{i}", [standin.unique_layer(f"img{i}", 5 * MI)], tag=f"gc/img{i}:1"
        )
        subprocess.run(
            [sys.executable, "-m", "pilothouse.cli.main", "images", "import", str(layout),
             "--data-dir", str(c.data)],
            check=True, capture_output=True,
        )  # fmt: skip
        imported.append(
            next(iid for iid, tags in stored(c).items() if f"docker.io/gc/img{i}:1" in tags)
        )
        time.sleep(1.1)  # each arrives at its own second: the LRU order is the import order
        usage.append(usage_percent(c.images))
        # Past the high threshold — or past it while an import unpacked (its temporary
        # files count) and already collected by the agent's monitor: usage fell.
        if usage[-1] >= 60 or usage[-1] < usage[-2]:
            break
    assert usage[-1] >= 60 or usage[-1] < usage[-2], (
        f"the imports must go past the high threshold (usage after each: {usage})"
    )

    def collected() -> bool:
        return usage_percent(c.images) <= 40

    c.wait(collected, timeout=40, what="image GC to bring the image filesystem to 40%")
    left = stored(c)
    assert busybox in left, "an image a container uses is never removed"
    gone = [i for i in imported if i not in left]
    kept = [i for i in imported if i in left]
    assert gone and kept, (gone, kept)
    assert imported[: len(gone)] == gone, "least recently used (oldest) first"
    assert imported[-1] in kept
    events = c.kubectl("-n", "default", "get", "events", "-o", "json").stdout
    assert "FreeDiskSpaceFailed" not in events
    c.kubectl("-n", ns, "delete", "pod", "user", "--grace-period=1")


def test_pods_past_their_ephemeral_storage_limits_are_evicted(
    disk_cluster: DiskCluster, ns: str
) -> None:
    c = disk_cluster
    hog = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hog"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox",
                "command": ["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=20; sleep 3600"],
                "resources": {"limits": {"ephemeral-storage": "10Mi"}},
            }],
        },
    }  # fmt: skip
    scratch = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "scratch"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox",
                "command": ["sh", "-c", "dd if=/dev/zero of=/scratch/f bs=1M count=8; sleep 3600"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            }],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "4Mi"}}],
        },
    }  # fmt: skip
    c.apply(ns, hog)
    c.apply(ns, scratch)
    status = failed(c, ns, "hog")
    assert status["reason"] == "Evicted"
    assert status["message"] == (
        "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. "
    )
    assert "terminated" in status["containerStatuses"][0]["state"]
    status = failed(c, ns, "scratch")
    assert (status["reason"], status["message"]) == (
        "Evicted", 'Usage of EmptyDir volume "scratch" exceeds the limit "4Mi". '
    )  # fmt: skip
    events = json.loads(
        c.kubectl(
            "-n", ns, "get", "events", "--field-selector", "reason=Evicted", "-o", "json"
        ).stdout
    )["items"]
    assert {e["involvedObject"]["name"] for e in events} == {"hog", "scratch"}
    assert all(e["type"] == "Warning" for e in events)


def test_disk_pressure_taints_evicts_the_lowest_priority_first_and_clears(
    disk_cluster: DiskCluster, ns: str
) -> None:
    c = disk_cluster
    for name, value in (("e2e-low", 10), ("e2e-high", 1000)):
        c.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value,
        }))  # fmt: skip
    for name, cls in (("low", "e2e-low"), ("high", "e2e-high")):
        c.apply(ns, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {
                "priorityClassName": cls, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}],
            },
        })  # fmt: skip
        c.running(ns, name)
    node = c.kubectl("get", "nodes", "-o", "name").stdout.split()[0]

    def condition() -> str:
        obj = json.loads(c.kubectl("get", node, "-o", "json").stdout)
        return next(x["status"] for x in obj["status"]["conditions"] if x["type"] == "DiskPressure")

    def tainted() -> bool:
        obj = json.loads(c.kubectl("get", node, "-o", "json").stdout)
        return any(
            t["key"] == "node.kubernetes.io/disk-pressure" and t["effect"] == "NoSchedule"
            for t in obj["spec"].get("taints") or []
        )

    assert condition() == "False" and not tainted()
    # fill the node filesystem from the host until less than 25% is left
    stats = fsstats.fs_stats(c.data)
    leave = int(stats.capacity * 0.15)
    fill = c.data / "fill"
    subprocess.run(["fallocate", "-l", str(stats.available - leave), str(fill)], check=True)
    try:
        c.wait(lambda: condition() == "True", timeout=40, what="DiskPressure")
        c.wait(tainted, timeout=30, what="the disk-pressure taint")
        low = failed(c, ns, "low", timeout=60)
        assert low["reason"] == "Evicted"
        assert low["message"].startswith(
            "The node was low on resource: ephemeral-storage. Threshold quantity: "
        ), low["message"]
        target = next(x for x in low["conditions"] if x["type"] == "DisruptionTarget")
        assert target["reason"] == "TerminationByKubelet"
        high = c.pod(ns, "high")["status"]
        if high.get("phase") == "Failed":  # pressure lasted long enough for a second round
            stamps = {
                e["involvedObject"]["name"]: e["firstTimestamp"] or e["eventTime"]
                for e in json.loads(c.kubectl(
                    "-n", ns, "get", "events", "--field-selector", "reason=Evicted", "-o", "json"
                ).stdout)["items"]
            }  # fmt: skip
            assert stamps["low"] <= stamps["high"]
    finally:
        fill.unlink(missing_ok=True)
    os.sync()
    c.wait(lambda: condition() == "False", timeout=60, what="DiskPressure to clear")
    c.wait(lambda: not tainted(), timeout=30, what="the taint to go")
