"""Admission for volumes and claims (DefaultStorageClass, StorageObjectInUseProtection,
PersistentVolumeClaimResize), the PersistentVolume strategy, and the local-path class a
new cluster starts with — over HTTPS, as clients see them."""

from __future__ import annotations

import uuid
from typing import Any

Obj = dict[str, Any]


def _claim(name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            **spec,
        },
    }


def test_new_cluster_has_the_local_path_class_as_default(api: Any) -> None:
    status, sc = api.json("GET", "/apis/storage.k8s.io/v1/storageclasses/local-path")
    assert status == 200, sc
    assert sc["provisioner"] == "pilothouse.io/local-path"
    assert sc["reclaimPolicy"] == "Delete"
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["allowVolumeExpansion"] is True
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}


def test_claims_get_the_default_class_and_protection(api: Any, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    status, pvc = api.json("POST", base, _claim("a"))
    assert status == 201, pvc
    assert pvc["spec"]["storageClassName"] == "local-path"
    assert pvc["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert pvc["status"] == {"phase": "Pending"}
    # "" means no class at all: it stays.
    status, pvc = api.json("POST", base, _claim("b", storageClassName=""))
    assert status == 201, pvc
    assert pvc["spec"]["storageClassName"] == ""
    # The beta annotation counts as a choice too.
    body = _claim("c")
    body["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "x"}
    status, pvc = api.json("POST", base, body)
    assert status == 201, pvc
    assert "storageClassName" not in pvc["spec"]


def test_volumes_get_protection_and_phase_times(api: Any) -> None:
    name = "pv-" + uuid.uuid4().hex[:8]
    status, pv = api.json(
        "POST",
        "/api/v1/persistentvolumes",
        {
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/srv/x"},
            },
            "status": {"phase": "Bound"},
        },
    )
    assert status == 201, pv
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert pv["status"]["phase"] == "Pending"  # what a client sends is dropped
    first = pv["status"]["lastPhaseTransitionTime"]
    assert first.endswith("Z")
    pv["status"] = {"phase": "Available"}
    status, updated = api.json("PUT", f"/api/v1/persistentvolumes/{name}/status", pv)
    assert status == 200, updated
    assert updated["status"]["lastPhaseTransitionTime"] >= first
    updated["status"]["message"] = "same phase"
    status, again = api.json("PUT", f"/api/v1/persistentvolumes/{name}/status", updated)
    assert status == 200, again
    assert (
        again["status"]["lastPhaseTransitionTime"] == updated["status"]["lastPhaseTransitionTime"]
    )
    pv = again
    pv["metadata"]["finalizers"] = []
    api.json("PUT", f"/api/v1/persistentvolumes/{name}", pv)
    api.request("DELETE", f"/api/v1/persistentvolumes/{name}")


def test_only_claims_of_expandable_classes_grow(api: Any, namespace: str) -> None:
    fixed = "fixed-" + uuid.uuid4().hex[:6]
    status, body = api.json(
        "POST",
        "/apis/storage.k8s.io/v1/storageclasses",
        {"metadata": {"name": fixed}, "provisioner": "example.com/x"},
    )
    assert status == 201, body
    base = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    try:
        for name, cls in (("grows", "local-path"), ("fixed", fixed)):
            status, pvc = api.json("POST", base, _claim(name, storageClassName=cls))
            assert status == 201, pvc
        # Unbound claims cannot change their spec at all.
        status, pvc = api.json("GET", f"{base}/grows")
        pvc["spec"]["resources"]["requests"]["storage"] = "2Gi"
        status, err = api.json("PUT", f"{base}/grows", pvc)
        assert status == 422, err
        assert "spec is immutable after creation" in err["message"]
        for name in ("grows", "fixed"):
            status, pvc = api.json("GET", f"{base}/{name}")
            pvc["spec"]["volumeName"] = "pv-" + name
            assert api.json("PUT", f"{base}/{name}", pvc)[0] == 200
            status, pvc = api.json("GET", f"{base}/{name}")
            pvc["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
            assert api.json("PUT", f"{base}/{name}/status", pvc)[0] == 200
        status, pvc = api.json("GET", f"{base}/fixed")
        pvc["spec"]["resources"]["requests"]["storage"] = "2Gi"
        status, err = api.json("PUT", f"{base}/fixed", pvc)
        assert (status, err["reason"], err["message"]) == (
            403,
            "Forbidden",
            'persistentvolumeclaims "fixed" is forbidden: only dynamically provisioned pvc can '
            "be resized and the storageclass that provisions the pvc must support resize",
        )
        status, pvc = api.json("GET", f"{base}/grows")
        pvc["spec"]["resources"]["requests"]["storage"] = "2Gi"
        status, grown = api.json("PUT", f"{base}/grows", pvc)
        assert status == 200, grown
        assert grown["spec"]["resources"]["requests"]["storage"] == "2Gi"
    finally:
        api.request("DELETE", f"/apis/storage.k8s.io/v1/storageclasses/{fixed}")
