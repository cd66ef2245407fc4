"""Service allocation on create and update: node ports, their range and conflicts,
type changes, health-check node ports — answered and worded as upstream."""

from __future__ import annotations

from typing import Any

from tests.conftest import API


def svc(name: str, **spec: Any) -> dict[str, Any]:
    ports = spec.pop("ports", [{"port": 80, "targetPort": 8080}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": ports, **spec}}  # fmt: skip


def create(api: API, ns: str, body: dict[str, Any]) -> tuple[int, Any]:
    return api.json("POST", f"/api/v1/namespaces/{ns}/services", body)


def patch(api: API, ns: str, name: str, body: dict[str, Any]) -> tuple[int, Any]:
    return api.json(
        "PATCH",
        f"/api/v1/namespaces/{ns}/services/{name}",
        body,
        content_type="application/merge-patch+json",
    )


def test_node_port_outside_the_range_is_invalid(api: API, namespace: str) -> None:
    code, body = create(
        api, namespace, svc("low", type="NodePort", ports=[{"port": 80, "nodePort": 80}])
    )
    assert code == 422, body
    assert body["reason"] == "Invalid"
    assert body["message"] == (
        'Service "low" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is '
        "not in the valid range. The range of valid ports is 30000-32767"
    )
    assert body["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"


def test_node_port_in_use_is_refused_and_freed_by_a_type_change(api: API, namespace: str) -> None:
    code, first = create(
        api,
        namespace,
        svc(
            "first",
            type="NodePort",
            ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}],
        ),
    )
    assert code == 201, first
    taken = first["spec"]["ports"][1]["nodePort"]
    assert 30000 <= taken <= 32767
    code, body = create(
        api,
        namespace,
        svc("second", type="NodePort", ports=[{"port": 80, "nodePort": taken}]),
    )
    assert code == 422
    assert body["message"] == (
        f'Service "second" is invalid: spec.ports[0].nodePort: Invalid value: {taken}: '
        "provided port is already allocated"
    )
    # NodePort -> ClusterIP drops the node ports (the client left them as they were) ...
    code, back = patch(api, namespace, "first", {"spec": {"type": "ClusterIP"}})
    assert code == 200, back
    assert all("nodePort" not in p for p in back["spec"]["ports"])
    assert "externalTrafficPolicy" not in back["spec"]
    assert back["spec"]["clusterIP"] == first["spec"]["clusterIP"]
    # ... and frees them for others.
    code, body = create(
        api, namespace, svc("second", type="NodePort", ports=[{"port": 80, "nodePort": taken}])
    )
    assert code == 201, body
    # ClusterIP -> NodePort allocates again, in the range, not the one now taken.
    code, again = patch(api, namespace, "first", {"spec": {"type": "NodePort"}})
    assert code == 200, again
    ports = [p["nodePort"] for p in again["spec"]["ports"]]
    assert all(30000 <= p <= 32767 for p in ports) and taken not in ports
    assert again["spec"]["externalTrafficPolicy"] == "Cluster"
    # A client changing the type *and* keeping a node port is told, as upstream.
    code, body = api.json(
        "PUT",
        f"/api/v1/namespaces/{namespace}/services/first",
        {**again, "spec": {**again["spec"], "type": "ClusterIP", "ports": [
            {**again["spec"]["ports"][0], "nodePort": 31999}, again["spec"]["ports"][1]]}},
    )  # fmt: skip
    assert code == 422
    assert (
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        in (body["message"])
    )


def test_ports_of_one_number_share_a_node_port(api: API, namespace: str) -> None:
    code, body = create(
        api,
        namespace,
        svc(
            "dns",
            type="NodePort",
            ports=[
                {"name": "udp", "port": 53, "protocol": "UDP"},
                {"name": "tcp", "port": 53, "protocol": "TCP"},
            ],
        ),
    )
    assert code == 201, body
    a, b = (p["nodePort"] for p in body["spec"]["ports"])
    assert a == b


def test_load_balancer_local_gets_a_health_check_node_port(api: API, namespace: str) -> None:
    code, body = create(
        api, namespace, svc("lb", type="LoadBalancer", externalTrafficPolicy="Local")
    )
    assert code == 201, body
    health = body["spec"]["healthCheckNodePort"]
    assert 30000 <= health <= 32767 and health != body["spec"]["ports"][0]["nodePort"]
    code, body = patch(api, namespace, "lb", {"spec": {"externalTrafficPolicy": "Cluster"}})
    assert code == 200, body
    assert "healthCheckNodePort" not in body["spec"]
    code, body = create(
        api,
        namespace,
        svc("lb2", type="LoadBalancer", allocateLoadBalancerNodePorts=False),
    )
    assert code == 201, body
    assert "nodePort" not in body["spec"]["ports"][0]


def test_external_name_round_trip_allocates_a_cluster_ip(api: API, namespace: str) -> None:
    code, body = create(
        api,
        namespace,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
         "spec": {"type": "ExternalName", "externalName": "example.com"}},
    )  # fmt: skip
    assert code == 201, body
    assert "clusterIP" not in body["spec"]
    code, body = patch(
        api,
        namespace,
        "ext",
        {"spec": {"type": "ClusterIP", "externalName": None, "ports": [{"port": 80}]}},
    )
    assert code == 200, body
    assert body["spec"]["clusterIP"].startswith("10.43.")
    code, body = patch(
        api, namespace, "ext", {"spec": {"type": "ExternalName", "externalName": "example.org"}}
    )
    assert code == 200, body
    assert "clusterIP" not in body["spec"] and "clusterIPs" not in body["spec"]
