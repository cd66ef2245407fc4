"""Storage end to end: `pilothouse server` with its agent, real containers, the real
kubectl. Claims of the built-in local-path class (WaitForFirstConsumer, loop-mounted
images) keep their data across pods, are removed with their claims, and enforce their
capacity; hand-made hostPath volumes bind matching claims; a claim in use waits for its
pod; a class nobody provisions says so. Needs root; CI runs as root.

Before the module's cluster stops, every claim is deleted and the module waits for the
volumes to go, so no image stays mounted (the cluster fixture checks for leftovers).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .realcluster import Cluster, pod_manifest

pytestmark = [
    pytest.mark.root,
    pytest.mark.containers,
    pytest.mark.netns,
    pytest.mark.kubectl,
    pytest.mark.slow,
]

Obj = dict[str, Any]


@pytest.fixture(scope="module", autouse=True)
def volumes_removed_before_the_cluster_stops(cluster: Cluster) -> Iterator[None]:
    yield
    for ns in cluster.kubectl("get", "ns", "-o", "name", check=False).stdout.split():
        if ns.startswith("namespace/e2e-"):
            name = ns.split("/", 1)[1]
            cluster.kubectl("-n", name, "delete", "pods", "--all", "--grace-period=0", check=False)
            cluster.kubectl("-n", name, "delete", "pvc", "--all", "--wait=false", check=False)

    def provisioned_left() -> list[str]:
        listing = json.loads(cluster.kubectl("get", "pv", "-o", "json").stdout)
        return [
            v["metadata"]["name"]
            for v in listing["items"]
            if (v["metadata"].get("annotations") or {}).get("pv.kubernetes.io/provisioned-by")
            == "pilothouse.io/local-path"
        ]

    cluster.wait(lambda: not provisioned_left(), timeout=120, what="provisioned volumes to go")


def claim(name: str, size: str = "64Mi", **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            **spec,
        },
    }


def with_claim(
    cluster: Cluster, name: str, claim_name: str, command: list[str], **spec: Any
) -> Obj:
    mount: Obj = {"name": "data", "mountPath": "/data"}
    mount.update(spec.pop("mount", {}))
    manifest = pod_manifest(
        name,
        cluster.image,
        command,
        container={"volumeMounts": [mount], **spec.pop("container", {})},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        **spec,
    )
    return manifest


def finished(cluster: Cluster, ns: str, name: str, timeout: float = 90) -> str:
    def done() -> str | None:
        phase = cluster.pod(ns, name)["status"].get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    try:
        phase: str = cluster.wait(done, timeout=timeout, what=f"{name} to finish")
    except AssertionError as exc:
        described = cluster.kubectl("-n", ns, "describe", "pod", name, check=False).stdout
        raise AssertionError(f"{exc}\n{described}") from None
    return phase


def test_data_outlives_the_pod_and_goes_with_the_claim(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, claim("data"))
    pending = cluster.kubectl("-n", ns, "get", "pvc", "data").stdout.split()
    assert pending[:3] == ["NAME", "STATUS", "VOLUME"] and pending[pending.index("data") + 1] == (
        "Pending"
    )
    cluster.apply(
        ns,
        with_claim(
            cluster,
            "writer",
            "data",
            ["sh", "-c", "echo hello from $(hostname) > /data/greeting"],
            restartPolicy="Never",
        ),
    )
    assert finished(cluster, ns, "writer") == "Succeeded"
    pvc = cluster.json("-n", ns, "get", "pvc", "data")
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["storageClassName"] == "local-path"
    node = cluster.pod(ns, "writer")["spec"]["nodeName"]
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    volume = pvc["spec"]["volumeName"]
    path = Path(cluster.json("get", "pv", volume)["spec"]["local"]["path"])
    assert (path / "greeting").read_text() == "hello from writer\n"
    table = cluster.kubectl("get", "pv", volume).stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "CAPACITY",
        "ACCESS",
        "MODES",
        "RECLAIM",
        "POLICY",
        "STATUS",
        "CLAIM",
        "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS",
        "REASON",
        "AGE",
    ]
    assert table[1].split()[:6] == [volume, "64Mi", "RWO", "Delete", "Bound", f"{ns}/data"]
    cluster.kubectl("-n", ns, "delete", "pod", "writer")
    cluster.apply(
        ns,
        with_claim(cluster, "reader", "data", ["cat", "/data/greeting"], restartPolicy="Never"),
    )
    assert finished(cluster, ns, "reader") == "Succeeded"
    assert cluster.kubectl("-n", ns, "logs", "reader").stdout == "hello from writer\n"
    described = cluster.kubectl("-n", ns, "describe", "pvc", "data").stdout
    assert "ProvisioningSucceeded" in described
    assert f"Successfully provisioned volume {volume}" in described
    cluster.kubectl("-n", ns, "delete", "pod", "reader")
    cluster.kubectl("-n", ns, "delete", "pvc", "data", "--timeout=60s")
    cluster.wait(
        lambda: "NotFound" in cluster.kubectl("get", "pv", volume, check=False).stderr,
        timeout=60,
        what="the volume to go",
    )
    assert not path.exists()


def test_capacity_is_enforced_inside_the_container(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, claim("small", "32Mi"))
    cluster.apply(
        ns,
        with_claim(
            cluster,
            "filler",
            "small",
            ["sh", "-c", "dd if=/dev/zero of=/data/big bs=1M count=100; df -k /data"],
            restartPolicy="Never",
        ),
    )
    assert finished(cluster, ns, "filler") == "Succeeded"  # df's status: the shell's last
    logs = cluster.kubectl("-n", ns, "logs", "filler").stdout
    assert "No space left on device" in cluster.kubectl("-n", ns, "logs", "filler").stderr + logs


def test_non_root_pod_writes_through_fs_group_and_sub_path(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, claim("shared"))
    cluster.apply(
        ns,
        with_claim(
            cluster,
            "app",
            "shared",
            ["sh", "-c", "id -G; echo ok > /data/note && ls -ln /data/note"],
            mount={"subPath": "app/state"},
            securityContext={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000},
            restartPolicy="Never",
        ),
    )
    phase = finished(cluster, ns, "app")
    out = cluster.kubectl("-n", ns, "logs", "app").stdout.split("\n")
    assert phase == "Succeeded", out
    assert "2000" in out[0].split()
    assert out[1].split()[2:4] == ["1000", "2000"]  # owner uid, group: the fsGroup
    volume = cluster.json("-n", ns, "get", "pvc", "shared")["spec"]["volumeName"]
    root = Path(cluster.json("get", "pv", volume)["spec"]["local"]["path"])
    assert (root / "app" / "state" / "note").read_text() == "ok\n"


def test_hand_made_host_path_volume_binds_a_matching_claim(cluster: Cluster, ns: str) -> None:
    host_dir = Path(tempfile.mkdtemp(prefix="pilothouse-hostpath-"))
    name = "manual-" + uuid.uuid4().hex[:6]
    try:
        (host_dir / "seed").write_text("from the host\n")
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name, "labels": {"kind": "manual"}},
                    "spec": {
                        "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": "manual",
                        "hostPath": {"path": str(host_dir), "type": "Directory"},
                    },
                }
            ),
        )
        cluster.apply(
            ns,
            claim(
                "mine",
                "500Mi",
                storageClassName="manual",
                selector={"matchLabels": {"kind": "manual"}},
            ),
        )

        def bound() -> bool:
            got = cluster.json("-n", ns, "get", "pvc", "mine")
            return bool(got["status"].get("phase") == "Bound")

        cluster.wait(bound, timeout=30, what="the claim to bind")
        row = cluster.kubectl("-n", ns, "get", "pvc", "mine", "--no-headers").stdout.split()
        assert row[:6] == ["mine", "Bound", name, "1Gi", "RWO", "manual"]
        cluster.apply(
            ns,
            with_claim(
                cluster,
                "user",
                "mine",
                ["sh", "-c", "cat /data/seed; echo back > /data/reply"],
                restartPolicy="Never",
            ),
        )
        assert finished(cluster, ns, "user") == "Succeeded"
        assert cluster.kubectl("-n", ns, "logs", "user").stdout == "from the host\n"
        assert (host_dir / "reply").read_text() == "back\n"
        # Retain: the claim goes, the volume stays Released and the data with it.
        cluster.kubectl("-n", ns, "delete", "pod", "user")
        cluster.kubectl("-n", ns, "delete", "pvc", "mine", "--timeout=60s")
        cluster.wait(
            lambda: cluster.json("get", "pv", name)["status"]["phase"] == "Released",
            timeout=30,
            what="Released",
        )
        assert (host_dir / "reply").exists()
    finally:
        cluster.kubectl("delete", "pv", name, "--wait=false", check=False)
        shutil.rmtree(host_dir, ignore_errors=True)


def test_deleting_a_claim_in_use_waits_for_its_pod(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, claim("busy"))
    cluster.apply(ns, with_claim(cluster, "holder", "busy", ["sleep", "3600"]))
    cluster.running(ns, "holder")
    cluster.kubectl("-n", ns, "delete", "pvc", "busy", "--wait=false")
    row = cluster.kubectl("-n", ns, "get", "pvc", "busy", "--no-headers").stdout.split()
    assert row[1] == "Terminating"
    pvc = cluster.json("-n", ns, "get", "pvc", "busy")
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert cluster.pod(ns, "holder")["status"]["phase"] == "Running"
    cluster.kubectl("-n", ns, "delete", "pod", "holder", "--grace-period=1")
    cluster.wait(
        lambda: "NotFound" in cluster.kubectl("-n", ns, "get", "pvc", "busy", check=False).stderr,
        timeout=60,
        what="the claim to go",
    )


def test_class_nobody_provisions_says_so(cluster: Cluster, ns: str) -> None:
    name = "nobody-" + uuid.uuid4().hex[:6]
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": name},
                "provisioner": "example.com/nobody",
                "volumeBindingMode": "Immediate",
            }
        ),
    )
    try:
        cluster.apply(ns, claim("waiting", storageClassName=name))

        def described() -> str | None:
            text = cluster.kubectl("-n", ns, "describe", "pvc", "waiting").stdout
            return text if "ExternalProvisioning" in text else None

        text = cluster.wait(described, timeout=30, what="the ExternalProvisioning event")
        assert "Waiting for a volume to be created either by the external provisioner" in text
        assert "'example.com/nobody'" in text
        assert "persistentvolume-controller" in text
        classes = cluster.kubectl("get", "sc").stdout.splitlines()
        assert classes[0].split() == [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE",
        ]
        default = next(line.split() for line in classes if line.startswith("local-path"))
        assert default[:6] == [
            "local-path",
            "(default)",
            "pilothouse.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "true",
        ]
        assert cluster.json("-n", ns, "get", "pvc", "waiting")["status"]["phase"] == "Pending"
    finally:
        cluster.kubectl("-n", ns, "delete", "pvc", "waiting", "--wait=false", check=False)
        cluster.kubectl("delete", "sc", name, check=False)


def test_the_readme_tour(cluster: Cluster, ns: str) -> None:
    """The commands README.md shows, as a user types them."""
    cluster.kubectl(
        "-n",
        ns,
        "create",
        "-f",
        "-",
        input="apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n",
    )
    overrides = {
        "spec": {
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            "containers": [
                {
                    "name": "writer",
                    "image": cluster.image,
                    "command": ["sh", "-c", "date > /d/when"],
                    "volumeMounts": [{"name": "d", "mountPath": "/d"}],
                }
            ],
        }
    }
    cluster.kubectl(
        "-n",
        ns,
        "run",
        "writer",
        f"--image={cluster.image}",
        "--restart=Never",
        f"--overrides={json.dumps(overrides)}",
    )
    assert finished(cluster, ns, "writer") == "Succeeded"
    listing = cluster.kubectl("-n", ns, "get", "pvc,pv").stdout
    assert "persistentvolumeclaim/data" in listing and "Bound" in listing
    assert "persistentvolume/pvc-" in listing
    volume = cluster.json("-n", ns, "get", "pvc", "data")["spec"]["volumeName"]
    described = cluster.kubectl("describe", "pv", volume).stdout
    assert "pilothouse.io/local-path" in described and "Delete" in described
    assert re.search(rf"^Claim:\s+{ns}/data\s*$", described, re.MULTILINE), described
    cluster.kubectl("-n", ns, "delete", "pod", "writer")
    cluster.kubectl("-n", ns, "delete", "pvc", "data", "--timeout=60s")
