"""Per-kind selectable fields and accepted field labels (Kubernetes 1.32)."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import selectors


def _meta(name: str = "x", namespace: str | None = "ns") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


POD: dict[str, Any] = {
    "metadata": _meta("web-1", "default"),
    "spec": {
        "nodeName": "n1",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "sa",
        "hostNetwork": True,
    },
    "status": {
        "phase": "Running",
        "podIP": "10.42.0.9",
        "podIPs": [{"ip": "10.42.0.9"}, {"ip": "fd00::9"}],
        "nominatedNodeName": "n2",
    },
}

CASES: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    (
        "",
        "Pod",
        POD,
        {
            "metadata.name": "web-1",
            "metadata.namespace": "default",
            "spec.nodeName": "n1",
            "spec.restartPolicy": "Always",
            "spec.schedulerName": "default-scheduler",
            "spec.serviceAccountName": "sa",
            "spec.hostNetwork": "true",
            "status.phase": "Running",
            "status.podIP": "10.42.0.9",
            "status.nominatedNodeName": "n2",
        },
    ),
    (
        "",
        "Pod",
        {"metadata": _meta(), "spec": {"serviceAccount": "old"}, "status": {"podIP": "1.2.3.4"}},
        {
            "metadata.name": "x",
            "metadata.namespace": "ns",
            "spec.nodeName": "",
            "spec.restartPolicy": "",
            "spec.schedulerName": "",
            "spec.serviceAccountName": "old",
            "spec.hostNetwork": "false",
            "status.phase": "",
            "status.podIP": "1.2.3.4",
            "status.nominatedNodeName": "",
        },
    ),
    (
        "",
        "Node",
        {"metadata": _meta("n1", None), "spec": {"unschedulable": True}},
        {"metadata.name": "n1", "metadata.namespace": "", "spec.unschedulable": "true"},
    ),
    (
        "",
        "Node",
        {"metadata": _meta("n1", None), "spec": {}},
        {"metadata.name": "n1", "metadata.namespace": "", "spec.unschedulable": "false"},
    ),
    (
        "",
        "Namespace",
        {"metadata": _meta("kube-system", None), "status": {"phase": "Active"}},
        {"metadata.name": "kube-system", "metadata.namespace": "", "status.phase": "Active"},
    ),
    (
        "",
        "Secret",
        {"metadata": _meta(), "type": "kubernetes.io/tls"},
        {"metadata.name": "x", "metadata.namespace": "ns", "type": "kubernetes.io/tls"},
    ),
    (
        "",
        "Service",
        {"metadata": _meta(), "spec": {"clusterIP": "10.43.0.1", "type": "ClusterIP"}},
        {
            "metadata.name": "x",
            "metadata.namespace": "ns",
            "spec.clusterIP": "10.43.0.1",
            "spec.type": "ClusterIP",
        },
    ),
    (
        "apps",
        "ReplicaSet",
        {"metadata": _meta(), "status": {"replicas": 3}},
        {"metadata.name": "x", "metadata.namespace": "ns", "status.replicas": "3"},
    ),
    (
        "",
        "ReplicationController",
        {"metadata": _meta(), "status": {}},
        {"metadata.name": "x", "metadata.namespace": "ns", "status.replicas": "0"},
    ),
    (
        "batch",
        "Job",
        {"metadata": _meta(), "status": {"succeeded": 2}},
        {"metadata.name": "x", "metadata.namespace": "ns", "status.successful": "2"},
    ),
    (
        "certificates.k8s.io",
        "CertificateSigningRequest",
        {"metadata": _meta("csr", None), "spec": {"signerName": "kubernetes.io/kubelet-serving"}},
        {
            "metadata.name": "csr",
            "metadata.namespace": "",
            "spec.signerName": "kubernetes.io/kubelet-serving",
        },
    ),
    (
        "",
        "ConfigMap",
        {"metadata": _meta(), "data": {"a": "b"}},
        {"metadata.name": "x", "metadata.namespace": "ns"},
    ),
    (
        "apps",
        "Deployment",
        {"metadata": {}},
        {"metadata.name": "", "metadata.namespace": ""},
    ),
]

EVENT_FIELDS = {
    "metadata.name": "e1",
    "metadata.namespace": "default",
    "involvedObject.kind": "Pod",
    "involvedObject.namespace": "default",
    "involvedObject.name": "web-1",
    "involvedObject.uid": "u-1",
    "involvedObject.apiVersion": "v1",
    "involvedObject.resourceVersion": "7",
    "involvedObject.fieldPath": "spec.containers{web}",
    "reason": "Pulled",
    "reportingComponent": "kubelet",
    "source": "kubelet",
    "type": "Normal",
}
INVOLVED = {
    "kind": "Pod",
    "namespace": "default",
    "name": "web-1",
    "uid": "u-1",
    "apiVersion": "v1",
    "resourceVersion": "7",
    "fieldPath": "spec.containers{web}",
}
CASES += [
    (
        "",
        "Event",
        {
            "metadata": _meta("e1", "default"),
            "involvedObject": INVOLVED,
            "reason": "Pulled",
            "reportingComponent": "kubelet",
            "type": "Normal",
        },
        EVENT_FIELDS,
    ),
    (
        "events.k8s.io",
        "Event",
        {
            "metadata": _meta("e1", "default"),
            "regarding": INVOLVED,
            "reason": "Pulled",
            "reportingController": "kubelet",
            "type": "Normal",
        },
        EVENT_FIELDS,
    ),
    (
        "",
        "Event",
        {
            "metadata": _meta("e1", "default"),
            "involvedObject": INVOLVED,
            "reason": "Pulled",
            "source": {"component": "scheduler"},
            "reportingComponent": "kubelet",
            "type": "Normal",
        },
        {**EVENT_FIELDS, "source": "scheduler"},
    ),
]


@pytest.mark.parametrize(("group", "kind", "obj", "want"), CASES)
def test_object_fields(group: str, kind: str, obj: dict[str, Any], want: dict[str, str]) -> None:
    assert selectors.object_fields(group, kind, obj) == want


def test_pod_without_pod_ips_but_pod_ip() -> None:
    fields = selectors.object_fields(
        "", "Pod", {"metadata": _meta(), "status": {"podIP": "1.1.1.1"}}
    )
    assert fields["status.podIP"] == "1.1.1.1"


ACCEPTED = [
    ("", "v1", "Pod", "spec.nodeName=n1,status.phase!=Failed,spec.hostNetwork=true"),
    ("", "v1", "Pod", "status.podIP=10.42.0.9,status.nominatedNodeName=,spec.schedulerName=x"),
    ("", "v1", "Pod", "spec.restartPolicy=Never,spec.serviceAccountName=default"),
    ("", "v1", "Pod", "metadata.name=a,metadata.namespace=b"),
    ("", "v1", "Node", "metadata.name=n1,spec.unschedulable=false"),
    ("", "v1", "Namespace", "status.phase=Active,metadata.name=default"),
    ("", "v1", "Secret", "type=Opaque,metadata.namespace=a,metadata.name=b"),
    ("", "v1", "Service", "spec.clusterIP=None,spec.type=NodePort"),
    ("", "v1", "ReplicationController", "status.replicas=0"),
    ("", "v1", "ConfigMap", "metadata.name=a,metadata.namespace=b"),
    ("", "v1", "PersistentVolumeClaim", "metadata.name=a"),
    ("apps", "v1", "Deployment", "metadata.name=a"),
    ("batch", "v1", "Job", "status.successful=1"),
    ("certificates.k8s.io", "v1", "CertificateSigningRequest", "spec.signerName=a/b"),
    (
        "",
        "v1",
        "Event",
        "involvedObject.name=a,involvedObject.namespace=b,involvedObject.kind=Pod,"
        "involvedObject.uid=u,involvedObject.apiVersion=v1,involvedObject.resourceVersion=1,"
        "involvedObject.fieldPath=x,reason=r,reportingComponent=c,source=s,type=Normal",
    ),
    (
        "events.k8s.io",
        "v1",
        "Event",
        "regarding.name=a,reportingController=c,reason=r,type=t,source=s",
    ),
]


@pytest.mark.parametrize(("group", "version", "kind", "text"), ACCEPTED)
def test_accepted_field_labels(group: str, version: str, kind: str, text: str) -> None:
    sel = selectors.parse_field_selector(text)
    selectors.check_field_selector(group, version, kind, sel)
    assert selectors.convert_field_selector(group, version, kind, sel).requirements


REJECTED = [
    ("", "v1", "Pod", "spec.foo=x", "field label not supported: spec.foo"),
    ("", "v1", "Pod", "status.podIPs=10.42.0.9", "field label not supported: status.podIPs"),
    ("", "v1", "Pod", "status.hostIP=1.2.3.4", "field label not supported: status.hostIP"),
    ("", "v1", "Node", "metadata.namespace=x", "field label not supported: metadata.namespace"),
    (
        "",
        "v1",
        "Namespace",
        "metadata.namespace=x",
        "field label not supported: metadata.namespace",
    ),
    ("", "v1", "Event", "regarding.name=x", "field label not supported: regarding.name"),
    (
        "events.k8s.io",
        "v1",
        "Event",
        "involvedObject.name=x",
        "field label not supported: involvedObject.name",
    ),
    (
        "batch",
        "v1",
        "Job",
        "status.succeeded=1",
        'field label "status.succeeded" not supported for batchv1.Job',
    ),
    (
        "apps",
        "v1",
        "ReplicaSet",
        "status.replicas=1",
        '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"',
    ),
    (
        "",
        "v1",
        "PersistentVolume",
        "name=x",
        '"name" is not a known field selector: only "metadata.name", "metadata.namespace"',
    ),
    # Terms are checked in their sorted order, so the first bad one is reported.
    ("", "v1", "Pod", "zzz=1,aaa=2", "field label not supported: aaa"),
]


@pytest.mark.parametrize(("group", "version", "kind", "text", "message"), REJECTED)
def test_rejected_field_labels(
    group: str, version: str, kind: str, text: str, message: str
) -> None:
    sel = selectors.parse_field_selector(text)
    with pytest.raises(selectors.SelectorError) as caught:
        selectors.check_field_selector(group, version, kind, sel)
    assert str(caught.value) == message
    assert caught.value.status_error().code == 400


def test_conversion_maps_aliases_to_stored_fields() -> None:
    pod = selectors.parse_field_selector("spec.host=n1")
    assert str(selectors.convert_field_selector("", "v1", "Pod", pod)) == "spec.nodeName=n1"
    event = selectors.parse_field_selector("regarding.kind=Pod,reportingController=kubelet")
    converted = selectors.convert_field_selector("events.k8s.io", "v1", "Event", event)
    assert converted.requirements == [
        ("involvedObject.kind", "=", "Pod"),
        ("reportingComponent", "=", "kubelet"),
    ]


def test_request_to_match_end_to_end() -> None:
    sel = selectors.convert_field_selector(
        "", "v1", "Pod", selectors.parse_field_selector("spec.host=n1,status.phase!=Succeeded")
    )
    assert sel.matches(selectors.object_fields("", "Pod", POD))
    assert not sel.matches(selectors.object_fields("", "Pod", {**POD, "spec": {"nodeName": "n9"}}))
    describe = selectors.parse_field_selector(
        "involvedObject.name=web-1,involvedObject.namespace=default,involvedObject.kind=Pod,involvedObject.uid=u-1"
    )
    selectors.check_field_selector("", "v1", "Event", describe)
    event = {"metadata": _meta("e1", "default"), "involvedObject": INVOLVED}
    assert describe.matches(selectors.object_fields("", "Event", event))
    unscheduled = selectors.parse_field_selector("spec.nodeName=")
    assert unscheduled.matches(selectors.object_fields("", "Pod", {"metadata": _meta()}))
    assert not unscheduled.matches(selectors.object_fields("", "Pod", POD))


def test_accepted_field_labels_listing() -> None:
    assert selectors.accepted_field_labels("apps", "v1", "Deployment") == [
        "metadata.name",
        "metadata.namespace",
    ]
    assert "spec.host" in selectors.accepted_field_labels("", "v1", "Pod")
