"""A cluster as DNS sees it, fed through the informer handlers the agent uses.

The objects follow CoreDNS's own kubernetes-plugin test data (namespace
``testns``: a ClusterIP Service, one without endpoints, an IPv6 one, a
dual-stack one, headless ones with and without ports, ExternalName Services to
an outside name and to an in-cluster one), so the expected answers can be read
against the plugin's.
"""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.dns import records as recs

Obj = dict[str, Any]


def service(name: str, ns: str = "testns", *, ips: list[str] | None = None, **spec: Any) -> Obj:
    ips = ips if ips is not None else ["10.0.0.1"]
    body: Obj = {"type": "ClusterIP", **spec}
    if ips:
        body.setdefault("clusterIP", ips[0])
        body.setdefault("clusterIPs", ips)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": body,
    }


def port(name: str, number: int, protocol: str = "TCP") -> Obj:
    return {"name": name, "port": number, "protocol": protocol}


def endpoint(ip: str, *, ready: bool | None = True, hostname: str = "", pod: str = "") -> Obj:
    ep: Obj = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
    if hostname:
        ep["hostname"] = hostname
    if pod:
        ep["targetRef"] = {"kind": "Pod", "namespace": "testns", "name": pod}
    return ep


def endpoint_slice(
    name: str,
    svc: str,
    endpoints: list[Obj],
    *,
    ns: str = "testns",
    ports: list[Obj] | None = None,
    address_type: str = "IPv4",
) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": ns,
            "name": name,
            "labels": {recs.SERVICE_NAME_LABEL: svc},
        },
        "addressType": address_type,
        "ports": ports if ports is not None else [port("http", 80)],
        "endpoints": endpoints,
    }


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def fill(r: recs.ClusterRecords) -> None:
    for ns in ("testns", "kube-system", "default"):
        r.on_namespace(namespace(ns))
    http = [port("http", 80)]
    r.on_service(service("svc1", ports=http))
    r.on_slice(endpoint_slice("svc1-a", "svc1", [endpoint("172.0.0.1", hostname="ep1a")]))
    r.on_service(service("svcempty", ports=http))
    r.on_slice(endpoint_slice("svcempty-a", "svcempty", []))
    r.on_service(service("svc6", ips=["1234:abcd::1"], ports=http))
    r.on_service(service("svc-dual-stack", ips=["10.0.0.3", "10::3"], ports=http))
    r.on_service(service("hdls1", ips=["None"], ports=http))
    r.on_slice(
        endpoint_slice(
            "hdls1-v4",
            "hdls1",
            [
                endpoint("172.0.0.2", pod="hdls1-pod-a"),
                endpoint("172.0.0.3"),
                endpoint("172.0.0.4", hostname="dup-name"),
                endpoint("172.0.0.5", hostname="dup-name"),
                endpoint("172.0.0.9", ready=False),  # not ready: not in DNS
            ],
        )
    )
    r.on_slice(
        endpoint_slice(
            "hdls1-v6",
            "hdls1",
            [endpoint("5678:abcd::1"), endpoint("5678:abcd::2", ready=None)],
            address_type="IPv6",
        )
    )
    r.on_service(service("hdlsprtls", ips=["None"]))
    r.on_slice(endpoint_slice("hdlsprtls-a", "hdlsprtls", [endpoint("172.0.0.20")], ports=[]))
    r.on_service(service("hdlsempty", ips=["None"], ports=http))
    r.on_service(
        service(
            "external", ips=[], type="ExternalName", externalName="ext.interwebs.test", ports=http
        )
    )
    r.on_service(
        service(
            "external-to-service",
            ips=[],
            type="ExternalName",
            externalName="svc1.testns.svc.cluster.local.",
            ports=http,
        )
    )
    r.on_service(service("external-ip", ips=[], type="ExternalName", externalName="1.2.3.4"))
    r.on_service(
        service(
            "kube-dns",
            "kube-system",
            ips=["10.43.0.10"],
            ports=[port("dns", 53, "UDP"), port("dns-tcp", 53, "TCP")],
        )
    )


@pytest.fixture
def records() -> recs.ClusterRecords:
    r = recs.ClusterRecords(clock=lambda: 1499347823.0)
    fill(r)
    r.track_synced(lambda: True)
    return r
