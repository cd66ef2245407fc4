"""PersistentVolume, PersistentVolumeClaim and StorageClass validation."""

from __future__ import annotations

import copy
from typing import Any

from pilothouse.api import errors
from pilothouse.api.defaults import apply_defaults
from pilothouse.api.validation import validate_create, validate_update

Obj = dict[str, Any]


def codes(errs: list[errors.FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


def pv(**spec: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "pv-1"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/data"},
            **spec,
        },
    }
    apply_defaults("", "v1", "PersistentVolume", obj)
    return obj


def pvc(**spec: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "data", "namespace": "default"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            **spec,
        },
    }
    apply_defaults("", "v1", "PersistentVolumeClaim", obj)
    return obj


def test_persistent_volumes() -> None:
    assert validate_create("", "v1", "PersistentVolume", pv()) == []
    checks = [
        (pv(accessModes=[]), "spec.accessModes", errors.REQUIRED),
        (pv(accessModes=["ReadWriteSometimes"]), "spec.accessModes", errors.NOT_SUPPORTED),
        (
            pv(accessModes=["ReadWriteOncePod", "ReadOnlyMany"]),
            "spec.accessModes",
            errors.FIELD_FORBIDDEN,
        ),
        (pv(capacity={}), "spec.capacity", errors.REQUIRED),
        (pv(capacity={"storage": "0"}), "spec.capacity[storage]", errors.INVALID_VALUE),
        (pv(capacity={"storage": "1Gi", "cpu": "1"}), "spec.capacity", errors.NOT_SUPPORTED),
        (pv(hostPath=None), "spec", errors.REQUIRED),
        (pv(nfs={"server": "s", "path": "/x"}), "spec.nfs", errors.FIELD_FORBIDDEN),
        (pv(hostPath={"path": "relative/../x"}), "spec.hostPath.path", errors.INVALID_VALUE),
        (
            pv(persistentVolumeReclaimPolicy="Keep"),
            "spec.persistentVolumeReclaimPolicy",
            errors.NOT_SUPPORTED,
        ),
        (pv(hostPath=None, local={"path": "/mnt"}), "spec.nodeAffinity", errors.REQUIRED),
        (pv(storageClassName="Fast_SSD"), "spec.storageClassName", errors.INVALID_VALUE),
    ]
    for obj, field, kind in checks:
        assert (field, kind) in codes(validate_create("", "v1", "PersistentVolume", obj)), field


def test_persistent_volume_source_is_immutable() -> None:
    old = pv()
    new = copy.deepcopy(old)
    new["spec"]["hostPath"]["path"] = "/other"
    assert ("spec.persistentvolumesource", errors.FIELD_FORBIDDEN) in codes(
        validate_update("", "v1", "PersistentVolume", new, old)
    )
    reclaim = copy.deepcopy(old)
    reclaim["spec"]["persistentVolumeReclaimPolicy"] = "Delete"
    assert validate_update("", "v1", "PersistentVolume", reclaim, old) == []


def test_persistent_volume_claims() -> None:
    assert validate_create("", "v1", "PersistentVolumeClaim", pvc()) == []
    checks = [
        (pvc(accessModes=[]), "spec.accessModes", errors.REQUIRED),
        (pvc(resources={}), "spec.resources[storage]", errors.REQUIRED),
        (
            pvc(resources={"requests": {"storage": "0"}}),
            "spec.resources[storage]",
            errors.INVALID_VALUE,
        ),
        (pvc(volumeMode="Raw"), "spec.volumeMode", errors.NOT_SUPPORTED),
        (
            pvc(selector={"matchLabels": {"a": "b c"}}),
            "spec.selector.matchLabels",
            errors.INVALID_VALUE,
        ),
        (
            pvc(dataSource={"kind": "Snapshot", "name": "s"}),
            "spec.dataSource",
            errors.INVALID_VALUE,
        ),
    ]
    for obj, field, kind in checks:
        assert (field, kind) in codes(validate_create("", "v1", "PersistentVolumeClaim", obj)), (
            field
        )


def test_claim_spec_is_immutable_except_size() -> None:
    old = pvc()
    old["status"] = {"phase": "Bound"}
    bigger = copy.deepcopy(old)
    bigger["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert validate_update("", "v1", "PersistentVolumeClaim", bigger, old) == []
    smaller = copy.deepcopy(old)
    smaller["spec"]["resources"]["requests"]["storage"] = "512Mi"
    assert ("spec.resources.requests.storage", errors.FIELD_FORBIDDEN) in codes(
        validate_update("", "v1", "PersistentVolumeClaim", smaller, old)
    )
    modes = copy.deepcopy(old)
    modes["spec"]["accessModes"] = ["ReadWriteMany"]
    errs = validate_update("", "v1", "PersistentVolumeClaim", modes, old)
    assert codes(errs) == [("spec", errors.FIELD_FORBIDDEN)]
    assert (
        errs[0]
        .message()
        .startswith("spec: Forbidden: spec is immutable after creation except resources.requests")
    )
    binding = copy.deepcopy(old)
    binding["spec"]["volumeName"] = "pv-1"
    assert validate_update("", "v1", "PersistentVolumeClaim", binding, old) == []


def storage_class(**fields: Any) -> Obj:
    obj: Obj = {
        "metadata": {"name": "fast"},
        "provisioner": "kubernetes.io/no-provisioner",
        **fields,
    }
    apply_defaults("storage.k8s.io", "v1", "StorageClass", obj)
    return obj


def test_storage_classes() -> None:
    assert validate_create("storage.k8s.io", "v1", "StorageClass", storage_class()) == []
    assert codes(
        validate_create("storage.k8s.io", "v1", "StorageClass", storage_class(provisioner=""))
    ) == [("provisioner", errors.REQUIRED)]
    assert codes(
        validate_create(
            "storage.k8s.io", "v1", "StorageClass", storage_class(reclaimPolicy="Recycle")
        )
    ) == [("reclaimPolicy", errors.NOT_SUPPORTED)]
    assert codes(
        validate_create(
            "storage.k8s.io", "v1", "StorageClass", storage_class(volumeBindingMode="Later")
        )
    ) == [("volumeBindingMode", errors.NOT_SUPPORTED)]
    old = storage_class(parameters={"type": "ssd"})
    for change, field in (
        ({"parameters": {"type": "hdd"}}, "parameters"),
        ({"provisioner": "other.io/x"}, "provisioner"),
    ):
        new = {**copy.deepcopy(old), **change}
        assert (field, errors.FIELD_FORBIDDEN) in codes(
            validate_update("storage.k8s.io", "v1", "StorageClass", new, old)
        )
    labelled = copy.deepcopy(old)
    labelled["metadata"]["labels"] = {"tier": "fast"}
    assert validate_update("storage.k8s.io", "v1", "StorageClass", labelled, old) == []
