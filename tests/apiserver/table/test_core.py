"""Tables of core kinds, with the cases of upstream's printers tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pilothouse.apiserver.table import core

NOW = 1_764_088_762.0


def ago(seconds: float) -> str:
    return datetime.fromtimestamp(NOW - seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- Node (TestPrintNodeStatus, TestPrintNodeRole, TestPrintNode*IP, …) ---------


def node(name: str, *, conditions: list[dict[str, Any]] | None = None, unschedulable: bool = False,
         labels: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:  # fmt: skip
    obj: dict[str, Any] = {"metadata": {"name": name}, "spec": {}, "status": dict(status)}
    if conditions is not None:
        obj["status"]["conditions"] = conditions
    if unschedulable:
        obj["spec"]["unschedulable"] = True
    if labels:
        obj["metadata"]["labels"] = labels
    return obj


READY = {"type": "Ready", "status": "True"}
NOT_READY = {"type": "Ready", "status": "False"}
INVALID = {"type": "InvalidValue", "status": "True"}


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (node("foo1", conditions=[READY]), "Ready"),
        (node("foo2", conditions=[READY], unschedulable=True), "Ready,SchedulingDisabled"),
        (node("foo3", conditions=[READY, READY]), "Ready"),
        (node("foo4", conditions=[NOT_READY]), "NotReady"),
        (node("foo5", conditions=[NOT_READY], unschedulable=True), "NotReady,SchedulingDisabled"),
        (node("foo6", conditions=[INVALID]), "Unknown"),
        (node("foo7", conditions=[{}]), "Unknown"),
        (node("foo8", conditions=[INVALID], unschedulable=True), "Unknown,SchedulingDisabled"),
        (node("foo9", conditions=[{}], unschedulable=True), "Unknown,SchedulingDisabled"),
        (node("foo10", conditions=[{"type": "Ready", "status": "Unknown"}]), "NotReady"),
        # the last Ready condition wins
        (node("foo11", conditions=[READY, NOT_READY]), "NotReady"),
    ],
)
def test_node_status(obj: dict[str, Any], want: str) -> None:
    assert core.node_cells(obj, NOW)[:5] == [
        obj["metadata"]["name"],
        want,
        "<none>",
        "<unknown>",
        "",
    ]


@pytest.mark.parametrize(
    ("labels", "want"),
    [
        (None, "<none>"),
        (
            {
                "node-role.kubernetes.io/master": "",
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/proxy": "",
                "kubernetes.io/role": "node",
            },
            "control-plane,master,node,proxy",
        ),
        ({"kubernetes.io/role": "node"}, "node"),
        ({"kubernetes.io/role": "", "node-role.kubernetes.io/": "x"}, "<none>"),
        (
            {"node-role.kubernetes.io/worker": "true", "node-role.kubernetes.io/etcd": ""},
            "etcd,worker",
        ),
    ],
)
def test_node_roles(labels: dict[str, str] | None, want: str) -> None:
    assert core.node_cells(node("n", labels=labels), NOW)[2] == want


@pytest.mark.parametrize(
    ("addresses", "internal", "external"),
    [
        ([{"type": "ExternalIP", "address": "1.1.1.1"}], "<none>", "1.1.1.1"),
        ([{"type": "InternalIP", "address": "1.1.1.1"}], "1.1.1.1", "<none>"),
        (
            [
                {"type": "ExternalIP", "address": "2.2.2.2"},
                {"type": "InternalIP", "address": "3.3.3.3"},
                {"type": "ExternalIP", "address": "4.4.4.4"},
            ],
            "3.3.3.3",
            "2.2.2.2",
        ),
        (
            [
                {"type": "Hostname", "address": "node-1"},
                {"type": "InternalIP", "address": "2.2.2.2"},
                {"type": "InternalIP", "address": "4.4.4.4"},
            ],
            "2.2.2.2",
            "<none>",
        ),
    ],
)
def test_node_addresses(addresses: list[dict[str, str]], internal: str, external: str) -> None:
    cells = core.node_cells(node("n", addresses=addresses), NOW)
    assert cells[5:7] == [internal, external]


def test_node_wide_info() -> None:
    obj = node(
        "foo1",
        conditions=[READY],
        nodeInfo={
            "kubeletVersion": "v1.32.4",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "kernelVersion": "6.1.0-28-amd64",
            "containerRuntimeVersion": "crun://1.19",
        },
    )
    obj["metadata"]["creationTimestamp"] = ago(4 * 86400 + 3600)
    assert core.node_cells(obj, NOW) == [
        "foo1", "Ready", "<none>", "4d1h", "v1.32.4", "<none>", "<none>",
        "Debian GNU/Linux 12 (bookworm)", "6.1.0-28-amd64", "crun://1.19",
    ]  # fmt: skip
    assert core.node_cells(node("foo2", nodeInfo={"kernelVersion": "k"}), NOW)[7:] == [
        "<unknown>", "k", "<unknown>",
    ]  # fmt: skip


# -- Service (TestPrintServiceLoadBalancer and more) ---------------------------


def service(name: str, type_: str, *, ports: list[dict[str, Any]] | None = None,
            ingress: list[dict[str, str]] | None = None, **spec: Any) -> dict[str, Any]:  # fmt: skip
    obj: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {"type": type_, "ports": ports or [], **spec},
        "status": {},
    }
    if ingress is not None:
        obj["status"]["loadBalancer"] = {"ingress": ingress}
    return obj


TCP80 = {"port": 80, "protocol": "TCP"}
THREE_PORTS = [TCP80, {"port": 8090, "protocol": "UDP"}, {"port": 8000, "protocol": "TCP"}]


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (
            service("service1", "LoadBalancer", clusterIPs=["1.2.3.4"], ports=[TCP80],
                    ingress=[{"ip": "2.3.4.5"}, {"ip": "3.4.5.6"}]),
            ["service1", "LoadBalancer", "1.2.3.4", "2.3.4.5,3.4.5.6", "80/TCP", "<unknown>", "<none>"],
        ),
        (
            service("service2", "LoadBalancer", clusterIPs=["1.3.4.5"],
                    ports=[*THREE_PORTS, {"port": 7777, "protocol": "SCTP"}]),
            ["service2", "LoadBalancer", "1.3.4.5", "<pending>", "80/TCP,8090/UDP,8000/TCP,7777/SCTP",
             "<unknown>", "<none>"],
        ),
        (
            service("service3", "LoadBalancer", clusterIPs=["1.4.5.6"], ports=THREE_PORTS,
                    ingress=[{"ip": "2.3.4.5"}]),
            ["service3", "LoadBalancer", "1.4.5.6", "2.3.4.5", "80/TCP,8090/UDP,8000/TCP", "<unknown>",
             "<none>"],
        ),
        (
            # the server prints wide: long lists are not clipped
            service("service4", "LoadBalancer", clusterIPs=["1.5.6.7"], ports=THREE_PORTS,
                    selector={"foo": "bar"},
                    ingress=[{"ip": "2.3.4.5"}, {"ip": "3.4.5.6"}, {"ip": "5.6.7.8", "hostname": "host5678"}]),
            ["service4", "LoadBalancer", "1.5.6.7", "2.3.4.5,3.4.5.6,5.6.7.8", "80/TCP,8090/UDP,8000/TCP",
             "<unknown>", "foo=bar"],
        ),
        (
            service("svc", "LoadBalancer", clusterIPs=["10.43.0.9"], externalIPs=["9.9.9.9"],
                    ingress=[{"hostname": "lb.example.com"}, {"ip": "1.1.1.1"}]),
            ["svc", "LoadBalancer", "10.43.0.9", "1.1.1.1,lb.example.com,9.9.9.9", "<none>", "<unknown>",
             "<none>"],
        ),
        (
            service("web", "NodePort", clusterIPs=["10.43.0.10"],
                    ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080},
                           {"port": 443, "protocol": "TCP", "nodePort": 30443}],
                    selector={"app": "web", "tier": "a"}),
            ["web", "NodePort", "10.43.0.10", "<none>", "80:30080/TCP,443:30443/TCP", "<unknown>",
             "app=web,tier=a"],
        ),
        (
            service("kubernetes", "ClusterIP", clusterIP="10.43.0.1", clusterIPs=["10.43.0.1"],
                    ports=[{"port": 443, "protocol": "TCP", "targetPort": 6443}]),
            ["kubernetes", "ClusterIP", "10.43.0.1", "<none>", "443/TCP", "<unknown>", "<none>"],
        ),
        (
            service("ext", "ClusterIP", clusterIPs=["10.43.0.2"], externalIPs=["8.8.8.8", "8.8.4.4"]),
            ["ext", "ClusterIP", "10.43.0.2", "8.8.8.8,8.8.4.4", "<none>", "<unknown>", "<none>"],
        ),
        (
            service("db", "ExternalName", externalName="db.example.com"),
            ["db", "ExternalName", "<none>", "db.example.com", "<none>", "<unknown>", "<none>"],
        ),
        (
            service("headless", "ClusterIP", clusterIP="None", clusterIPs=["None"],
                    ports=[{"port": 5432}]),
            ["headless", "ClusterIP", "None", "<none>", "5432/", "<unknown>", "<none>"],
        ),
        (
            # conversion fills clusterIPs from clusterIP
            service("old", "ClusterIP", clusterIP="10.43.0.3"),
            ["old", "ClusterIP", "10.43.0.3", "<none>", "<none>", "<unknown>", "<none>"],
        ),
        (
            service("odd", ""),
            ["odd", "", "<none>", "<unknown>", "<none>", "<unknown>", "<none>"],
        ),
    ],
)  # fmt: skip
def test_service(obj: dict[str, Any], want: list[Any]) -> None:
    assert core.service_cells(obj, NOW) == want


# -- Endpoints ------------------------------------------------------------------


def subset(ips: list[str], ports: list[int]) -> dict[str, Any]:
    return {"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": p} for p in ports]}


@pytest.mark.parametrize(
    ("subsets", "want"),
    [
        ([], "<none>"),
        ([subset(["10.42.0.5"], [80])], "10.42.0.5:80"),
        ([subset(["10.42.0.5", "10.42.0.6"], [80])], "10.42.0.5:80,10.42.0.6:80"),
        (
            [subset(["1.1.1.1", "2.2.2.2"], [80, 443])],
            "1.1.1.1:80,2.2.2.2:80,1.1.1.1:443 + 1 more...",
        ),
        (
            [
                subset(["10.42.0.5", "10.42.0.6"], [80]),
                subset([f"10.42.1.{i}" for i in range(4)], [80]),
            ],
            "10.42.0.5:80,10.42.0.6:80,10.42.1.0:80 + 3 more...",
        ),
        ([subset(["1.1.1.1", "2.2.2.2", "3.3.3.3"], [80])], "1.1.1.1:80,2.2.2.2:80,3.3.3.3:80"),
        ([subset(["fd00::5"], [8080])], "[fd00::5]:8080"),
        # headless services without ports list bare addresses
        (
            [subset(["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"], [])],
            "1.1.1.1,2.2.2.2,3.3.3.3 + 1 more...",
        ),
        ([{"notReadyAddresses": [{"ip": "1.1.1.1"}], "ports": [{"port": 80}]}], ""),
    ],
)
def test_endpoints(subsets: list[dict[str, Any]], want: str) -> None:
    obj = {"metadata": {"name": "ep", "creationTimestamp": ago(90)}, "subsets": subsets}
    assert core.endpoints_cells(obj, NOW) == ["ep", want, "90s"]


# -- Namespace, Secret, ServiceAccount, ConfigMap ---------------------------------

FUTURE = ago(-1.9)  # upstream's tests create objects 1.9s in the future: "0s"


def test_namespace() -> None:
    obj = {
        "metadata": {"name": "namespace1", "creationTimestamp": FUTURE},
        "status": {"phase": "FooStatus"},
    }
    assert core.namespace_cells(obj, NOW) == ["namespace1", "FooStatus", "0s"]
    assert core.namespace_cells({"metadata": {"name": "namespace2"}}, NOW) == [
        "namespace2",
        "",
        "<unknown>",
    ]


def test_secret() -> None:
    meta = {"name": "secret1", "creationTimestamp": FUTURE}
    obj = {
        "metadata": meta,
        "type": "kubernetes.io/service-account-token",
        "data": {"token": "c2VjcmV0"},
    }
    assert core.secret_cells(obj, NOW) == [
        "secret1",
        "kubernetes.io/service-account-token",
        1,
        "0s",
    ]
    obj = {"metadata": meta, "type": "kubernetes.io/service-account-token"}
    assert core.secret_cells(obj, NOW) == [
        "secret1",
        "kubernetes.io/service-account-token",
        0,
        "0s",
    ]
    obj = {
        "metadata": meta,
        "type": "Opaque",
        "data": {"a": "", "b": ""},
        "stringData": {"b": "", "c": ""},
    }
    assert core.secret_cells(obj, NOW)[2] == 3


def test_service_account() -> None:
    meta = {"name": "sa1", "creationTimestamp": FUTURE}
    assert core.service_account_cells({"metadata": meta, "secrets": []}, NOW) == ["sa1", 0, "0s"]
    obj = {"metadata": meta, "secrets": [{"name": "Secret1"}, {"name": "Secret2"}]}
    assert core.service_account_cells(obj, NOW) == ["sa1", 2, "0s"]


def test_configmap() -> None:
    obj = {"metadata": {"name": "cm", "creationTimestamp": ago(700)}, "data": {"a": "1", "b": "2"},
           "binaryData": {"c": "AA=="}}  # fmt: skip
    assert core.configmap_cells(obj, NOW) == ["cm", 3, "11m"]
    assert core.configmap_cells({"metadata": {"name": "empty"}}, NOW) == ["empty", 0, "<unknown>"]


# -- PersistentVolume, PersistentVolumeClaim (TestPrintPersistentVolume*) -------

CLAIM = {"name": "test", "namespace": "default"}


def pv(name: str, phase: str, modes: list[str], size: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"claimRef": CLAIM, "accessModes": modes, "capacity": {"storage": size}, **spec},
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (pv("test1", "Bound", ["ReadOnlyMany"], "4Gi"),
         ["test1", "4Gi", "ROX", "", "Bound", "default/test", "", "<unset>", "", "<unknown>", "<unset>"]),
        (pv("test2", "Failed", ["ReadOnlyMany"], "4Gi"),
         ["test2", "4Gi", "ROX", "", "Failed", "default/test", "", "<unset>", "", "<unknown>", "<unset>"]),
        (pv("test3", "Pending", ["ReadWriteMany"], "10Gi"),
         ["test3", "10Gi", "RWX", "", "Pending", "default/test", "", "<unset>", "", "<unknown>", "<unset>"]),
        (pv("test4", "Pending", ["ReadWriteOnce"], "10Gi", storageClassName="my-scn"),
         ["test4", "10Gi", "RWO", "", "Pending", "default/test", "my-scn", "<unset>", "", "<unknown>",
          "<unset>"]),
        (pv("test4", "Pending", ["ReadWriteOnce"], "10Gi", storageClassName="my-scn",
            volumeAttributesClassName="my-vacn"),
         ["test4", "10Gi", "RWO", "", "Pending", "default/test", "my-scn", "my-vacn", "", "<unknown>",
          "<unset>"]),
        (pv("test5", "Available", ["ReadWriteOnce"], "10Gi", storageClassName="my-scn"),
         ["test5", "10Gi", "RWO", "", "Available", "default/test", "my-scn", "<unset>", "", "<unknown>",
          "<unset>"]),
        (pv("test6", "Released", ["ReadWriteOnce"], "10Gi", storageClassName="my-scn"),
         ["test6", "10Gi", "RWO", "", "Released", "default/test", "my-scn", "<unset>", "", "<unknown>",
          "<unset>"]),
        (pv("local", "Bound", ["ReadWriteOncePod", "ReadWriteOnce", "ReadWriteOnce"], "1Gi",
            persistentVolumeReclaimPolicy="Delete", volumeMode="Filesystem"),
         ["local", "1Gi", "RWO,RWOP", "Delete", "Bound", "default/test", "", "<unset>", "", "<unknown>",
          "Filesystem"]),
    ],
)  # fmt: skip
def test_persistent_volume(obj: dict[str, Any], want: list[Any]) -> None:
    assert core.pv_cells(obj, NOW) == want


def test_capacity_is_canonical() -> None:
    assert core.pv_cells(pv("v", "Bound", [], "1.5Gi"), NOW)[1] == "1536Mi"
    claim = pvc("c", "Bound", volume="v", size="0.5Gi")
    assert core.pvc_cells(claim, NOW)[3] == "512Mi"


def test_persistent_volume_terminating_reason_and_class_annotation() -> None:
    obj = pv("gone", "Released", [], "0", storageClassName="fast")
    obj["metadata"]["deletionTimestamp"] = ago(5)
    obj["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "old"}
    obj["status"]["reason"] = "Recycled"
    del obj["spec"]["claimRef"]
    del obj["spec"]["capacity"]
    cells = core.pv_cells(obj, NOW)
    assert cells[1:9] == ["0", "", "", "Terminating", "", "old", "<unset>", "Recycled"]


def pvc(name: str, phase: str, *, volume: str = "", modes: list[str] | None = None, size: str = "",
        **spec: Any) -> dict[str, Any]:  # fmt: skip
    obj: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": dict(spec),
        "status": {"phase": phase},
    }
    if volume:
        obj["spec"]["volumeName"] = volume
    if modes is not None:
        obj["status"]["accessModes"] = modes
    if size:
        obj["status"]["capacity"] = {"storage": size}
    return obj


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (pvc("test1", "Bound", volume="my-volume", modes=["ReadOnlyMany"], size="4Gi", volumeMode="Filesystem"),
         ["test1", "Bound", "my-volume", "4Gi", "ROX", "", "<unset>", "<unknown>", "Filesystem"]),
        (pvc("test2", "Lost", modes=["ReadOnlyMany"], size="4Gi", volumeMode="Filesystem"),
         ["test2", "Lost", "", "", "", "", "<unset>", "<unknown>", "Filesystem"]),
        (pvc("test3", "Pending", volume="my-volume", modes=["ReadWriteMany"], size="10Gi",
             volumeMode="Filesystem"),
         ["test3", "Pending", "my-volume", "10Gi", "RWX", "", "<unset>", "<unknown>", "Filesystem"]),
        (pvc("test4", "Pending", volume="my-volume", modes=["ReadWriteOnce"], size="10Gi",
             storageClassName="my-scn", volumeMode="Filesystem"),
         ["test4", "Pending", "my-volume", "10Gi", "RWO", "my-scn", "<unset>", "<unknown>", "Filesystem"]),
        (pvc("test5", "Pending", volume="my-volume", modes=["ReadWriteOnce"], size="10Gi",
             storageClassName="my-scn"),
         ["test5", "Pending", "my-volume", "10Gi", "RWO", "my-scn", "<unset>", "<unknown>", "<unset>"]),
        (pvc("test5", "Pending", volume="my-volume", modes=["ReadWriteOnce"], size="10Gi",
             storageClassName="my-scn", volumeAttributesClassName="my-vacn"),
         ["test5", "Pending", "my-volume", "10Gi", "RWO", "my-scn", "my-vacn", "<unknown>", "<unset>"]),
        # bound to a volume whose capacity is not reported yet
        (pvc("test6", "Bound", volume="v"),
         ["test6", "Bound", "v", "0", "", "", "<unset>", "<unknown>", "<unset>"]),
    ],
)  # fmt: skip
def test_persistent_volume_claim(obj: dict[str, Any], want: list[Any]) -> None:
    assert core.pvc_cells(obj, NOW) == want


def test_persistent_volume_claim_terminating() -> None:
    obj = pvc(
        "data", "Bound", volume="pv-1", modes=["ReadWriteOnce"], size="1Gi", storageClassName="x"
    )
    obj["metadata"]["deletionTimestamp"] = ago(1)
    obj["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "annotated"}
    assert core.pvc_cells(obj, NOW)[:6] == [
        "data",
        "Terminating",
        "pv-1",
        "1Gi",
        "RWO",
        "annotated",
    ]
