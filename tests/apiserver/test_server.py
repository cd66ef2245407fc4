"""Objects the API server makes at start-up (as upstream's bootstrap controllers do)."""

from __future__ import annotations

from pathlib import Path

from pilothouse import testing
from pilothouse.apiserver import server as apiserver


def test_kube_dns_service_is_made_for_discovery(api_server: testing.ServerThread) -> None:
    store = api_server.server.resource_store("", "v1", "services")
    entry = api_server.call(store.current("kube-system", "kube-dns"))
    assert entry is not None
    svc = entry.obj
    assert svc["spec"]["clusterIP"] == "10.43.0.10"
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
        ("metrics", 9153, "TCP"),
    ]
    labels = svc["metadata"]["labels"]
    # kube-proxies leave it alone: the address is local on every node.
    assert labels["service.kubernetes.io/service-proxy-name"] == "pilothouse-dns"
    assert labels["k8s-app"] == "kube-dns"
    assert "selector" not in svc["spec"]  # no pods back it


def test_kube_dns_follows_the_configured_address_and_can_be_left_out(tmp_path: Path) -> None:
    with testing.server_thread(tmp_path / "a", cluster_dns="10.43.0.53") as srv:
        store = srv.server.resource_store("", "v1", "services")
        entry = srv.call(store.current("kube-system", "kube-dns"))
        assert entry is not None and entry.obj["spec"]["clusterIP"] == "10.43.0.53"
    with testing.server_thread(tmp_path / "b", cluster_dns="") as srv:
        store = srv.server.resource_store("", "v1", "services")
        assert srv.call(store.current("kube-system", "kube-dns")) is None
    assert apiserver.kube_dns_service("10.43.0.10")["metadata"]["name"] == "kube-dns"
