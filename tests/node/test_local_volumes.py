"""Local volumes on a node: the local-path provisioner's node part, claims mounted into
containers (fsGroup, read-only, subPath), and the waiting a pod does for its claim.

A real API server, the binder and protection controllers, and an in-process agent with
the fake runtime. These tests use a StorageClass asking for plain directories, so they
need no root; the image backing is tested in test_local_images.py (root).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, rest
from pilothouse.controllers import nodeipam
from pilothouse.controllers.volume import persistentvolume, pvcprotection, pvprotection
from pilothouse.node import agent as agent_module
from pilothouse.node import subpath
from pilothouse.node.runtime import fake
from pilothouse.testing import eventually, running_controllers

Obj = dict[str, Any]


def _r(group: str, plural: str) -> resources.Resource:
    res = resources.DEFAULT.by_path(group, "v1", plural)
    assert res is not None
    return res


PODS, NS, NODES = _r("", "pods"), _r("", "namespaces"), _r("", "nodes")
PV, PVC = _r("", "persistentvolumes"), _r("", "persistentvolumeclaims")
SC, EVENTS = _r("storage.k8s.io", "storageclasses"), _r("", "events")


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


@pytest.fixture
async def ns(client: rest.Client) -> str:
    name = "lv-" + uuid.uuid4().hex[:8]
    await client.create(NS, {"metadata": {"name": name}})
    return name


class Node:
    def __init__(self, agent: agent_module.Agent, runtime: fake.FakeRuntime, cls: str) -> None:
        self.agent = agent
        self.runtime = runtime
        self.name = agent.node_name
        self.cls = cls

    def claim(self, name: str, size: str = "1Gi", *, selected: bool = True) -> Obj:
        md: Obj = {"name": name}
        if selected:  # what the scheduler writes when it places the first pod
            md["annotations"] = {"volume.kubernetes.io/selected-node": self.name}
        return {
            "metadata": md,
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": self.cls,
                "resources": {"requests": {"storage": size}},
            },
        }

    def pod(self, name: str, claim: str, **spec: Any) -> Obj:
        mount: Obj = {"name": "data", "mountPath": "/data"}
        mount.update(spec.pop("mount", {}))
        volume: Obj = {"name": "data", "persistentVolumeClaim": {"claimName": claim}}
        volume["persistentVolumeClaim"].update(spec.pop("source", {}))
        return {
            "metadata": {"name": name},
            "spec": {
                "nodeName": self.name,
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox:1.36",
                        "command": ["sleep", "3600"],
                        "volumeMounts": [mount],
                    }
                ],
                "volumes": [volume],
                **spec,
            },
        }

    def mounts(self, pod_uid: str) -> list[Any]:
        for c in self.runtime.containers.values():
            sandbox = self.runtime.sandboxes.get(c.status.sandbox_id)
            if sandbox is not None and sandbox.uid == pod_uid:
                return list(c.config.mounts)
        return []


@pytest.fixture
async def node(
    client: rest.Client, api_server: testing.ServerThread, tmp_path: Path
) -> AsyncIterator[Node]:
    cls = "dir-" + uuid.uuid4().hex[:6]
    await client.create(
        SC,
        {
            "metadata": {"name": cls},
            "provisioner": "pilothouse.io/local-path",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": True,
            "parameters": {"backing": "directory"},
        },
    )
    runtime = fake.FakeRuntime(fake.FakeImageService([fake.FakeImageService.make("busybox:1.36")]))
    name = "lv-" + uuid.uuid4().hex[:6]
    agent = testing.node_agent(api_server, client, name=name, data_dir=tmp_path, runtime=runtime)
    controllers = {
        "nodeipam": nodeipam.NodeIPAMController,
        "persistentvolume-binder": persistentvolume.PersistentVolumeController,
        "pvc-protection": pvcprotection.PVCProtectionController,
        "pv-protection": pvprotection.PVProtectionController,
    }
    async with running_controllers(client, controllers):
        await agent.start()
        await eventually(lambda: _ready(agent))
        try:
            yield Node(agent, runtime, cls)
        finally:
            # Pods go first, so the agent releases what it mounted for them.
            pods = [
                p for p in (await client.list(PODS))["items"] if p["spec"].get("nodeName") == name
            ]
            for pod in pods:
                await client.delete(
                    PODS,
                    pod["metadata"]["name"],
                    pod["metadata"]["namespace"],
                    grace_period_seconds=0,
                )
            for pod in pods:
                await eventually(
                    lambda p=pod: _gone(
                        client, PODS, p["metadata"]["name"], p["metadata"]["namespace"]
                    )
                )
            await agent.stop()
    await client.delete(NODES, name)
    await client.delete(SC, cls)
    left = [line for line in _mount_table().splitlines() if str(tmp_path) in line]
    assert not left, f"left mounted: {left}"


async def _ready(agent: agent_module.Agent) -> bool:
    return agent.provisioner.ready.is_set()


def _mount_table() -> str:
    return Path("/proc/self/mountinfo").read_text()


def _is_mount(path: Path) -> bool:
    return subpath.mounted(path)


def _mode(path: Path) -> int:
    return os.stat(path).st_mode


async def _events(client: rest.Client, ns: str, name: str) -> list[tuple[str, str, str]]:
    items = (await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items]


async def _bound(client: rest.Client, ns: str, name: str) -> Obj:
    async def check() -> Obj | None:
        pvc = await client.get(PVC, name, ns)
        return pvc if pvc["status"].get("phase") == "Bound" else None

    result: Obj = await eventually(check)
    return result


async def _gone(client: rest.Client, resource: resources.Resource, name: str, ns: str = "") -> bool:
    try:
        await client.get(resource, name, ns)
    except errors.StatusError as exc:
        return errors.is_not_found(exc)
    return False


async def test_claim_on_this_node_is_provisioned_bound_and_removed_with_it(
    node: Node, client: rest.Client, ns: str
) -> None:
    await client.create(PVC, node.claim("data", "2Gi"), ns)
    pvc = await _bound(client, ns, "data")
    uid = pvc["metadata"]["uid"]
    assert pvc["spec"]["volumeName"] == f"pvc-{uid}"
    pv = await client.get(PV, f"pvc-{uid}")
    path = Path(pv["spec"]["local"]["path"])
    assert path == node.agent.storage_dir / f"pvc-{uid}_{ns}_data"
    assert _mode(path) & 0o777 == 0o777
    assert pv["spec"]["capacity"] == {"storage": "2Gi"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node.name]}
            ]
        }
    ]
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == (
        "pilothouse.io/local-path"
    )
    assert sorted(pv["metadata"]["finalizers"]) == [
        "external-provisioner.volume.kubernetes.io/finalizer",
        "kubernetes.io/pv-protection",
    ]
    reasons = {e[1]: e for e in await _events(client, ns, "data")}
    assert reasons["Provisioning"][2] == (
        f'External provisioner is provisioning volume for claim "{ns}/data"'
    )
    assert reasons["ProvisioningSucceeded"][2] == f"Successfully provisioned volume pvc-{uid}"
    assert reasons["ExternalProvisioning"][0] == "Normal"
    warnings = [e for e in await _events(client, "", f"pvc-{uid}") if e[1] == "CapacityNotEnforced"]
    assert warnings and warnings[0][0] == "Warning"
    assert "capacity 2Gi is not enforced" in warnings[0][2]
    assert "parameters.backing: directory" in warnings[0][2]
    (path / "file").write_text("kept")
    await client.delete(PVC, "data", ns)
    await eventually(lambda: _gone(client, PV, f"pvc-{uid}"))
    assert not await asyncio.to_thread(path.exists)


async def test_pod_gets_its_claim_with_fs_group_and_read_only(
    node: Node, client: rest.Client, ns: str
) -> None:
    await client.create(PVC, node.claim("data"), ns)
    pvc = await _bound(client, ns, "data")
    pv = await client.get(PV, pvc["spec"]["volumeName"])
    path = Path(pv["spec"]["local"]["path"])
    (path / "inner").mkdir()
    (path / "inner" / "f").write_text("x")
    pod = await client.create(
        PODS,
        node.pod("writer", "data", securityContext={"fsGroup": 2345}),
        ns,
    )

    async def mounted() -> list[Any]:
        return node.mounts(pod["metadata"]["uid"])

    mounts = await eventually(mounted)
    data = next(m for m in mounts if m.container_path == "/data")
    assert data.host_path == str(path) and not data.readonly
    for p in (path, path / "inner", path / "inner" / "f"):
        assert os.stat(p).st_gid == 2345
    assert _mode(path) & 0o2070 == 0o2070  # setgid, group rwx
    assert _mode(path / "inner" / "f") & 0o060 == 0o060
    reader = await client.create(PODS, node.pod("reader", "data", source={"readOnly": True}), ns)

    async def reader_mounted() -> list[Any]:
        return node.mounts(reader["metadata"]["uid"])

    mounts = await eventually(reader_mounted)
    assert next(m for m in mounts if m.container_path == "/data").readonly


async def test_pod_waits_for_its_claim_and_says_why(
    node: Node, client: rest.Client, ns: str
) -> None:
    await client.create(PVC, node.claim("later", selected=False), ns)
    await client.create(PODS, node.pod("early", "later"), ns)
    await client.create(PODS, node.pod("orphan", "nothing"), ns)

    async def failed_mount(pod: str, needle: str) -> str | None:
        return next(
            (
                e[2]
                for e in await _events(client, ns, pod)
                if e[1] == "FailedMount" and needle in e[2]
            ),
            None,
        )

    message = await eventually(lambda: failed_mount("early", "not bound"))
    assert message == (
        "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], "
        f"failed to process volumes=[data]: error processing PVC {ns}/later: PVC is not bound"
    )
    message = await eventually(lambda: failed_mount("orphan", "not found"))
    assert message.endswith(
        f"error processing PVC {ns}/nothing: failed to fetch PVC from API server: "
        'persistentvolumeclaims "nothing" not found'
    )
    status = (await client.get(PODS, "early", ns))["status"]
    assert status["phase"] == "Pending"
    waiting = status["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating"
    # Once the claim is bound on this node, the pod starts.
    pvc = await client.get(PVC, "later", ns)
    pvc["metadata"]["annotations"] = {"volume.kubernetes.io/selected-node": node.name}
    await client.update(PVC, pvc)
    await _bound(client, ns, "later")

    async def running() -> bool:
        got = await client.get(PODS, "early", ns)
        return bool(got["status"].get("phase") == "Running")

    await eventually(running, timeout=20)


@pytest.mark.root
async def test_sub_path_stays_inside_its_volume(node: Node, client: rest.Client, ns: str) -> None:
    await client.create(PVC, node.claim("data"), ns)
    pvc = await _bound(client, ns, "data")
    path = Path((await client.get(PV, pvc["spec"]["volumeName"]))["spec"]["local"]["path"])
    os.symlink("/etc", path / "escape")
    ok = await client.create(PODS, node.pod("sub", "data", mount={"subPath": "made/here"}), ns)
    uid = ok["metadata"]["uid"]

    async def mounted() -> list[Any]:
        return node.mounts(uid)

    mounts = await eventually(mounted)
    sub = next(m for m in mounts if m.container_path == "/data")
    target = node.agent.data_dir / "pods" / uid / "volume-subpaths" / "data" / "main" / "0"
    assert sub.host_path == str(target)
    assert _is_mount(target)
    assert os.stat(target).st_ino == os.stat(path / "made" / "here").st_ino
    await client.create(PODS, node.pod("evil", "data", mount={"subPath": "escape"}), ns)

    async def refused() -> Obj | None:
        status = (await client.get(PODS, "evil", ns))["status"]
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CreateContainerConfigError":
                return waiting
        return None

    waiting = await eventually(refused)
    assert waiting["message"] == (
        'failed to prepare subPath for volumeMount "data" of container "main"'
    )
    # The pod goes: its subpath mount goes, the volume's data stays.
    await client.delete(PODS, "sub", ns, grace_period_seconds=0)
    await eventually(lambda: _gone(client, PODS, "sub", ns))

    async def unmounted() -> bool:
        return not _is_mount(target)

    await eventually(unmounted)
    assert (path / "made" / "here").is_dir()


async def test_bound_claim_grows(node: Node, client: rest.Client, ns: str) -> None:
    await client.create(PVC, node.claim("data", "1Gi"), ns)
    pvc = await _bound(client, ns, "data")
    pvc["spec"]["resources"]["requests"]["storage"] = "3Gi"
    await client.update(PVC, pvc)

    async def grown() -> Obj | None:
        got = await client.get(PVC, "data", ns)
        return got if got["status"].get("capacity", {}).get("storage") == "3Gi" else None

    await eventually(grown)
    pv = await client.get(PV, pvc["spec"]["volumeName"])
    assert pv["spec"]["capacity"]["storage"] == "3Gi"

    async def reported() -> bool:
        reasons = [e[1] for e in await _events(client, ns, "data")]
        return "Resizing" in reasons and "VolumeResizeSuccessful" in reasons

    await eventually(reported)


async def test_claim_bigger_than_the_node_can_hold_is_refused_and_rescheduled(
    node: Node, client: rest.Client, ns: str
) -> None:
    await client.create(PVC, node.claim("huge", "1000Ti"), ns)

    async def refused() -> tuple[str, str, str] | None:
        return next(
            (e for e in await _events(client, ns, "huge") if e[1] == "ProvisioningFailed"), None
        )

    event = await eventually(refused)
    assert event[0] == "Warning"
    assert event[2].startswith(
        f'failed to provision volume with StorageClass "{node.cls}": not enough free space on '
        f"node {node.name}: 1000Ti requested, "
    )
    # The scheduler is asked to choose again; nothing was made.

    async def released() -> bool:
        pvc = await client.get(PVC, "huge", ns)
        return "volume.kubernetes.io/selected-node" not in (
            pvc["metadata"].get("annotations") or {}
        )

    await eventually(released)
    assert (await client.get(PVC, "huge", ns))["status"]["phase"] == "Pending"
    assert not list(node.agent.storage_dir.glob("pvc-*"))
