"""The PersistentVolume binder against a real API server: matching, binding both ways,
pre-binding, reclaim policies, provisioning hand-off and the events upstream writes."""

from __future__ import annotations

import types
import uuid
from typing import Any

from pilothouse.api import errors
from pilothouse.client import rest
from pilothouse.testing import eventually

Obj = dict[str, Any]


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _phase(client: rest.Client, resource: Any, name: str, ns: str = "") -> str:
    obj = await client.get(resource, name, ns)
    return str((obj.get("status") or {}).get("phase"))


async def _bound(vh: types.ModuleType, client: rest.Client, ns: str, name: str) -> Obj:
    async def check() -> Obj | None:
        pvc = await client.get(vh.PVC, name, ns)
        return pvc if pvc["status"].get("phase") == "Bound" else None

    result: Obj = await eventually(check)
    return result


async def _event(
    vh: types.ModuleType, client: rest.Client, ns: str, name: str, reason: str
) -> tuple[str, str, str]:
    async def check() -> tuple[str, str, str] | None:
        return next((e for e in await vh.events_of(client, ns, name) if e[1] == reason), None)

    found: tuple[str, str, str] = await eventually(check)
    return found


async def test_claim_binds_the_smallest_volume_that_fits_both_ways(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    names = [uniq("pv") for _ in range(3)]
    for name, size in zip(names, ("1Gi", "5Gi", "10Gi"), strict=True):
        await client.create(vh.PV, vh.volume(name, size, cls))
    await client.create(vh.PVC, vh.claim("data", "2Gi", cls), ns)
    pvc = await _bound(vh, client, ns, "data")
    assert pvc["spec"]["volumeName"] == names[1]
    assert pvc["status"]["capacity"] == {"storage": "5Gi"}
    assert pvc["status"]["accessModes"] == ["ReadWriteOnce"]
    ann = pvc["metadata"]["annotations"]
    assert ann["pv.kubernetes.io/bind-completed"] == "yes"
    assert ann["pv.kubernetes.io/bound-by-controller"] == "yes"
    pv = await client.get(vh.PV, names[1])
    assert pv["status"]["phase"] == "Bound"
    ref = pv["spec"]["claimRef"]
    assert (ref["kind"], ref["namespace"], ref["name"], ref["uid"]) == (
        "PersistentVolumeClaim",
        ns,
        "data",
        pvc["metadata"]["uid"],
    )
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert pv["status"]["lastPhaseTransitionTime"]
    for other in (names[0], names[2]):
        assert await _phase(client, vh.PV, other) == "Available"


async def test_access_modes_volume_mode_and_selector_are_honoured(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    rwo, both, block, labelled = (uniq(p) for p in ("rwo", "both", "block", "lab"))
    await client.create(vh.PV, vh.volume(rwo, "1Gi", cls))
    await client.create(vh.PV, vh.volume(both, "1Gi", cls, modes=("ReadWriteOnce", "ReadOnlyMany")))
    await client.create(
        vh.PV, vh.volume(block, "1Gi", cls, modes=("ReadWriteMany",), volumeMode="Block")
    )
    await client.create(vh.PV, vh.volume(labelled, "1Gi", cls, labels={"tier": "gold"}))
    # ReadOnlyMany only fits the volume offering it (with more modes).
    await client.create(vh.PVC, vh.claim("rox", "1Gi", cls, modes=("ReadOnlyMany",)), ns)
    assert (await _bound(vh, client, ns, "rox"))["spec"]["volumeName"] == both
    # The selector picks the labelled volume although the plain one fits too.
    await client.create(
        vh.PVC, vh.claim("gold", "1Gi", cls, selector={"matchLabels": {"tier": "gold"}}), ns
    )
    assert (await _bound(vh, client, ns, "gold"))["spec"]["volumeName"] == labelled
    # A Filesystem claim never takes the Block volume: it waits.
    await client.create(vh.PVC, vh.claim("rwx", "1Gi", cls, modes=("ReadWriteMany",)), ns)
    await client.create(vh.PVC, vh.claim("rwo", "1Gi", cls), ns)
    assert (await _bound(vh, client, ns, "rwo"))["spec"]["volumeName"] == rwo
    assert await _phase(client, vh.PVC, "rwx", ns) == "Pending"
    assert await _phase(client, vh.PV, block) == "Available"


async def test_claim_naming_a_volume_binds_it_or_says_why_not(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    small, fit = uniq("small"), uniq("fit")
    await client.create(vh.PV, vh.volume(small, "1Gi", cls))
    await client.create(vh.PV, vh.volume(fit, "3Gi", cls))
    await client.create(vh.PVC, vh.claim("too-big", "2Gi", cls, volumeName=small), ns)
    event = await _event(vh, client, ns, "too-big", "VolumeMismatch")
    assert event == (
        "Warning",
        "VolumeMismatch",
        f'Cannot bind to requested volume "{small}": requested PV is too small',
    )
    assert await _phase(client, vh.PVC, "too-big", ns) == "Pending"
    await client.create(vh.PVC, vh.claim("named", "2Gi", cls, volumeName=fit), ns)
    pvc = await _bound(vh, client, ns, "named")
    # The user bound it: the claim is not marked as bound by the controller.
    assert "pv.kubernetes.io/bound-by-controller" not in pvc["metadata"]["annotations"]
    assert (await client.get(vh.PV, fit))["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]


async def test_volume_reserved_for_a_claim_waits_for_it(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    reserved = uniq("reserved")
    await client.create(
        vh.PV,
        vh.volume(reserved, "1Gi", cls, claimRef={"namespace": ns, "name": "mine"}),
    )
    await client.create(vh.PVC, vh.claim("other", "1Gi", cls), ns)

    async def available() -> bool:
        return await _phase(client, vh.PV, reserved) == "Available"

    await eventually(available)
    await client.create(vh.PVC, vh.claim("mine", "1Gi", cls), ns)
    pvc = await _bound(vh, client, ns, "mine")
    assert pvc["spec"]["volumeName"] == reserved
    assert await _phase(client, vh.PVC, "other", ns) == "Pending"
    pv = await client.get(vh.PV, reserved)
    assert "pv.kubernetes.io/bound-by-controller" not in (pv["metadata"].get("annotations") or {})


async def test_retain_keeps_a_released_volume_and_delete_fails_without_a_deleter(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    kept, local = uniq("kept"), uniq("local")
    await client.create(vh.PV, vh.volume(kept, "1Gi", cls))
    await client.create(vh.PVC, vh.claim("a", "1Gi", cls, volumeName=kept), ns)
    await _bound(vh, client, ns, "a")
    await client.delete(vh.PVC, "a", ns)

    async def released() -> bool:
        return await _phase(client, vh.PV, kept) == "Released"

    await eventually(released)
    spec = {
        "local": {"path": "/mnt/disk"},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}
                        ]
                    }
                ]
            }
        },
    }
    body = vh.volume(local, "1Gi", cls, policy="Delete", **spec)
    del body["spec"]["hostPath"]
    await client.create(vh.PV, body)
    await client.create(vh.PVC, vh.claim("b", "1Gi", cls, volumeName=local), ns)
    await _bound(vh, client, ns, "b")
    await client.delete(vh.PVC, "b", ns)

    async def failed() -> Obj | None:
        pv = await client.get(vh.PV, local)
        return pv if pv["status"]["phase"] == "Failed" else None

    pv = await eventually(failed)
    message = f'error getting deleter volume plugin for volume "{local}": no deletable volume plugin matched'
    assert pv["status"]["message"] == message
    assert await _event(vh, client, "", local, "VolumeFailedDelete") == (
        "Warning",
        "VolumeFailedDelete",
        message,
    )


async def test_claims_without_a_volume_say_why_they_wait(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    await client.create(vh.PVC, vh.claim("no-class", "1Gi", ""), ns)
    assert await _event(vh, client, ns, "no-class", "FailedBinding") == (
        "Normal",
        "FailedBinding",
        "no persistent volumes available for this claim and no storage class is set",
    )
    await client.create(vh.PVC, vh.claim("no-such-class", "1Gi", cls), ns)
    assert await _event(vh, client, ns, "no-such-class", "ProvisioningFailed") == (
        "Warning",
        "ProvisioningFailed",
        f'storageclass.storage.k8s.io "{cls}" not found',
    )
    external, waiting, static = uniq("ext"), uniq("wffc"), uniq("static")
    for name, provisioner, mode in (
        (external, "example.com/nfs", "Immediate"),
        (waiting, "example.com/nfs", "WaitForFirstConsumer"),
        (static, "kubernetes.io/no-provisioner", "Immediate"),
    ):
        await client.create(
            vh.SC,
            {"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode},
        )
    try:
        await client.create(vh.PVC, vh.claim("ext", "1Gi", external), ns)
        await client.create(vh.PVC, vh.claim("wffc", "1Gi", waiting), ns)
        await client.create(vh.PVC, vh.claim("static", "1Gi", static), ns)
        assert await _event(vh, client, ns, "ext", "ExternalProvisioning") == (
            "Normal",
            "ExternalProvisioning",
            "Waiting for a volume to be created either by the external provisioner "
            "'example.com/nfs' or manually by the system administrator. If volume creation is "
            "delayed, please verify that the provisioner is running and correctly registered.",
        )
        ann = (await client.get(vh.PVC, "ext", ns))["metadata"]["annotations"]
        assert ann["volume.kubernetes.io/storage-provisioner"] == "example.com/nfs"
        assert ann["volume.beta.kubernetes.io/storage-provisioner"] == "example.com/nfs"
        assert await _event(vh, client, ns, "wffc", "WaitForFirstConsumer") == (
            "Normal",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        )
        assert await _event(vh, client, ns, "static", "ProvisioningFailed") == (
            "Warning",
            "ProvisioningFailed",
            "no volume plugin matched name: kubernetes.io/no-provisioner",
        )
        # A pod that wants the waiting claim is named in the event.
        await client.create(
            vh.PODS,
            {
                "metadata": {"name": "app"},
                "spec": {
                    "containers": [{"name": "c", "image": "busybox"}],
                    "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "wffc"}}],
                },
            },
            ns,
        )
        # The binder reports it at its next sync of the claim; make one happen now.
        pvc = await client.get(vh.PVC, "wffc", ns)
        pvc["metadata"].setdefault("labels", {})["poke"] = "1"
        await client.update(vh.PVC, pvc)
        assert await _event(vh, client, ns, "wffc", "WaitForPodScheduled") == (
            "Normal",
            "WaitForPodScheduled",
            "waiting for pod app to be scheduled",
        )
        for name in ("ext", "wffc", "static"):
            assert await _phase(client, vh.PVC, name, ns) == "Pending"
    finally:
        for name in (external, waiting, static):
            await client.delete(vh.SC, name)


async def test_bound_claim_whose_volume_is_gone_is_lost(
    vh: types.ModuleType, client: rest.Client, ns: str, cls: str, binder: None
) -> None:
    name = uniq("gone")
    await client.create(vh.PV, vh.volume(name, "1Gi", cls))
    await client.create(vh.PVC, vh.claim("orphan", "1Gi", cls), ns)
    await _bound(vh, client, ns, "orphan")
    # Force the volume away: drop pv-protection, then delete.
    pv = await client.get(vh.PV, name)
    pv["metadata"]["finalizers"] = []
    await client.update(vh.PV, pv)
    await client.delete(vh.PV, name)

    async def lost() -> bool:
        return await _phase(client, vh.PVC, "orphan", ns) == "Lost"

    await eventually(lost)
    assert await _event(vh, client, ns, "orphan", "ClaimLost") == (
        "Warning",
        "ClaimLost",
        "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
    )


async def test_claim_without_class_gets_the_default_class_once_there_is_one(
    vh: types.ModuleType, client: rest.Client, ns: str, binder: None
) -> None:
    # The session's server made local-path the default at its first start; take the
    # annotation off for this test and put it back after.
    classes = await client.list(vh.SC)
    defaults = [
        c
        for c in classes["items"]
        if (c["metadata"].get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class"
        )
        == "true"
    ]
    for c in defaults:
        c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] = "false"
        await client.update(vh.SC, c)
    fresh = uniq("later")
    try:
        await client.create(vh.PVC, vh.claim("classless", "1Gi", None), ns)
        assert (await client.get(vh.PVC, "classless", ns))["spec"].get("storageClassName") is None
        await client.create(
            vh.SC,
            {
                "metadata": {
                    "name": fresh,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "example.com/late",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
        )
        pvc = await client.get(vh.PVC, "classless", ns)
        pvc["metadata"].setdefault("labels", {})["poke"] = "1"
        await client.update(vh.PVC, pvc)

        async def assigned() -> bool:
            got = await client.get(vh.PVC, "classless", ns)
            return bool(got["spec"].get("storageClassName") == fresh)

        await eventually(assigned)
    finally:
        for c in defaults:
            current = await client.get(vh.SC, c["metadata"]["name"])
            current["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] = (
                "true"
            )
            await client.update(vh.SC, current)
        try:
            await client.delete(vh.SC, fresh)
        except errors.StatusError as exc:
            assert errors.is_not_found(exc)
