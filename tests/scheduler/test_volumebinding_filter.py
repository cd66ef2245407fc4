"""VolumeBinding's Filter and Reserve over a bare cache: claims that compete for the same
volumes are placed exactly, selected nodes and allowed topologies are honoured, and
Reserve assumes what it will bind so the next pod does not count on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pilothouse.scheduler import algorithm, types
from pilothouse.scheduler.framework import interface as fw

from .builders import Harness, node, pod

Obj = dict[str, Any]
RV = iter(range(1, 10_000))


def _obj(body: Obj) -> Obj:
    body["metadata"]["resourceVersion"] = str(next(RV))
    body["metadata"].setdefault("uid", f"uid-{body['metadata']['name']}")
    return body


def local(name: str, node_name: str, size: str = "1Gi", cls: str = "local") -> Obj:
    return _obj(
        {
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": cls,
                "local": {"path": "/mnt"},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/hostname",
                                        "operator": "In",
                                        "values": [node_name],
                                    }
                                ]
                            }
                        ]
                    }
                },
            },
            "status": {"phase": "Available"},
        }
    )


def claim(name: str, cls: str = "local", **annotations: str) -> Obj:
    return _obj(
        {
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": cls,
                "resources": {"requests": {"storage": "1Gi"}},
            },
            "status": {"phase": "Pending"},
        }
    )


def storage_class(name: str, provisioner: str, **extra: Any) -> Obj:
    return {
        "metadata": {"name": name},
        "provisioner": provisioner,
        "volumeBindingMode": "WaitForFirstConsumer",
        **extra,
    }


@pytest.fixture
def harness() -> Harness:
    h = Harness()
    h.add_nodes(node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2"}), node("c"))
    plugin = h.plugin("VolumeBinding")
    plugin.classes["local"] = storage_class("local", "kubernetes.io/no-provisioner")
    plugin.classes["dyn"] = storage_class(
        "dyn",
        "example.com/disk",
        allowedTopologies=[{"matchLabelExpressions": [{"key": "zone", "values": ["z2"]}]}],
    )
    return h


def _add(harness: Harness, *objs: Obj) -> None:
    plugin = harness.plugin("VolumeBinding")
    for obj in objs:
        target = plugin.claims if obj["metadata"].get("namespace") else plugin.volumes
        target.on_add(obj)


def _using(name: str, *claims: str) -> Obj:
    return pod(
        name,
        spec={
            "volumes": [
                {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                for i, c in enumerate(claims)
            ]
        },
    )


def test_two_claims_need_a_node_with_two_free_volumes(harness: Harness) -> None:
    _add(
        harness,
        local("a1", "a"),
        local("b1", "b"),
        local("b2", "b"),
        claim("x"),
        claim("y"),
        claim("z"),
    )
    assert harness.schedule(_using("p", "x", "y"), assume=False) == "b"
    with pytest.raises(algorithm.FitError) as err:
        harness.schedule(_using("q", "x", "y", "z"), assume=False)
    assert str(err.value) == (
        "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind."
    )


def test_competing_claims_exclude_nodes_with_too_few_volumes(harness: Harness) -> None:
    _add(harness, local("a1", "a"), local("b1", "b"), local("b2", "b"), claim("x"), claim("y"))
    info = types.make_pod_info(_using("p", "x", "y"))
    state = fw.CycleState()
    fwk = harness.framework
    _names, status = fwk.run_pre_filter(state, info)
    assert status.is_success()
    table = harness.cache.table
    mask = harness.plugin("VolumeBinding").filter(state, info)
    assert [table.names[r] for r in mask.nonzero()[0] if table.valid[r]] == ["b"]
    statuses = harness.plugin("VolumeBinding").explain(
        state, info, np.array([table.row_of["a"], table.row_of["c"]])
    )
    assert [s.reasons for s in statuses] == [
        ("node(s) didn't find available persistent volumes to bind",)
    ] * 2


def test_provisioning_follows_allowed_topologies_and_selected_node(harness: Harness) -> None:
    _add(
        harness,
        claim("d", cls="dyn"),
        claim("picked", cls="dyn", **{"volume.kubernetes.io/selected-node": "c"}),
    )
    assert harness.schedule(_using("p", "d"), assume=False) == "b"
    # A node chosen before stays the only candidate, and there the class cannot provision.
    with pytest.raises(algorithm.FitError) as err:
        harness.schedule(_using("q", "picked"), assume=False)
    assert str(err.value) == (
        "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind."
    )


def test_reserve_assumes_the_volume_so_the_next_pod_looks_elsewhere(harness: Harness) -> None:
    _add(harness, local("a1", "a"), local("c1", "c"), claim("x"), claim("y"))
    fwk = harness.framework
    plugin = harness.plugin("VolumeBinding")
    first = types.make_pod_info(_using("p", "x"))
    state = fw.CycleState()
    result = harness.algorithm.schedule(fwk, state, first)
    assert fwk.run_reserve(state, first, result.node).is_success()
    taken = plugin.volumes.get(f"{result.node}1")
    assert taken["spec"]["claimRef"]["name"] == "x"
    second = types.make_pod_info(_using("q", "y"))
    other = harness.algorithm.schedule(fwk, fw.CycleState(), second)
    assert other.node != result.node
    # Unreserve gives the volume back.
    fwk.run_unreserve(state, first, result.node)
    assert "claimRef" not in plugin.volumes.get(f"{result.node}1")["spec"]
