"""Service ports, endpoint categories and the rules one Service port renders to."""

from __future__ import annotations

from typing import Any

from pilothouse.proxy import model, rules

CFG = rules.Config(node_name="n1")


def service(**spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {})
    return {
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {
            "clusterIP": "10.43.0.20",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            **spec,
        },
    }


def slice_(*endpoints: dict[str, Any], port: int = 8080, name: str = "http") -> dict[str, Any]:
    return {
        "addressType": "IPv4",
        "ports": [{"name": name, "port": port, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def ep(ip: str, *, node: str = "n1", **conditions: bool) -> dict[str, Any]:
    return {
        "addresses": [ip],
        "nodeName": node,
        "conditions": {"ready": True, "serving": True, "terminating": False, **conditions},
    }


def test_skipped_services() -> None:
    assert model.service_ports(service()) != []
    assert model.service_ports(service(clusterIP="None")) == []
    assert model.service_ports(service(type="ExternalName", externalName="x.example")) == []
    dns = service(labels={model.PROXY_NAME_LABEL: "pilothouse-dns"})
    assert model.service_ports(dns) == []


def test_endpoints_match_port_name_and_protocol_and_ready_defaults() -> None:
    sp = model.service_ports(service())[0]
    slices = [
        slice_(ep("10.42.0.5"), {"addresses": ["10.42.0.6"]}),
        slice_(ep("10.42.0.7"), name="other"),
        {**slice_(ep("fd00::1")), "addressType": "IPv6"},
    ]
    eps = model.endpoints_for(sp, slices)
    assert [e.address for e in eps] == ["10.42.0.5:8080", "10.42.0.6:8080"]
    assert eps[1].ready and eps[1].serving and not eps[1].terminating


def test_terminating_endpoints_are_used_only_when_none_is_ready() -> None:
    sp = model.service_ports(service())[0]
    eps = model.endpoints_for(
        sp,
        [slice_(ep("10.42.0.5", ready=False, terminating=True), ep("10.42.0.6", ready=False,
                serving=False))],
    )  # fmt: skip
    cat = model.categorize(sp, eps, "n1")
    assert [e.ip for e in cat.cluster] == ["10.42.0.5"] and cat.has_any
    eps.append(model.Endpoint("10.42.0.9", 8080, "n2"))
    cat = model.categorize(sp, eps, "n1")
    assert [e.ip for e in cat.cluster] == ["10.42.0.9"]


def test_local_policies_pick_local_endpoints() -> None:
    sp = model.service_ports(
        service(type="NodePort", externalTrafficPolicy="Local", ports=[
            {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    )[0]  # fmt: skip
    eps = [model.Endpoint("10.42.0.5", 8080, "n1"), model.Endpoint("10.42.1.5", 8080, "n2")]
    cat = model.categorize(sp, eps, "n1")
    assert [e.ip for e in cat.local] == ["10.42.0.5"]
    assert len(cat.cluster) == 2 and len(cat.reachable) == 2
    cat = model.categorize(sp, eps, "n3")
    assert cat.local == () and cat.has_any


def test_cluster_ip_rules() -> None:
    sp = model.service_ports(service())[0]
    eps = [model.Endpoint("10.42.0.5", 8080), model.Endpoint("10.42.0.6", 8080)]
    r = rules.render(sp, model.categorize(sp, eps, "n1"), CFG)
    chain = "service-" + rules.chain_base(sp)
    assert chain.startswith("service-") and chain.endswith("-default/web/tcp/http")
    assert r.elements[(rules.SERVICE_IPS, "10.43.0.20 . tcp . 80")] == f"goto {chain}"
    assert (rules.CLUSTER_IPS, "10.43.0.20") in r.elements
    assert r.elements[(rules.HAIRPIN, "10.42.0.5 . 10.42.0.5")] == ""
    assert r.chains[chain] == (
        "ip daddr 10.43.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade",
        "meta l4proto tcp dnat ip to numgen random mod 2 map "
        "{ 0 : 10.42.0.5 . 8080, 1 : 10.42.0.6 . 8080 }",
    )
    one = rules.render(sp, model.categorize(sp, eps[:1], "n1"), CFG)
    assert one.chains[chain][-1] == "meta l4proto tcp dnat ip to 10.42.0.5:8080"


def test_no_endpoints_reject_and_local_without_local_endpoints_drop() -> None:
    sp = model.service_ports(service())[0]
    r = rules.render(sp, model.categorize(sp, [], "n1"), CFG)
    assert r.elements[(rules.NO_ENDPOINT_SERVICES, "10.43.0.20 . tcp . 80")] == rules.REJECT
    assert not r.chains and (rules.SERVICE_IPS, "10.43.0.20 . tcp . 80") not in r.elements
    sp = model.service_ports(service(internalTrafficPolicy="Local"))[0]
    remote = [model.Endpoint("10.42.1.5", 8080, "n2")]
    r = rules.render(sp, model.categorize(sp, remote, "n1"), CFG)
    assert r.elements[(rules.NO_ENDPOINT_SERVICES, "10.43.0.20 . tcp . 80")] == "drop"


def test_node_port_load_balancer_and_affinity_rules() -> None:
    svc = service(
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
        loadBalancerSourceRanges=["192.0.2.0/24"],
        ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}],
    )
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}]}}
    sp = model.service_ports(svc)[0]
    eps = [model.Endpoint("10.42.0.5", 8080, "n1"), model.Endpoint("10.42.1.5", 8080, "n2")]
    r = rules.render(sp, model.categorize(sp, eps, "n1"), CFG)
    base = rules.chain_base(sp)
    assert r.elements[(rules.SERVICE_NODEPORTS, "tcp . 30080")] == f"goto external-{base}"
    assert r.elements[(rules.SERVICE_IPS, "192.0.2.10 . tcp . 80")] == f"goto external-{base}"
    assert r.elements[(rules.FIREWALL_IPS, "192.0.2.10 . tcp . 80")] == f"goto firewall-{base}"
    assert r.chains[f"firewall-{base}"] == ("ip saddr != { 192.0.2.0/24 } drop",)
    assert r.chains[f"external-{base}"] == (
        f"ip saddr 10.42.0.0/16 goto service-{base}",
        "fib saddr type local jump mark-for-masquerade",
        f"fib saddr type local goto service-{base}",
        f"goto local-{base}",
    )
    # ClientIP affinity: one chain and one timed set per endpoint, as upstream.
    assert len(r.affinity_sets) == 2 and set(r.affinity_sets.values()) == {60}
    local = r.chains[f"local-{base}"]
    assert local[0].startswith("ip saddr @affinity-") and "goto endpoint-" in local[0]
    assert local[-1] == f"numgen random mod 1 vmap {{ 0 : goto {local[0].split()[-1]} }}"
    ep_chain = r.chains[local[0].split()[-1]]
    assert ep_chain[0].startswith("update @affinity-") and ep_chain[1].endswith("10.42.0.5:8080")
    # A port this node cannot serve for the load balancer is left out.
    blocked = rules.render(sp, model.categorize(sp, eps, "n1"), CFG, serve_lb_ips=())
    assert (rules.SERVICE_IPS, "192.0.2.10 . tcp . 80") not in blocked.elements


def test_skeleton_exempts_local_addresses_from_the_service_range_drop() -> None:
    lines = rules.skeleton(CFG)
    check = [ln for ln in lines if " cluster-ips-check " in ln and ln.startswith("add rule")]
    assert check == [
        "add rule ip pilothouse-proxy cluster-ips-check ip daddr @cluster-ips goto reject-chain",
        "add rule ip pilothouse-proxy cluster-ips-check fib daddr type local return",
        "add rule ip pilothouse-proxy cluster-ips-check ip daddr 10.43.0.0/16 drop",
    ]
    no_localhost = rules.skeleton(rules.Config(node_name="n1", localhost_nodeports=False))
    assert any("ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap" in ln for ln in no_localhost)
