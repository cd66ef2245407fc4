"""The API server's Prometheus metrics: labels, the store timer, and ``/metrics`` served."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import test_utils
from prometheus_client import parser

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.apiserver import metrics
from pilothouse.client import config, rest
from pilothouse.storage import memory

REGISTRY = resources.DEFAULT
CM = REGISTRY.by_path("", "v1", "configmaps")
NS = REGISTRY.by_path("", "v1", "namespaces")
assert CM and NS


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("GET", "/api/v1/namespaces/a/pods", {}, ("LIST", "", "v1", "pods", "", "namespace")),
        ("GET", "/api/v1/pods", {}, ("LIST", "", "v1", "pods", "", "cluster")),
        ("GET", "/api/v1/namespaces/a/pods/p", {}, ("GET", "", "v1", "pods", "", "resource")),
        ("GET", "/api/v1/pods?watch=1", {}, ("WATCH", "", "v1", "pods", "", "cluster")),
        ("GET", "/api/v1/pods?watch=false", {}, ("LIST", "", "v1", "pods", "", "cluster")),
        ("GET", "/api/v1/watch/nodes", {}, ("WATCH", "", "v1", "nodes", "", "cluster")),
        (
            "POST",
            "/apis/apps/v1/namespaces/a/deployments",
            {},
            ("POST", "apps", "v1", "deployments", "", "namespace"),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/a/deployments/d",
            {"Content-Type": "application/apply-patch+yaml"},
            ("APPLY", "apps", "v1", "deployments", "", "resource"),
        ),
        (
            "PUT",
            "/apis/apps/v1/namespaces/a/deployments/d/scale",
            {},
            ("PUT", "apps", "v1", "deployments", "scale", "resource"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/a/configmaps",
            {},
            ("DELETECOLLECTION", "", "v1", "configmaps", "", "namespace"),
        ),
        (
            "GET",
            "/api/v1/namespaces/a/pods/p/log",
            {},
            ("CONNECT", "", "v1", "pods", "log", "resource"),
        ),
        ("GET", "/apis", {}, ("GET", "", "", "", "", "")),
        ("GET", "/api/v1/nosuchthings", {}, ("GET", "", "", "", "", "")),
    ],
)
def test_request_labels_follow_upstream(
    method: str, path: str, headers: dict[str, str], expected: tuple[str, ...]
) -> None:
    request = test_utils.make_mocked_request(method, path, headers=headers)
    assert metrics.request_labels(request, REGISTRY) == expected


async def test_the_store_is_timed_by_operation_and_type() -> None:
    api = metrics.APIMetrics(REGISTRY)
    store = api.instrument(memory.MemoryStore())
    await store.start()
    try:
        rev = await store.create("/registry/pods/ns/p", b"{}")
        await store.update("/registry/pods/ns/p", b"{}", if_revision=rev)
        await store.create("/registry/apps/deployments/ns/d", b"{}")
        await store.get("/registry/apps/deployments/ns/d")
        await store.list("/registry/pods/")
        await store.delete("/registry/pods/ns/p")
        with pytest.raises(Exception, match="p"):
            await store.delete("/registry/pods/ns/p")  # failures are timed too
        assert store.current_revision() == store.inner.current_revision()
    finally:
        await store.close()

    def count(operation: str, kind: str) -> float | None:
        return api.registry.get_sample_value(
            "etcd_request_duration_seconds_count", {"operation": operation, "type": kind}
        )

    assert count("create", "pods") == 1
    assert count("update", "pods") == 1
    assert count("delete", "pods") == 2
    assert count("list", "pods") == 1
    assert count("create", "deployments.apps") == 1
    assert count("get", "deployments.apps") == 1


# --- served --------------------------------------------------------------------------------------
@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum over samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def test_metrics_are_served_and_counters_move(client: rest.Client) -> None:
    ns = "met-" + uuid.uuid4().hex[:8]
    await client.create(NS, {"metadata": {"name": ns}})
    # The namespace's own objects (kube-root-ca.crt is a ConfigMap) are made first.
    await testing.namespace_set_up(client, ns)
    before = scrape(await client.request("GET", "/metrics"))
    await client.create(CM, {"metadata": {"name": "c"}, "data": {}}, ns)
    await client.list(CM, ns)
    with pytest.raises(errors.StatusError):
        await client.get(CM, "missing", ns)
    after = scrape(await client.request("GET", "/metrics"))

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    cm = {"resource": "configmaps", "version": "v1", "component": "apiserver"}
    assert moved("apiserver_request_total", verb="POST", code="201", scope="namespace", **cm) == 1
    assert moved("apiserver_request_total", verb="LIST", code="200", **cm) == 1
    assert moved("apiserver_request_total", verb="GET", code="404", scope="resource", **cm) == 1
    assert moved("apiserver_request_duration_seconds_count", verb="LIST", **cm) == 1
    assert moved("etcd_request_duration_seconds_count", operation="create", type="configmaps") == 1
    assert moved("apiserver_request_total", verb="GET", resource="", code="200") >= 1  # /metrics
    # the scrape itself is in flight while it renders
    assert value(after, "apiserver_current_inflight_requests", request_kind="readOnly") >= 1
    assert (
        "apiserver_current_inflight_requests",
        frozenset({("request_kind", "mutating")}),
    ) in after


async def test_open_watches_are_long_running_requests(
    client: rest.Client, api_server: testing.ServerThread
) -> None:
    # The gauge is per resource and scope, not per namespace, and other tests' watches
    # may still be open on the shared server: compare with what was open before.
    ns = "watch-" + uuid.uuid4().hex[:8]
    labels = {"verb": "WATCH", "resource": "persistentvolumeclaims", "scope": "namespace"}

    async def open_watches() -> float:
        text = await client.request("GET", "/metrics")
        return value(scrape(text), "apiserver_longrunning_requests", **labels)

    before = await open_watches()
    socket = str(api_server.server.socket_path)
    async with (
        aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket)) as session,
        session.get(
            f"http://localhost/api/v1/namespaces/{ns}/persistentvolumeclaims",
            params={"watch": "true", "timeoutSeconds": "1"},
        ) as resp,
    ):
        assert resp.status == 200
        assert await testing.eventually(lambda: _equals(open_watches, before + 1), timeout=5)
        await resp.read()  # the server ends the watch after timeoutSeconds
    assert await testing.eventually(lambda: _equals(open_watches, before), timeout=5)


async def _equals(measure: Callable[[], Awaitable[float]], expected: float) -> bool:
    return await measure() == expected


async def test_metrics_are_refused_to_anonymous_users(api_server: testing.ServerThread) -> None:
    # As kube-apiserver: anonymous requests are authenticated as system:anonymous and
    # RBAC (system:monitoring, bound to no one by default) refuses them.
    pki = api_server.server.pki
    assert pki is not None
    anonymous = pki.ssl_client_context()
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=anonymous)) as session,
        session.get(api_server.url + "/metrics") as resp,
    ):
        assert resp.status == 403
        body = await resp.json()
        assert body["message"] == 'forbidden: User "system:anonymous" cannot get path "/metrics"'
        assert body["reason"] == "Forbidden"
