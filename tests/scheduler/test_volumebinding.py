"""VolumeBinding against a real API server: three hollow nodes, the PersistentVolume
binder and the scheduler running. Local volumes pin pods to their node; delayed
binding picks a node first and binds (or provisions) there; messages as upstream."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import rest
from pilothouse.controllers.volume import persistentvolume
from pilothouse.scheduler import config as scheduler_config

from .conftest import PODS, create_pods, pod, running_scheduler, three_nodes, wait_bound

Obj = dict[str, Any]
PV = resources.Resource("", "v1", "PersistentVolume", "persistentvolumes", False)
PVC = resources.Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True)
SC = resources.Resource("storage.k8s.io", "v1", "StorageClass", "storageclasses", False)
EVENTS = resources.Resource("", "v1", "Event", "events", True)


@contextlib.asynccontextmanager
async def binder(client: rest.Client) -> AsyncIterator[None]:
    async with testing.running_controllers(
        client, {"persistentvolume-binder": persistentvolume.PersistentVolumeController}
    ):
        yield


@contextlib.asynccontextmanager
async def storage_class(
    client: rest.Client, provisioner: str, mode: str = "WaitForFirstConsumer"
) -> AsyncIterator[str]:
    name = "sc-" + uuid.uuid4().hex[:6]
    await client.create(
        SC, {"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode}
    )
    try:
        yield name
    finally:
        await client.delete(SC, name)


def local_volume(name: str, node: str, cls: str, size: str = "1Gi") -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": cls,
            "local": {"path": f"/mnt/{name}"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def claim(name: str, cls: str, size: str = "1Gi") -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": cls,
            "resources": {"requests": {"storage": size}},
        },
    }


def using(name: str, scheduler_name: str, *claims: str) -> Obj:
    return pod(
        name,
        scheduler_name,
        cpu="100m",
        memory="64Mi",
        volumes=[
            {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
            for i, c in enumerate(claims)
        ],
    )


async def failed_scheduling(client: rest.Client, ns: str, name: str, needle: str) -> str:
    async def check() -> str | None:
        items = (await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))[
            "items"
        ]
        return next(
            (
                e["message"]
                for e in items
                if e["reason"] == "FailedScheduling" and needle in e["message"]
            ),
            None,
        )

    result: str = await testing.eventually(check, timeout=20)
    return result


async def test_bound_local_volume_pins_its_pods_to_its_node(
    client: rest.Client, ns: str, unique: str
) -> None:
    sched = f"sched-{unique}"
    async with (
        three_nodes(client, unique, run_pods=False) as nodes,
        storage_class(client, "kubernetes.io/no-provisioner", "Immediate") as cls,
        binder(client),
        running_scheduler(client, sched),
    ):
        on_medium, elsewhere = f"pv-{unique}-m", f"pv-{unique}-x"
        await client.create(PV, local_volume(on_medium, nodes["medium"], cls))
        await client.create(PV, local_volume(elsewhere, "no-such-node", cls))
        for name, volume in (("here", on_medium), ("nowhere", elsewhere)):
            body = claim(name, cls)
            body["spec"]["volumeName"] = volume
            await client.create(PVC, body, ns)

        async def bound() -> bool:
            both = [await client.get(PVC, n, ns) for n in ("here", "nowhere")]
            return all(c["status"]["phase"] == "Bound" for c in both)

        await testing.eventually(bound)
        await create_pods(client, ns, [using("a", sched, "here"), using("b", sched, "nowhere")])
        placed = await wait_bound(client, ns, ["a"])
        assert placed["a"] == nodes["medium"]
        message = await failed_scheduling(client, ns, "b", "volume node affinity conflict")
        assert message.startswith(
            "0/3 nodes are available: 3 node(s) had volume node affinity conflict."
        )
        for volume in (on_medium, elsewhere):
            await _force_delete(client, volume)


async def test_delayed_binding_picks_the_node_with_a_free_volume(
    client: rest.Client, ns: str, unique: str
) -> None:
    sched = f"sched-{unique}"
    async with (
        three_nodes(client, unique, run_pods=False) as nodes,
        storage_class(client, "kubernetes.io/no-provisioner") as cls,
        binder(client),
        running_scheduler(client, sched),
    ):
        volume = f"pv-{unique}-s"
        await client.create(PV, local_volume(volume, nodes["small"], cls))
        for name in ("first", "second"):
            await client.create(PVC, claim(name, cls), ns)
        await create_pods(client, ns, [using("p1", sched, "first")])
        placed = await wait_bound(client, ns, ["p1"])
        assert placed["p1"] == nodes["small"]
        pvc = await client.get(PVC, "first", ns)
        assert pvc["status"]["phase"] == "Bound"
        assert pvc["spec"]["volumeName"] == volume
        # The only volume is taken: the next pod has nowhere to go.
        await create_pods(client, ns, [using("p2", sched, "second")])
        message = await failed_scheduling(client, ns, "p2", "persistent volumes")
        assert message.startswith(
            "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind."
        )
        await _force_delete(client, volume)


async def test_delayed_binding_hands_the_claim_to_its_provisioner_on_the_chosen_node(
    client: rest.Client, ns: str, unique: str
) -> None:
    sched = f"sched-{unique}"
    async with (
        three_nodes(client, unique, run_pods=False) as nodes,
        storage_class(client, "example.com/fake") as cls,
        binder(client),
        running_scheduler(client, sched),
    ):
        await client.create(PVC, claim("data", cls), ns)
        spec = using("app", sched, "data")
        spec["spec"]["nodeSelector"] = {"kubernetes.io/hostname": nodes["large"]}
        await create_pods(client, ns, [spec])

        async def annotated() -> Obj | None:
            pvc = await client.get(PVC, "data", ns)
            ann = pvc["metadata"].get("annotations") or {}
            ready = "volume.kubernetes.io/storage-provisioner" in ann
            return pvc if ready and "volume.kubernetes.io/selected-node" in ann else None

        pvc = await testing.eventually(annotated)
        assert (
            pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == nodes["large"]
        )
        # Play the provisioner: a volume on that node, bound to the claim.
        pv = local_volume(f"pvc-{pvc['metadata']['uid']}", nodes["large"], cls)
        pv["spec"]["claimRef"] = {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": ns,
            "name": "data",
            "uid": pvc["metadata"]["uid"],
        }
        pv["metadata"]["annotations"] = {"pv.kubernetes.io/provisioned-by": "example.com/fake"}
        await client.create(PV, pv)
        placed = await wait_bound(client, ns, ["app"])
        assert placed["app"] == nodes["large"]
        assert (await client.get(PVC, "data", ns))["status"]["phase"] == "Bound"
        await _force_delete(client, pv["metadata"]["name"])


async def test_provisioning_that_never_finishes_fails_the_binding(
    client: rest.Client, ns: str, unique: str
) -> None:
    sched = f"sched-{unique}"
    configuration = scheduler_config.parse(
        {
            "profiles": [
                {
                    "schedulerName": sched,
                    "pluginConfig": [{"name": "VolumeBinding", "args": {"bindTimeoutSeconds": 1}}],
                }
            ]
        }
    )
    async with (
        three_nodes(client, unique, run_pods=False),
        storage_class(client, "example.com/absent") as cls,
        binder(client),
        running_scheduler(client, sched, configuration),
    ):
        await client.create(PVC, claim("data", cls), ns)
        await create_pods(client, ns, [using("app", sched, "data")])
        message = await failed_scheduling(client, ns, "app", "PreBind")
        assert message == (
            'running PreBind plugin "VolumeBinding": binding volumes: '
            "timed out waiting for the condition"
        )
        assert not (await client.get(PODS, "app", ns))["spec"].get("nodeName")


async def test_pods_wait_for_claims_that_cannot_be_used_yet(
    client: rest.Client, ns: str, unique: str
) -> None:
    sched = f"sched-{unique}"
    async with (
        three_nodes(client, unique, run_pods=False),
        storage_class(client, "example.com/immediate", "Immediate") as cls,
        running_scheduler(client, sched),
    ):
        await client.create(PVC, claim("unbound", cls), ns)
        await create_pods(
            client, ns, [using("missing", sched, "nope"), using("early", sched, "unbound")]
        )
        message = await failed_scheduling(client, ns, "missing", "not found")
        assert message.startswith(
            '0/3 nodes are available: persistentvolumeclaim "nope" not found.'
        )
        message = await failed_scheduling(client, ns, "early", "immediate")
        assert message.startswith(
            "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        )
        # The claim appearing lets the pod be tried again at once (a cluster event).
        await client.create(PVC, claim("nope", cls), ns)
        await asyncio.sleep(0.5)
        message = await failed_scheduling(client, ns, "missing", "immediate")
        assert "unbound immediate" in message


async def _force_delete(client: rest.Client, name: str) -> None:
    with contextlib.suppress(Exception):
        volume = await client.get(PV, name)
        volume["metadata"]["finalizers"] = []
        await client.update(PV, volume)
        await client.delete(PV, name)
