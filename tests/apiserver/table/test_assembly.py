"""Table assembly: the Table's shape, the row objects, columns of every kind, speed."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from pilothouse.api import errors, resources
from pilothouse.apiserver import table
from pilothouse.apiserver.table import assembly, docs

NOW = 1_764_088_762.0
REGISTRY = resources.Registry()


def resource(group: str, kind: str) -> resources.Resource:
    found = REGISTRY.by_kind(group, "v1", kind)
    assert found is not None
    return found


POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-0",
        "namespace": "default",
        "uid": "4b1c",
        "resourceVersion": "42",
        "creationTimestamp": "2025-11-25T16:34:22Z",
        "labels": {"app": "web"},
    },
    "spec": {"containers": [{"name": "web", "image": "nginx"}], "nodeName": "node-1"},
    "status": {
        "phase": "Running",
        "podIP": "10.42.0.5",
        "podIPs": [{"ip": "10.42.0.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {"name": "web", "ready": True, "restartCount": 0, "state": {"running": {}}}
        ],
    },
}


def test_table_shape_with_partial_object_metadata() -> None:
    got = table.build_table(
        resource("", "Pod"), [POD], now=NOW, list_metadata={"resourceVersion": "42"}
    )
    assert list(got) == ["kind", "apiVersion", "metadata", "columnDefinitions", "rows"]
    assert got["kind"] == "Table"
    assert got["apiVersion"] == "meta.k8s.io/v1"
    assert got["metadata"] == {"resourceVersion": "42"}
    assert [c["name"] for c in got["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert got["rows"] == [
        {
            "cells": [
                "web-0",
                "1/1",
                "Running",
                "0",
                "5m",
                "10.42.0.5",
                "node-1",
                "<none>",
                "<none>",
            ],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": POD["metadata"],
            },
        }
    ]


@pytest.mark.parametrize(("include", "want"), [("Object", POD), ("None", None)])
def test_include_object(include: str, want: Any) -> None:
    got = table.build_table(
        resource("", "Pod"), [POD], now=NOW, list_metadata={}, include_object=include
    )
    assert got["rows"][0]["object"] == want
    assert "conditions" not in got["rows"][0]


def test_empty_include_object_means_metadata() -> None:
    got = table.build_table(
        resource("", "Pod"), [POD], now=NOW, list_metadata={}, include_object=""
    )
    assert got["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_unknown_include_object_is_a_bad_request() -> None:
    with pytest.raises(errors.StatusError) as caught:
        table.build_table(
            resource("", "Pod"), [POD], now=NOW, list_metadata={}, include_object="All"
        )
    status = caught.value.status()
    assert status["code"] == 400
    assert status["message"] == 'unrecognized includeObject value: "All"'


def test_objects_are_not_changed() -> None:
    before = copy.deepcopy(POD)
    table.build_table(resource("", "Pod"), [POD], now=NOW, list_metadata={})
    assert before == POD


def test_row_conditions_for_completed_pods() -> None:
    done = copy.deepcopy(POD)
    done["status"]["phase"] = "Succeeded"
    done["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"reason": "Completed", "exitCode": 0}
    }
    row = table.build_table(resource("", "Pod"), [done], now=NOW, list_metadata={})["rows"][0]
    assert list(row) == ["cells", "conditions", "object"]
    assert row["conditions"][0]["reason"] == "Succeeded"
    assert row["cells"][2] == "Completed"


def test_no_headers_drops_column_definitions() -> None:
    got = table.build_table(resource("", "Pod"), [POD], now=NOW, list_metadata={}, no_headers=True)
    assert got["columnDefinitions"] is None
    assert len(got["rows"]) == 1


def test_empty_lists() -> None:
    printed = table.build_table(resource("", "Pod"), [], now=NOW, list_metadata={})
    assert printed["rows"] == []
    lease_like = REGISTRY.by_kind("", "v1", "Binding")
    assert lease_like is not None
    default = table.build_table(lease_like, [], now=NOW, list_metadata={})
    assert default["rows"] is None


def test_default_convertor() -> None:
    custom = resources.Resource(
        group="example.com", version="v1", kind="Widget", plural="widgets", namespaced=True
    )
    widget = {"metadata": {"name": "w1", "creationTimestamp": "2025-11-25T17:39:22+01:00"}}
    got = table.build_table(
        custom, [widget, {"metadata": {"name": "w2"}}], now=NOW, list_metadata={}
    )
    assert got["columnDefinitions"] == [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": docs.NAME,
            "priority": 0,
        },
        {
            "name": "Created At",
            "type": "date",
            "format": "",
            "description": docs.CREATION_TIMESTAMP,
            "priority": 0,
        },
    ]
    assert [r["cells"] for r in got["rows"]] == [
        ["w1", "2025-11-25T16:39:22Z"],
        ["w2", "0001-01-01T00:00:00Z"],
    ]


# Column names as upstream's AddHandlers defines them; "*" marks priority 1 (wide only).
COLUMNS = {
    ("", "Namespace"): "Name Status Age",
    ("", "ResourceQuota"): "Name Age Request Limit",
    ("", "LimitRange"): "Name Created_At",
    (
        "",
        "Node",
    ): "Name Status Roles Age Version *Internal-IP *External-IP *OS-Image *Kernel-Version "
    "*Container-Runtime",
    ("", "Pod"): "Name Ready Status Restarts Age *IP *Node *Nominated_Node *Readiness_Gates",
    ("", "Service"): "Name Type Cluster-IP External-IP Port(s) Age *Selector",
    ("", "Endpoints"): "Name Endpoints Age",
    ("", "ConfigMap"): "Name Data Age",
    ("", "Secret"): "Name Type Data Age",
    ("", "ServiceAccount"): "Name Secrets Age",
    (
        "",
        "Event",
    ): "Last_Seen Type Reason Object *Subobject *Source Message *First_Seen *Count *Name",
    ("", "PersistentVolume"): "Name Capacity Access_Modes Reclaim_Policy Status Claim StorageClass "
    "VolumeAttributesClass Reason Age *VolumeMode",
    ("", "PersistentVolumeClaim"): "Name Status Volume Capacity Access_Modes StorageClass "
    "VolumeAttributesClass Age *VolumeMode",
    ("", "Binding"): "Name Created_At",
    ("apps", "Deployment"): "Name Ready Up-to-date Available Age *Containers *Images *Selector",
    ("", "ReplicationController"): "Name Desired Current Ready Age *Containers *Images *Selector",
    ("apps", "ReplicaSet"): "Name Desired Current Ready Age *Containers *Images *Selector",
    ("apps", "StatefulSet"): "Name Ready Age *Containers *Images",
    ("apps", "DaemonSet"): "Name Desired Current Ready Up-to-date Available Node_Selector Age "
    "*Containers *Images *Selector",
    ("apps", "ControllerRevision"): "Name Controller Revision Age",
    ("batch", "Job"): "Name Status Completions Duration Age *Containers *Images *Selector",
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
    ): "Name Reference Targets MinPods MaxPods Replicas Age",
    (
        "batch",
        "CronJob",
    ): "Name Schedule Timezone Suspend Active Last_Schedule Age *Containers *Images *Selector",
    ("coordination.k8s.io", "Lease"): "Name Holder Age",
    ("discovery.k8s.io", "EndpointSlice"): "Name AddressType Ports Endpoints Age",
    ("storage.k8s.io", "StorageClass"): "Name Provisioner ReclaimPolicy VolumeBindingMode "
    "AllowVolumeExpansion Age",
    (
        "events.k8s.io",
        "Event",
    ): "Last_Seen Type Reason Object *Subobject *Source Message *First_Seen *Count *Name",
    ("scheduling.k8s.io", "PriorityClass"): "Name Value Global-Default Age PreemptionPolicy",
    # The API server's default convertor, as upstream serves CRDs (NAME, CREATED AT)
    ("apiextensions.k8s.io", "CustomResourceDefinition"): "Name Created_At",
    ("policy", "PodDisruptionBudget"): "Name Min_Available Max_Unavailable Allowed_Disruptions Age",
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): "Name Webhooks Age",
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): "Name Webhooks Age",
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): "Name Validations ParamKind Age",
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): (
        "Name PolicyName ParamRef Age"
    ),
    ("apiregistration.k8s.io", "APIService"): "Name Service Available Age",
    ("rbac.authorization.k8s.io", "Role"): "Name Created_At",
    ("rbac.authorization.k8s.io", "ClusterRole"): "Name Created_At",
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
    ): "Name Role Age *Users *Groups *ServiceAccounts",
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
    ): "Name Role Age *Users *Groups *ServiceAccounts",
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
    ): "Name Age SignerName Requestor RequestedDuration Condition",
}


# Resources kept in the store; metrics.k8s.io is answered as JSON only, as kubectl top reads it.
STORED = [r for r in resources.RESOURCES if r.stored]


@pytest.mark.parametrize("res", STORED, ids=lambda r: f"{r.group or 'core'}.{r.kind}")
def test_columns_of_every_resource(res: resources.Resource) -> None:
    columns = table.column_definitions(res)
    got = " ".join(("*" if c["priority"] else "") + c["name"].replace(" ", "_") for c in columns)
    assert got == COLUMNS[(res.group, res.kind)]
    for c in columns:
        assert list(c) == ["name", "type", "format", "description", "priority"]
        assert c["type"] in ("string", "integer", "boolean", "date")
        assert c["description"]
    # the first "name"-formatted column is the object's name
    assert [c["format"] for c in columns].count("name") == 1


@pytest.mark.parametrize("res", resources.RESOURCES, ids=lambda r: f"{r.group or 'core'}.{r.kind}")
def test_every_row_fills_every_column(res: resources.Resource) -> None:
    bare = {"metadata": {"name": "n"}}
    got = table.build_table(res, [bare], now=NOW, list_metadata={})
    assert len(got["rows"][0]["cells"]) == len(got["columnDefinitions"])
    name_index = [c["format"] for c in got["columnDefinitions"]].index("name")
    assert got["rows"][0]["cells"][name_index] == "n"


def test_column_definitions_are_fresh_copies() -> None:
    first = table.column_definitions(resource("", "Pod"))
    first[0]["name"] = "Mangled"
    assert table.column_definitions(resource("", "Pod"))[0]["name"] == "Name"


def test_printer_kinds_exist_in_the_resource_table() -> None:
    kinds = {(r.group, r.kind) for r in resources.RESOURCES}
    assert set(assembly.PRINTERS) <= kinds


def many_pods(count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        pod = copy.deepcopy(POD)
        pod["metadata"]["name"] = f"web-{i}"
        pod["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always"}]
        pod["status"]["initContainerStatuses"] = [
            {"name": "proxy", "ready": True, "started": True, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-11-25T16:30:00Z"}}}
        ]  # fmt: skip
        pod["status"]["conditions"].append({"type": "Initialized", "status": "True"})
        out.append(pod)
    return out


def test_five_hundred_pods_are_fast() -> None:
    pods = many_pods(500)
    pod_resource = resource("", "Pod")
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        got = table.build_table(pod_resource, pods, now=NOW, list_metadata={})
        best = min(best, time.perf_counter() - started)
    assert got["rows"][499]["cells"][:4] == ["web-499", "2/2", "Running", "1 (9m22s ago)"]
    assert best < 0.05, f"500 pods took {best * 1000:.1f} ms"
