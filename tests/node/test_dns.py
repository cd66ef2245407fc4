"""Pods' resolv.conf and hostnames as the kubelet makes them (dnsPolicy, dnsConfig, limits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from pilothouse.client import events
from pilothouse.node import dns as node_dns
from pilothouse.node.runtime import protocol

HOST = "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example lab.example\noptions edns0 timeout:2\n"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []  # kind, type, reason, message

    def event(self, obj: dict[str, Any], type: str, reason: str, message: str, **_: Any) -> None:
        self.events.append((obj.get("kind", "Pod"), type, reason, message))


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
        "spec": {"containers": [{"name": "c"}], **spec},
    }


@pytest.fixture
def host(tmp_path: Path) -> Path:
    path = tmp_path / "resolv.conf"
    path.write_text(HOST)
    return path


def configurer(host: Path | None, **settings: Any) -> tuple[node_dns.Configurer, Recorder]:
    rec = Recorder()
    c = node_dns.Configurer(
        node_dns.Settings(resolv_conf=host, **settings),
        recorder=cast(events.EventRecorder, rec),
        node_name="n1",
    )
    return c, rec


def test_cluster_first(host: Path) -> None:
    c, rec = configurer(host)
    assert c.pod_dns(pod()) == protocol.DNSConfig(
        ("10.43.0.10",),
        (
            "shop.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
            "corp.example",
            "lab.example",
        ),
        ("ndots:5",),
    )
    assert rec.events == []
    # On the host network, ClusterFirst means Default; ClusterFirstWithHostNet does not.
    assert c.pod_dns(pod(hostNetwork=True)).servers == ("192.0.2.53", "192.0.2.54")
    assert c.pod_dns(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")).servers == (
        "10.43.0.10",
    )


def test_default_is_the_nodes_resolv_conf(host: Path) -> None:
    c, _ = configurer(host)
    assert c.pod_dns(pod(dnsPolicy="Default")) == protocol.DNSConfig(
        ("192.0.2.53", "192.0.2.54"), ("corp.example", "lab.example"), ("edns0", "timeout:2")
    )
    # --resolv-conf="": the node's loopback and no search, by the book.
    c, _ = configurer(None)
    assert c.pod_dns(pod(dnsPolicy="Default")) == protocol.DNSConfig(("127.0.0.1",), (".",), ())


def test_none_uses_only_dns_config(host: Path) -> None:
    c, _ = configurer(host)
    spec = {
        "dnsPolicy": "None",
        "dnsConfig": {
            "nameservers": ["1.1.1.1"],
            "searches": ["a.b"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        },
    }
    assert c.pod_dns(pod(**spec)) == protocol.DNSConfig(
        ("1.1.1.1",), ("a.b",), ("ndots:2", "edns0")
    )


def test_dns_config_is_appended_and_merged(host: Path) -> None:
    c, _ = configurer(host)
    cfg = {
        "nameservers": ["10.43.0.10", "192.0.2.99"],
        "searches": ["svc.cluster.local", "x.y"],
        "options": [
            {"name": "ndots", "value": "1"},
            {"name": "single-request-reopen"},
            {"name": "timeout", "value": ""},
        ],
    }
    got = c.pod_dns(pod(dnsConfig=cfg))
    assert got.servers == ("10.43.0.10", "192.0.2.99")  # no duplicates
    assert got.searches[-1] == "x.y" and got.searches.count("svc.cluster.local") == 1
    assert got.options == ("ndots:1", "single-request-reopen", "timeout")  # the pod's value wins


def test_limits_are_applied_and_reported(host: Path) -> None:
    c, rec = configurer(host)
    got = c.pod_dns(pod(dnsPolicy="Default", dnsConfig={"nameservers": ["1.1.1.1", "8.8.8.8"]}))
    assert got.servers == ("192.0.2.53", "192.0.2.54", "1.1.1.1")
    assert rec.events[-1] == (
        "Pod",
        events.WARNING,
        "DNSConfigForming",
        "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
        "nameserver line is: 192.0.2.53 192.0.2.54 1.1.1.1",
    )
    many = [f"d{i}.example" for i in range(40)]
    got = c.pod_dns(pod(dnsConfig={"searches": many}))
    assert len(got.searches) == 32
    assert rec.events[-1][2] == "DNSConfigForming"
    assert rec.events[-1][3].startswith(
        "Search Line limits were exceeded, some search paths have "
        "been omitted, the applied search line is: shop.svc"
    )
    long = ["x" * 250 + f".{i}" for i in range(10)]  # 10 x 253 > 2048 characters
    got = c.pod_dns(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": long}))
    assert len(" ".join(got.searches)) <= 2048 and len(got.searches) == 8
    too_long = "y" * 254
    got = c.pod_dns(
        pod(
            dnsPolicy="None",
            dnsConfig={"nameservers": ["1.1.1.1"], "searches": [too_long, "ok.example"]},
        )
    )
    assert got.searches == ("ok.example",)


def test_missing_cluster_dns_falls_back_to_default(host: Path) -> None:
    c, rec = configurer(host, cluster_dns=())
    assert c.pod_dns(pod()).servers == ("192.0.2.53", "192.0.2.54")
    message = (
        "kubelet does not have ClusterDNS IP configured and cannot create Pod using "
        '"ClusterFirst" policy. Falling back to "Default" policy.'
    )
    assert ("Node", events.WARNING, "MissingClusterDNS", message) in rec.events
    assert (
        "Pod",
        events.WARNING,
        "MissingClusterDNS",
        f'pod: "web-0_shop(u1)". {message}',
    ) in rec.events


def test_an_unreadable_resolv_conf_is_an_error(tmp_path: Path) -> None:
    c, _ = configurer(tmp_path / "missing")
    with pytest.raises(node_dns.DNSConfigError, match=r"open .*missing: No such file"):
        c.pod_dns(pod())


def test_hostname_and_subdomain(host: Path) -> None:
    c, _ = configurer(host)
    assert c.hostname_and_domain(pod()) == ("web-0", "")
    assert c.hostname_and_domain(pod(hostname="db-0", subdomain="db")) == (
        "db-0",
        "db.shop.svc.cluster.local",
    )
    long = pod()
    long["metadata"]["name"] = "a" * 60 + "-.-bcdef"
    assert c.hostname_and_domain(long)[0] == "a" * 60  # cut to 63, no trailing '-' or '.'
    p = pod(hostname="db-0", subdomain="db", setHostnameAsFQDN=True)
    assert (
        c.kernel_hostname(p, "db-0", "db.shop.svc.cluster.local")
        == "db-0.db.shop.svc.cluster.local"
    )
    assert c.kernel_hostname(pod(hostname="db-0", subdomain="db"), "db-0", "d") == "db-0"
    with pytest.raises(
        node_dns.DNSConfigError,
        match=r"^failed to construct FQDN from pod hostname and cluster domain, FQDN h+\.db\.shop"
        r"\.svc\.cluster\.local is too long \(64 characters is the max, 66 characters requested\)$",
    ):
        c.kernel_hostname(p, "h" * 40, "db.shop.svc.cluster.local")


def test_check_limits_warns_on_the_node(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 1.1.1.1\nsearch " + " ".join(f"d{i}" for i in range(30)) + "\n")
    c, rec = configurer(path)
    c.check_limits()
    assert rec.events == [
        (
            "Node",
            events.WARNING,
            "CheckLimitsForResolvConf",
            f"Resolv.conf file '{path}' contains search line consisting of more than 29 domains!",
        )
    ]
