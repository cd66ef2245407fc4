"""The API server keeps the ``kubernetes`` Service, its Endpoints and its EndpointSlice."""

from __future__ import annotations

from pathlib import Path

from pilothouse import testing
from pilothouse.api import errors


def test_kubernetes_service_endpoints_and_slice_are_kept(tmp_path: Path) -> None:
    srv = testing.ServerThread(tmp_path / "data")
    srv.server.advertise_address = "192.0.2.55"  # a routable address: it becomes the endpoint
    with srv:
        services = srv.server.resource_store("", "v1", "services")
        endpoints = srv.server.resource_store("", "v1", "endpoints")
        slices = srv.server.resource_store("discovery.k8s.io", "v1", "endpointslices")
        port = srv.server.port
        svc = srv.call(services.get("default", "kubernetes"))
        assert svc["spec"]["clusterIP"] == "10.43.0.1"
        assert svc["spec"]["ports"] == [
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}
        ]
        assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
        ep = srv.call(endpoints.get("default", "kubernetes"))
        assert ep["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
        assert ep["subsets"] == [
            {
                "addresses": [{"ip": "192.0.2.55"}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ]
        es = srv.call(slices.get("default", "kubernetes"))
        assert es["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
        assert es["addressType"] == "IPv4"
        assert es["endpoints"] == [{"addresses": ["192.0.2.55"], "conditions": {"ready": True}}]
        assert es["ports"] == [{"name": "https", "port": port, "protocol": "TCP"}]

        # Deleted or tampered with: put back on the next pass.
        reconciler = srv.server.kubernetes_service
        assert reconciler is not None
        srv.call(services.delete("default", "kubernetes"))

        async def tamper(obj: dict) -> dict:  # type: ignore[type-arg]
            obj["subsets"] = []
            return obj

        srv.call(endpoints.guaranteed_update("default", "kubernetes", tamper))
        srv.call(reconciler.reconcile())
        again = srv.call(services.get("default", "kubernetes"))
        assert again["spec"]["clusterIP"] == "10.43.0.1"
        assert again["metadata"]["uid"] != svc["metadata"]["uid"]
        assert srv.call(endpoints.get("default", "kubernetes"))["subsets"] == ep["subsets"]


def test_a_loopback_advertised_address_leaves_the_endpoints_empty(
    api_server: testing.ServerThread,
) -> None:
    endpoints = api_server.server.resource_store("", "v1", "endpoints")
    ep = api_server.call(endpoints.get("default", "kubernetes"))
    assert not ep.get("subsets")
    svc = api_server.call(
        api_server.server.resource_store("", "v1", "services").get("default", "kubernetes")
    )
    assert svc["spec"]["ports"][0]["targetPort"] == api_server.server.port
    assert errors.is_not_found(errors.not_found("services", "", "x"))
