"""The availability checks of APIServices, the Service resolver and the discovery merge,
on a watch cache filled by hand (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from pilothouse import testing_https
from pilothouse.apiserver import cacheentry, resourcecache
from pilothouse.apiserver.aggregator import available, discovery, registration
from pilothouse.apiserver.webhook import client, resolver

PREFIXES = (
    available.API_SERVICES,
    available.SERVICES,
    available.ENDPOINTS,
    "/registry/namespaces/",
)


class Cache:
    """Just enough of a WatchCache for readers: per-prefix resource caches."""

    def __init__(self) -> None:
        self.caches = {p: resourcecache.ResourceCache(p, 0) for p in PREFIXES}
        self.revision = 1

    def put(self, prefix: str, key: str, obj: dict[str, Any]) -> None:
        self.revision += 1
        self.caches[prefix].load(cacheentry.Entry(prefix + key, obj, self.revision))


def service(
    name: str = "api", *, port: int = 443, kind: str = "ClusterIP", **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "wardle"},
        "spec": {
            "type": kind,
            "ports": [{"name": "https", "port": port, "targetPort": 8443}],
            **spec,
        },
    }


def endpoints(ip: str, port: int, *, port_name: str = "https") -> dict[str, Any]:
    return {
        "metadata": {"name": "api", "namespace": "wardle"},
        "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": port_name, "port": port}]}],
    }


def api_service(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "v1alpha1.wardle.example.com"},
        "spec": {
            "group": "wardle.example.com",
            "version": "v1alpha1",
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
            "service": {"namespace": "wardle", "name": "api", "port": 443},
            **spec,
        },
    }


def controller(cache: Cache) -> available.AvailabilityController:
    return available.AvailabilityController(
        cache=cache,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        services=resolver.ServiceResolver(cache),  # type: ignore[arg-type]
        clients=client.ClientManager(None),
    )


async def test_each_reason_in_upstream_order() -> None:
    cache = Cache()
    c = controller(cache)
    obj = api_service()
    assert await c.check(obj) == (
        "False",
        "ServiceNotFound",
        'service/api in "wardle" is not present',
    )
    cache.put(available.SERVICES, "wardle/api", service(port=8080))
    assert await c.check(obj) == (
        "False",
        "ServicePortError",
        'service/api in "wardle" is not listening on port 443',
    )
    cache.put(available.SERVICES, "wardle/api", service())
    assert await c.check(obj) == (
        "False",
        "EndpointsNotFound",
        'cannot find endpoints for service/api in "wardle"',
    )
    cache.put(available.ENDPOINTS, "wardle/api", endpoints("192.0.2.9", 1, port_name="other"))
    assert await c.check(obj) == (
        "False",
        "MissingEndpoints",
        'endpoints for service/api in "wardle" have no addresses with port name "https"',
    )
    cache.put(available.ENDPOINTS, "wardle/api", endpoints("127.0.0.1", 1))
    status, reason, message = await c.check(obj)
    assert (status, reason) == ("False", "FailedDiscoveryCheck")
    assert message == (
        "failing or missing response from https://127.0.0.1:1/apis/wardle.example.com/v1alpha1: "
        'Get "https://127.0.0.1:1/apis/wardle.example.com/v1alpha1": dial tcp 127.0.0.1:1: '
        "connect: connection refused"
    )
    await c.clients.close()


async def test_discovery_check_passes_and_reports_bad_statuses() -> None:
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        assert request.headers["X-Remote-User"] == "system:kube-aggregator"
        assert request.headers.getall("X-Remote-Group") == ["system:masters"]
        return web.json_response({"kind": "APIResourceList"})

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app.router.add_get("/apis/wardle.example.com/v1alpha1", ok)
    app.router.add_get("/apis/broken.example.com/v1", broken)
    with testing_https.HTTPSServer(app, hostnames=["api.wardle.svc"]) as srv:
        cache = Cache()
        cache.put(available.SERVICES, "wardle/api", service())
        cache.put(available.ENDPOINTS, "wardle/api", endpoints("127.0.0.1", srv.port))
        c = controller(cache)
        assert await c.check(api_service(caBundle=srv.ca_bundle)) == (
            "True",
            "Passed",
            "all checks passed",
        )
        broken_service = api_service(
            caBundle=srv.ca_bundle, group="broken.example.com", version="v1"
        )
        status, reason, message = await c.check(broken_service)
        url = f"https://127.0.0.1:{srv.port}/apis/broken.example.com/v1"
        assert (status, reason, message) == (
            "False",
            "FailedDiscoveryCheck",
            f"failing or missing response from {url}: bad status from {url}: 503",
        )
        # insecureSkipTLSVerify trusts any certificate.
        assert (await c.check(api_service(insecureSkipTLSVerify=True)))[0] == "True"
        await c.clients.close()


def test_resolver_picks_an_endpoint_of_the_port_s_name() -> None:
    cache = Cache()
    services = resolver.ServiceResolver(cache)  # type: ignore[arg-type]
    with pytest.raises(resolver.ResolveError, match='service "api" not found'):
        services.resolve("wardle", "api", 443)
    cache.put(available.SERVICES, "wardle/api", service())
    with pytest.raises(resolver.ResolveError, match='no service port 80 found for service "api"'):
        services.resolve("wardle", "api", 80)
    with pytest.raises(resolver.ResolveError, match='endpoints "api" not found'):
        services.resolve("wardle", "api", 443)
    cache.put(available.ENDPOINTS, "wardle/api", {"metadata": {}, "subsets": []})
    with pytest.raises(resolver.ResolveError, match='no endpoints available for service "api"'):
        services.resolve("wardle", "api", 443)
    cache.put(available.ENDPOINTS, "wardle/api", endpoints("10.42.0.7", 8443))
    assert services.resolve("wardle", "api", 443) == resolver.Address("10.42.0.7", 8443)
    cache.put(
        available.SERVICES,
        "wardle/ext",
        {
            **service("ext", kind="ExternalName"),
            "spec": {"type": "ExternalName", "externalName": "hooks.example.com"},
        },
    )
    assert services.resolve("wardle", "ext", 443).netloc == "hooks.example.com:443"
    assert resolver.Address("fd00::1", 443).netloc == "[fd00::1]:443"


def test_extension_groups_ordered_by_priority() -> None:
    gvs = [
        discovery.GroupVersion("b.example.com", "v1", 100, 15, (), True),
        discovery.GroupVersion("a.example.com", "v1beta1", 100, 15, (), True),
        discovery.GroupVersion("a.example.com", "v1", 100, 15, (), True),
        discovery.GroupVersion("a.example.com", "v2alpha1", 100, 20, (), True),
        discovery.GroupVersion("z.example.com", "v1", 2000, 1, (), True),
    ]
    ordered = [(g, [v.version for v in vs]) for g, vs in discovery.ordered_groups(gvs)]
    assert ordered == [
        ("z.example.com", ["v1"]),
        ("a.example.com", ["v2alpha1", "v1", "v1beta1"]),
        ("b.example.com", ["v1"]),
    ]


def test_resource_lists_in_the_aggregated_shape() -> None:
    resources = (
        {
            "name": "flunders",
            "singularName": "flunder",
            "namespaced": True,
            "kind": "Flunder",
            "verbs": ["get", "list"],
            "shortNames": ["fl"],
        },
        {
            "name": "flunders/status",
            "namespaced": True,
            "kind": "Flunder",
            "verbs": ["get", "patch"],
        },
        {
            "name": "fischers",
            "singularName": "",
            "namespaced": False,
            "kind": "Fischer",
            "verbs": ["get"],
        },
    )
    assert discovery.aggregated_resources("wardle.example.com", "v1alpha1", resources) == [
        {
            "resource": "flunders",
            "responseKind": {
                "group": "wardle.example.com",
                "version": "v1alpha1",
                "kind": "Flunder",
            },
            "scope": "Namespaced",
            "singularResource": "flunder",
            "verbs": ["get", "list"],
            "shortNames": ["fl"],
            "subresources": [
                {
                    "subresource": "status",
                    "responseKind": {
                        "group": "wardle.example.com",
                        "version": "v1alpha1",
                        "kind": "Flunder",
                    },
                    "verbs": ["get", "patch"],
                }
            ],
        },
        {
            "resource": "fischers",
            "responseKind": {
                "group": "wardle.example.com",
                "version": "v1alpha1",
                "kind": "Fischer",
            },
            "scope": "Cluster",
            "singularResource": "",
            "verbs": ["get"],
        },
    ]


def test_local_apiservices_use_upstream_priorities() -> None:
    apps = registration.local_api_service("apps", "v1")
    assert apps is not None and apps["spec"]["groupPriorityMinimum"] == 17800
    core = registration.local_api_service("", "v1")
    assert core is not None and core["metadata"]["name"] == "v1."
    assert registration.local_api_service("unknown.example.com", "v1") is None
