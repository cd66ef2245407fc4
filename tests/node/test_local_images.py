"""Local-path volumes backed by loop-mounted ext4 images: capacity enforced, growth, a
volume mounted again after its mount went away (a reboot), and nothing left behind.
Needs root (loop devices, mounts); uses the fake runtime for the pods."""

from __future__ import annotations

import asyncio
import errno
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
from pilothouse.node.runtime import fake
from pilothouse.testing import eventually, running_controllers

pytestmark = [pytest.mark.root]

Obj = dict[str, Any]
MiB = 1024 * 1024


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
async def setup(
    client: rest.Client, api_server: testing.ServerThread, tmp_path: Path
) -> AsyncIterator[tuple[agent_module.Agent, str, str]]:
    cls = "img-" + uuid.uuid4().hex[:6]
    ns = "li-" + uuid.uuid4().hex[:6]
    await client.create(NS, {"metadata": {"name": ns}})
    await client.create(
        SC,
        {
            "metadata": {"name": cls},
            "provisioner": "pilothouse.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": True,
        },
    )
    runtime = fake.FakeRuntime(fake.FakeImageService([fake.FakeImageService.make("busybox:1.36")]))
    name = "li-" + uuid.uuid4().hex[:6]
    agent = testing.node_agent(api_server, client, name=name, data_dir=tmp_path, runtime=runtime)
    controllers = {
        "nodeipam": nodeipam.NodeIPAMController,
        "persistentvolume-binder": persistentvolume.PersistentVolumeController,
        "pvc-protection": pvcprotection.PVCProtectionController,
        "pv-protection": pvprotection.PVProtectionController,
    }
    async with running_controllers(client, controllers):
        await agent.start()

        async def ready() -> bool:
            return agent.provisioner.ready.is_set()

        await eventually(ready)
        try:
            yield agent, cls, ns
        finally:
            # Claims go, their volumes with them: nothing mounted may stay behind.
            for pod in (await client.list(PODS, ns))["items"]:
                await client.delete(PODS, pod["metadata"]["name"], ns, grace_period_seconds=0)
            for pvc in (await client.list(PVC, ns))["items"]:
                await client.delete(PVC, pvc["metadata"]["name"], ns)

            async def emptied() -> bool:
                left = [
                    v
                    for v in (await client.list(PV))["items"]
                    if (v["spec"].get("claimRef") or {}).get("namespace") == ns
                ]
                return not left

            await eventually(emptied, timeout=30)
            await agent.stop()
    await client.delete(NODES, name)
    await client.delete(SC, cls)
    assert str(tmp_path) not in _mount_table(), "an image stayed mounted"


def _claim(name: str, node: str, cls: str, size: str) -> Obj:
    return {
        "metadata": {"name": name, "annotations": {"volume.kubernetes.io/selected-node": node}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": cls,
            "resources": {"requests": {"storage": size}},
        },
    }


async def _bound_path(client: rest.Client, ns: str, name: str) -> tuple[Obj, Path]:
    async def bound() -> Obj | None:
        pvc = await client.get(PVC, name, ns)
        return pvc if pvc["status"].get("phase") == "Bound" else None

    pvc = await eventually(bound)
    pv = await client.get(PV, pvc["spec"]["volumeName"])
    return pv, Path(pv["spec"]["local"]["path"])


def _fill(path: Path, size: int) -> int:
    """Write ``size`` bytes into a file of ``path``; the bytes written (short on ENOSPC)."""
    written = 0
    chunk = b"\0" * MiB
    try:
        with open(path / "fill", "wb") as f:
            while written < size:
                f.write(chunk)
                written += len(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
        return written
    return written


def _mount_table() -> str:
    return Path("/proc/self/mounts").read_text()


def _is_mount(path: Path) -> bool:
    return os.path.ismount(path)


def _available(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


async def test_image_volume_enforces_capacity_and_grows(
    setup: tuple[agent_module.Agent, str, str], client: rest.Client
) -> None:
    agent, cls, ns = setup
    assert agent.provisioner.no_image_because == ""
    await client.create(PVC, _claim("data", agent.node_name, cls, "64Mi"), ns)
    pv, path = await _bound_path(client, ns, "data")
    assert _is_mount(path)
    assert await asyncio.to_thread(_available, path) >= 64 * MiB
    assert os.listdir(path) == []  # no lost+found: it looks like a fresh directory
    # Writing past the capacity fails; the host's disk is not touched.
    written = await asyncio.to_thread(_fill, path, 200 * MiB)
    assert 64 * MiB <= written < 100 * MiB
    os.unlink(path / "fill")
    (path / "kept").write_text("still here")
    events = await client.list(
        EVENTS, "", field_selector=f"involvedObject.name={pv['metadata']['name']}"
    )
    assert not [e for e in events["items"] if e["reason"] == "CapacityNotEnforced"]
    pvc = await client.get(PVC, "data", ns)
    pvc["spec"]["resources"]["requests"]["storage"] = "128Mi"
    await client.update(PVC, pvc)

    async def grown() -> bool:
        got = await client.get(PVC, "data", ns)
        return bool(got["status"].get("capacity", {}).get("storage") == "128Mi")

    await eventually(grown, timeout=20)
    assert await asyncio.to_thread(_available, path) >= 128 * MiB
    assert (path / "kept").read_text() == "still here"


async def test_image_is_mounted_again_before_a_pod_uses_it(
    setup: tuple[agent_module.Agent, str, str], client: rest.Client
) -> None:
    agent, cls, ns = setup
    await client.create(PVC, _claim("data", agent.node_name, cls, "16Mi"), ns)
    _, path = await _bound_path(client, ns, "data")
    (path / "before").write_text("reboot")
    proc = await asyncio.create_subprocess_exec("umount", str(path))
    assert await proc.wait() == 0  # as after a reboot: the image is there, not mounted
    assert not _is_mount(path)
    await client.create(
        PODS,
        {
            "metadata": {"name": "user"},
            "spec": {
                "nodeName": agent.node_name,
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox:1.36",
                        "command": ["sleep", "60"],
                        "volumeMounts": [{"name": "d", "mountPath": "/d"}],
                    }
                ],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        },
        ns,
    )

    async def running() -> bool:
        pod = await client.get(PODS, "user", ns)
        return bool(pod["status"].get("phase") == "Running")

    await eventually(running)
    assert _is_mount(path)
    assert (path / "before").read_text() == "reboot"


async def test_deleted_claim_leaves_no_image_mount_or_directory(
    setup: tuple[agent_module.Agent, str, str], client: rest.Client
) -> None:
    agent, cls, ns = setup
    await client.create(PVC, _claim("gone", agent.node_name, cls, "16Mi"), ns)
    pv, path = await _bound_path(client, ns, "gone")
    image = agent.provisioner.images.image_of(path)
    assert image.exists()
    await client.delete(PVC, "gone", ns)

    async def removed() -> bool:
        try:
            await client.get(PV, pv["metadata"]["name"])
        except errors.StatusError as exc:
            return errors.is_not_found(exc)
        return False

    await eventually(removed)
    assert not _is_mount(path)
    assert not path.exists() and not image.exists()
