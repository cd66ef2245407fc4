"""Master leases: the kubernetes Endpoints list every live API server and only those."""

from __future__ import annotations

import time
from pathlib import Path

from pilothouse import testing
from pilothouse.apiserver import kubernetes_service, masterleases
from pilothouse.storage import memory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_live_leases_expire_and_are_removed() -> None:
    store = memory.MemoryStore()
    await store.start()
    clock = Clock()
    leases = masterleases.MasterLeases(store, ttl=15, clock=clock)
    await leases.renew("10.0.0.1", 6443)
    await leases.renew("10.0.0.2", 6443)
    assert await leases.live() == [("10.0.0.1", 6443), ("10.0.0.2", 6443)]
    clock.now += 10
    await leases.renew("10.0.0.2", 6443)  # only the second keeps renewing
    clock.now += 10
    assert await leases.live() == [("10.0.0.2", 6443)]
    # Whoever saw it expired deleted it.
    assert await store.get(masterleases.PREFIX + "10.0.0.1") is None
    await leases.remove("10.0.0.2")
    assert await leases.live() == []
    await store.close()


def test_the_endpoints_follow_the_servers(tmp_path: Path) -> None:
    srv = testing.ServerThread(tmp_path / "data")
    srv.server.advertise_address = "192.0.2.10"
    with srv:
        endpoints = srv.server.resource_store("", "v1", "endpoints")
        slices = srv.server.resource_store("discovery.k8s.io", "v1", "endpointslices")
        assert srv.server.store is not None
        port = srv.server.port
        clock = Clock()
        clock.now = time.time()
        other = masterleases.MasterLeases(srv.server.store, clock=clock)
        srv.call(other.renew("192.0.2.11", port))  # a second server of the cluster
        reconciler = srv.server.kubernetes_service
        assert reconciler is not None
        srv.call(reconciler.reconcile())

        def addresses() -> list[str]:
            ep = srv.call(endpoints.get("default", kubernetes_service.NAME))
            return [a["ip"] for s in ep["subsets"] for a in s["addresses"]]

        def slice_addresses() -> list[str]:
            es = srv.call(slices.get("default", kubernetes_service.NAME))
            return [e["addresses"][0] for e in es["endpoints"]]

        assert addresses() == ["192.0.2.10", "192.0.2.11"]
        assert slice_addresses() == ["192.0.2.10", "192.0.2.11"]
        # The second server stops renewing (killed): gone after the lease's 15 s.
        reconciler.leases = masterleases.MasterLeases(
            srv.server.store, clock=lambda: clock.now + 16
        )
        srv.call(reconciler.reconcile())
        assert addresses() == ["192.0.2.10"]
        # This one stops cleanly: out of the endpoints at once.
        srv.call(other.renew("192.0.2.11", port))
        reconciler.leases = masterleases.MasterLeases(srv.server.store)
        srv.call(reconciler.reconcile())
        assert addresses() == ["192.0.2.10", "192.0.2.11"]
        srv.call(reconciler.remove_self())
        assert addresses() == ["192.0.2.11"]
        assert slice_addresses() == ["192.0.2.11"]
