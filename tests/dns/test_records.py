"""The records DNS keeps, as informer events change them."""

from __future__ import annotations

import copy

from pilothouse.dns import records as recs

from .conftest import endpoint, endpoint_slice, namespace, service


def test_only_ready_endpoints_are_kept(records: recs.ClusterRecords) -> None:
    ips = sorted(a.ip for _, a in records.endpoints("testns", "hdls1"))
    assert ips == [
        "172.0.0.2",
        "172.0.0.3",
        "172.0.0.4",
        "172.0.0.5",
        "5678:abcd::1",
        "5678:abcd::2",
    ]
    # A missing ready condition counts as ready (the API's "unknown").
    assert any(a.ip == "5678:abcd::2" for _, a in records.endpoints("testns", "hdls1"))


def test_changes_bump_the_generation_and_no_ops_do_not() -> None:
    r = recs.ClusterRecords()
    g = r.generation
    svc = service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}])
    r.on_service(svc)
    assert r.generation == g + 1
    status_only = copy.deepcopy(svc)
    status_only["metadata"]["resourceVersion"] = "99"
    status_only["status"] = {"loadBalancer": {}}
    r.on_service(status_only)
    assert r.generation == g + 1  # nothing DNS answers changed
    sl = endpoint_slice("web-a", "web", [endpoint("10.42.0.5")])
    r.on_slice(sl)
    r.on_slice(copy.deepcopy(sl))
    assert r.generation == g + 2
    r.on_slice_deleted(sl)
    r.on_slice_deleted(sl)  # a second delete is a no-op
    assert r.generation == g + 3
    r.on_namespace(namespace("n1"))
    r.on_namespace(namespace("n1"))
    assert r.generation == g + 4


def test_reverse_indexes_follow_address_changes() -> None:
    r = recs.ClusterRecords()
    r.on_service(service("web", ips=["10.43.0.50"]))
    assert [s.name for s in r.services_with_ip("10.43.0.50")] == ["web"]
    r.on_service(service("web", ips=["10.43.0.51"]))
    assert r.services_with_ip("10.43.0.50") == []
    assert [s.name for s in r.services_with_ip("10.43.0.51")] == ["web"]
    r.on_service_deleted(service("web"))
    assert r.services_with_ip("10.43.0.51") == []

    sl = endpoint_slice("web-a", "web", [endpoint("10.42.0.5", hostname="w0")])
    r.on_slice(sl)
    assert [(s.service, a.hostname) for s, a in r.endpoints_with_ip("10.42.0.5")] == [("web", "w0")]
    sl["endpoints"] = [endpoint("10.42.0.6")]
    r.on_slice(sl)
    assert r.endpoints_with_ip("10.42.0.5") == []
    assert len(r.endpoints_with_ip("10.42.0.6")) == 1
    sl["endpoints"] = [endpoint("10.42.0.6", ready=False)]
    r.on_slice(sl)
    assert r.endpoints_with_ip("10.42.0.6") == []


def test_slices_of_one_service_add_up_and_fqdn_slices_are_ignored() -> None:
    r = recs.ClusterRecords()
    r.on_slice(endpoint_slice("web-a", "web", [endpoint("10.42.0.5")]))
    r.on_slice(endpoint_slice("web-b", "web", [endpoint("10.42.0.6")]))
    r.on_slice(endpoint_slice("web-c", "web", [{"addresses": ["db.example"]}], address_type="FQDN"))
    assert sorted(a.ip for _, a in r.endpoints("testns", "web")) == ["10.42.0.5", "10.42.0.6"]
    r.on_slice_deleted(endpoint_slice("web-a", "web", []))
    assert [a.ip for _, a in r.endpoints("testns", "web")] == ["10.42.0.6"]


def test_a_slice_that_changes_service_moves() -> None:
    r = recs.ClusterRecords()
    sl = endpoint_slice("s", "one", [endpoint("10.42.0.5")])
    r.on_slice(sl)
    sl["metadata"]["labels"][recs.SERVICE_NAME_LABEL] = "two"
    r.on_slice(sl)
    assert list(r.endpoints("testns", "one")) == []
    assert [a.ip for _, a in r.endpoints("testns", "two")] == ["10.42.0.5"]


def test_ports_and_sentinels() -> None:
    s = recs.service_from(service("x", ips=["None"]))
    assert s.headless and s.ports == (recs.Port("", recs.NO_PORT, ""),)
    sl = recs.slice_from(endpoint_slice("x-a", "x", [endpoint("1.2.3.4")], ports=[{"name": "p"}]))
    assert sl is not None and sl.ports == (recs.Port("p", recs.NO_PORT, ""),)
    long_pod = "p" * 64
    sl = recs.slice_from(endpoint_slice("x-a", "x", [endpoint("1.2.3.4", pod=long_pod)]))
    assert sl is not None and sl.addresses[0].target == ""  # not a DNS label: not kept


def test_sync_state() -> None:
    r = recs.ClusterRecords()
    assert r.has_synced()  # nothing to wait for
    flags = {"a": False}
    r.track_synced(lambda: flags["a"])
    assert not r.has_synced()
    flags["a"] = True
    assert r.has_synced()
