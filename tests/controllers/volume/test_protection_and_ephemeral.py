"""Claims in use outlive their deletion until their pods go; bound volumes likewise;
ephemeral volumes get a claim per pod, owned by the pod."""

from __future__ import annotations

import types
import uuid
from typing import Any

from pilothouse.api import errors
from pilothouse.client import rest
from pilothouse.testing import eventually

Obj = dict[str, Any]


def _pod(name: str, volumes: list[Obj], node: str = "") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name}, "spec": spec}


async def _gone(client: rest.Client, resource: Any, name: str, ns: str = "") -> bool:
    try:
        await client.get(resource, name, ns)
    except errors.StatusError as exc:
        return errors.is_not_found(exc)
    return False


async def test_claim_in_use_is_removed_only_after_its_pod(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    await client.create(vh.PVC, vh.claim("used", "1Gi", cls), ns)
    await client.create(vh.PVC, vh.claim("unscheduled", "1Gi", cls), ns)
    claim_volume = [{"name": "d", "persistentVolumeClaim": {"claimName": "used"}}]
    await client.create(vh.PODS, _pod("user", claim_volume, node="n1"), ns)
    await client.create(
        vh.PODS,
        _pod("pending", [{"name": "d", "persistentVolumeClaim": {"claimName": "unscheduled"}}]),
        ns,
    )
    await client.delete(vh.PVC, "used", ns)
    await client.delete(vh.PVC, "unscheduled", ns)
    # A pod that is not scheduled does not hold its claim.
    await eventually(lambda: _gone(client, vh.PVC, "unscheduled", ns))
    held = await client.get(vh.PVC, "used", ns)
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    await client.delete(vh.PODS, "user", ns, grace_period_seconds=0)
    await eventually(lambda: _gone(client, vh.PVC, "used", ns))


async def test_bound_volume_is_removed_only_once_released(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    name = "pv-" + uuid.uuid4().hex[:8]
    await client.create(vh.PV, vh.volume(name, "1Gi", cls))
    await client.create(vh.PVC, vh.claim("c", "1Gi", cls), ns)

    async def bound() -> bool:
        pv = await client.get(vh.PV, name)
        return bool(pv["status"]["phase"] == "Bound")

    await eventually(bound)
    await client.delete(vh.PV, name)
    pv = await client.get(vh.PV, name)
    assert pv["metadata"]["deletionTimestamp"]
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    await client.delete(vh.PVC, "c", ns)
    await eventually(lambda: _gone(client, vh.PV, name))


async def test_ephemeral_volume_gets_a_claim_owned_by_its_pod(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    template = {
        "metadata": {"labels": {"scratch": "yes"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": cls,
        },
    }
    pod = await client.create(
        vh.PODS,
        _pod("worker", [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}]),
        ns,
    )

    async def made() -> Obj | None:
        try:
            return await client.get(vh.PVC, "worker-scratch", ns)
        except errors.StatusError:
            return None

    claim = await eventually(made)
    assert claim["metadata"]["labels"] == {"scratch": "yes"}
    assert claim["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "worker",
            "uid": pod["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert claim["spec"]["storageClassName"] == cls
    # A claim of the same name that the pod does not own is never used.
    await client.create(vh.PVC, vh.claim("squatter-scratch", "1Gi", cls), ns)
    await client.create(
        vh.PODS,
        _pod("squatter", [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}]),
        ns,
    )

    async def refused() -> tuple[str, str, str] | None:
        return next(
            (e for e in await vh.events_of(client, ns, "squatter") if e[1] == "FailedBinding"),
            None,
        )

    assert await eventually(refused) == (
        "Warning",
        "FailedBinding",
        f"PVC {ns}/squatter-scratch was not created for pod {ns}/squatter (pod is not owner)",
    )
