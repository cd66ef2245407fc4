"""The EndpointSlice and Endpoints controllers against a real API server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pilothouse.api import resources
from pilothouse.client import rest
from pilothouse.controllers import endpoints
from pilothouse.controllers.endpointslice import EndpointSliceController
from pilothouse.testing import eventually, running_controllers

PODS = resources.DEFAULT.by_path("", "v1", "pods")
SERVICES = resources.DEFAULT.by_path("", "v1", "services")
ENDPOINTS = resources.DEFAULT.by_path("", "v1", "endpoints")
SLICES = resources.DEFAULT.by_path("discovery.k8s.io", "v1", "endpointslices")
assert PODS and SERVICES and ENDPOINTS and SLICES


@contextlib.asynccontextmanager
async def controllers(client: rest.Client) -> AsyncIterator[None]:
    factories: dict[str, Any] = {
        "endpointslice": lambda ctx: EndpointSliceController(ctx, batch_period=0.05),
        "endpoints": lambda ctx: endpoints.EndpointsController(ctx, batch_period=0.05),
    }
    async with running_controllers(client, factories):
        yield


def service(name: str, *, selector: dict[str, str] | None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "labels": {"team": "blue"}},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec},
    }
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


async def make_pod(
    client: rest.Client,
    ns: str,
    name: str,
    *,
    ip: str,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    port: int | None = 8080,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if port is not None:
        container["ports"] = [{"name": "http", "containerPort": port}]
    pod = await client.create(
        PODS,
        {
            "metadata": {"name": name, "labels": labels or {"app": "web"}},
            "spec": {"containers": [container], **spec},
        },
        ns,
    )
    return await set_status(client, pod, ip=ip, ready=ready)


async def set_status(
    client: rest.Client, pod: dict[str, Any], *, ip: str, ready: bool
) -> dict[str, Any]:
    pod["status"] = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    return await client.update_status(PODS, pod)


async def slices_of(client: rest.Client, ns: str, svc: str) -> list[dict[str, Any]]:
    items = (await client.list(SLICES, ns, label_selector=f"kubernetes.io/service-name={svc}"))[
        "items"
    ]
    return sorted(items, key=lambda s: s["metadata"]["name"])


def addresses(slices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {ep["addresses"][0]: ep for s in slices for ep in s.get("endpoints") or []}


async def test_slice_and_endpoints_follow_pods(client: rest.Client, ns: str) -> None:
    await make_pod(client, ns, "a", ip="10.42.0.11", port=8080)
    await make_pod(client, ns, "b", ip="10.42.0.12", port=9090)  # same name, another number
    await make_pod(client, ns, "c", ip="10.42.0.13", ready=False)
    await make_pod(client, ns, "other", ip="10.42.0.99", labels={"app": "db"})
    svc = await client.create(SERVICES, service("web", selector={"app": "web"}), ns)
    async with controllers(client):

        async def three() -> list[dict[str, Any]] | None:
            s = await slices_of(client, ns, "web")
            return s if len(addresses(s)) == 3 else None

        slices = await eventually(three)
        # Named targetPort resolved per pod: two port sets, so two slices.
        by_port = {s["ports"][0]["port"]: s for s in slices}
        assert set(by_port) == {8080, 9090}
        s8080 = by_port[8080]
        md = s8080["metadata"]
        assert md["name"].startswith("web-") and len(md["name"]) == len("web-") + 5
        assert md["labels"] == {
            "team": "blue",
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }
        ref = md["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "Service",
            "web",
            svc["metadata"]["uid"],
            True,
        )
        assert "endpoints.kubernetes.io/last-change-trigger-time" in md["annotations"]
        assert s8080["addressType"] == "IPv4"
        assert s8080["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        eps = addresses(slices)
        assert eps["10.42.0.11"]["conditions"] == {
            "ready": True,
            "serving": True,
            "terminating": False,
        }
        assert eps["10.42.0.13"]["conditions"]["ready"] is False
        assert eps["10.42.0.11"]["targetRef"]["name"] == "a"

        async def endpoints_written() -> dict[str, Any] | None:
            try:
                return await client.get(ENDPOINTS, "web", ns)
            except Exception:
                return None

        ep = await eventually(endpoints_written)
        assert ep["metadata"]["labels"] == {"team": "blue"}
        subsets = {s["ports"][0]["port"]: s for s in ep["subsets"]}
        assert [a["ip"] for a in subsets[8080]["addresses"]] == ["10.42.0.11"]
        assert [a["ip"] for a in subsets[8080]["notReadyAddresses"]] == ["10.42.0.13"]
        assert [a["ip"] for a in subsets[9090]["addresses"]] == ["10.42.0.12"]
        assert subsets[9090]["addresses"][0]["targetRef"]["kind"] == "Pod"

        # A pod turning ready moves across; a deleted pod leaves.
        c = await client.get(PODS, "c", ns)
        await set_status(client, c, ip="10.42.0.13", ready=True)
        await client.delete(PODS, "b", ns, grace_period_seconds=0)

        async def settled() -> bool:
            s = await slices_of(client, ns, "web")
            e = await client.get(ENDPOINTS, "web", ns)
            return (
                len(s) == 1
                and set(addresses(s)) == {"10.42.0.11", "10.42.0.13"}
                and all(ep["conditions"]["ready"] for ep in addresses(s).values())
                and [a["ip"] for a in e["subsets"][0]["addresses"]] == ["10.42.0.11", "10.42.0.13"]
                and "notReadyAddresses" not in e["subsets"][0]
            )

        await eventually(settled)


async def test_selecting_nothing_gives_a_placeholder_and_empty_endpoints(
    client: rest.Client, ns: str
) -> None:
    await client.create(SERVICES, service("ghost", selector={"app": "nobody"}), ns)
    async with controllers(client):

        async def placeholder() -> list[dict[str, Any]] | None:
            s = await slices_of(client, ns, "ghost")
            return s or None

        slices = await eventually(placeholder)
        assert len(slices) == 1 and not slices[0].get("endpoints")
        ep = await eventually(lambda: _get(client, ENDPOINTS, "ghost", ns))
        assert not ep.get("subsets")
        # The placeholder is reused, not recreated, when pods arrive.
        await make_pod(client, ns, "late", ip="10.42.0.20", labels={"app": "nobody"})

        async def filled() -> list[dict[str, Any]] | None:
            s = await slices_of(client, ns, "ghost")
            return s if addresses(s) else None

        after = await eventually(filled)
        assert [s["metadata"]["name"] for s in after] == [slices[0]["metadata"]["name"]]


async def _get(client: rest.Client, r: resources.Resource, name: str, ns: str) -> Any:
    try:
        return await client.get(r, name, ns)
    except Exception:
        return None


async def test_terminating_pods_and_missing_target_port(client: rest.Client, ns: str) -> None:
    pod = await make_pod(client, ns, "t", ip="10.42.0.31", finalizers=None)
    await client.patch(PODS, "t", {"metadata": {"finalizers": ["example.com/hold"]}}, ns)
    await make_pod(client, ns, "noport", ip="10.42.0.32", port=None)
    await client.create(SERVICES, service("web", selector={"app": "web"}), ns)
    async with controllers(client):
        await eventually(lambda: _count(client, ns, "web", 2))
        await client.delete(PODS, "t", ns, grace_period_seconds=0)

        async def terminating() -> dict[str, Any] | None:
            eps = addresses(await slices_of(client, ns, "web"))
            ep = eps.get("10.42.0.31")
            return ep if ep and ep["conditions"]["terminating"] else None

        ep = await eventually(terminating)
        assert ep["conditions"] == {"ready": False, "serving": True, "terminating": True}
        slices = await slices_of(client, ns, "web")
        # A pod without the named port is an endpoint of a slice without ports.
        noport = next(s for s in slices if "10.42.0.32" in addresses([s]))
        assert not noport.get("ports")

        async def endpoints_without_terminating() -> bool:
            e = await _get(client, ENDPOINTS, "web", ns)
            return bool(e) and not e.get("subsets")

        await eventually(endpoints_without_terminating)
    await client.patch(PODS, "t", {"metadata": {"finalizers": []}}, ns)
    assert pod["metadata"]["name"] == "t"


async def _count(client: rest.Client, ns: str, svc: str, n: int) -> bool:
    return len(addresses(await slices_of(client, ns, svc))) == n


async def test_large_services_split_and_rollouts_batch(client: rest.Client, ns: str) -> None:
    await asyncio.gather(
        *(make_pod(client, ns, f"p{i}", ip=f"10.42.1.{i + 1}") for i in range(150))
    )
    await client.create(SERVICES, service("big", selector={"app": "web"}), ns)
    async with controllers(client):
        await eventually(lambda: _count(client, ns, "big", 150), timeout=30)
        slices = await slices_of(client, ns, "big")
        assert sorted(len(s["endpoints"]) for s in slices) == [50, 100]
        ep = await client.get(ENDPOINTS, "big", ns)
        assert len(ep["subsets"][0]["addresses"]) == 150
        versions = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices}
        # 150 readiness flips in quick succession: batched into a few writes per slice.
        writes: list[str] = []
        watch = asyncio.create_task(_slice_writes(client, ns, max(versions.values()), writes))
        pods = (await client.list(PODS, ns))["items"]
        await asyncio.gather(
            *(set_status(client, p, ip=p["status"]["podIP"], ready=False) for p in pods)
        )

        async def all_not_ready() -> bool:
            eps = addresses(await slices_of(client, ns, "big"))
            return len(eps) == 150 and not any(e["conditions"]["ready"] for e in eps.values())

        await eventually(all_not_ready, timeout=30)
        await asyncio.sleep(0.3)
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        assert 2 <= len(writes) <= 12, writes


async def _slice_writes(client: rest.Client, ns: str, since: str, out: list[str]) -> None:
    async for event in client.watch(SLICES, ns, resource_version=since):
        if event.get("type") == "MODIFIED":
            out.append(event["object"]["metadata"]["name"])


async def test_service_deletion_removes_its_endpoints(client: rest.Client, ns: str) -> None:
    await make_pod(client, ns, "a", ip="10.42.0.41")
    await client.create(SERVICES, service("gone", selector={"app": "web"}), ns)
    await client.create(SERVICES, service("manual", selector=None), ns)
    async with controllers(client):
        await eventually(lambda: _get(client, ENDPOINTS, "gone", ns))
        await client.delete(SERVICES, "gone", ns)

        async def deleted() -> bool:
            return await _get(client, ENDPOINTS, "gone", ns) is None

        await eventually(deleted)
        # A Service without a selector gets neither slices nor Endpoints from us.
        assert await slices_of(client, ns, "manual") == []
        assert await _get(client, ENDPOINTS, "manual", ns) is None


def test_endpoints_truncate_ready_first() -> None:
    subsets = [
        {
            "addresses": [{"ip": f"a{i}"} for i in range(900)],
            "notReadyAddresses": [{"ip": "x"}] * 300,
        }
    ]
    assert endpoints.truncate(subsets)
    assert len(subsets[0]["addresses"]) == 900
    assert len(subsets[0]["notReadyAddresses"]) == 100
    many = [
        {"addresses": [{"ip": f"b{i}"} for i in range(1500)], "notReadyAddresses": [{"ip": "y"}]}
    ]
    assert endpoints.truncate(many)
    assert len(many[0]["addresses"]) == 1000 and "notReadyAddresses" not in many[0]
    assert not endpoints.truncate([{"addresses": [{"ip": "c"}] * 10}])


async def test_endpoints_of_a_service_without_selector_are_mirrored(
    client: rest.Client, ns: str
) -> None:
    from pilothouse.controllers import endpointslicemirroring as mirroring

    await client.create(SERVICES, service("db", selector=None), ns)
    await client.create(
        ENDPOINTS,
        {
            "metadata": {"name": "db", "labels": {"team": "data"}},
            "subsets": [
                {
                    "addresses": [{"ip": "192.0.2.40"}, {"ip": "192.0.2.41"}],
                    "notReadyAddresses": [{"ip": "192.0.2.42"}],
                    "ports": [{"name": "http", "port": 5432}],
                }
            ],
        },
        ns,
    )
    # Not mirrored: the skip-mirror label, and Endpoints of a Service with a selector.
    await client.create(SERVICES, service("own", selector={"app": "own"}), ns)
    await client.create(
        ENDPOINTS,
        {"metadata": {"name": "own"}, "subsets": [{"addresses": [{"ip": "192.0.2.50"}]}]},
        ns,
    )
    factories: dict[str, Any] = {
        "endpointslicemirroring": mirroring.EndpointSliceMirroringController
    }
    async with running_controllers(client, factories):

        async def mirrored() -> list[dict[str, Any]] | None:
            s = await slices_of(client, ns, "db")
            return s if len(addresses(s)) == 3 else None

        slices = await eventually(mirrored)
        s = slices[0]
        assert s["metadata"]["name"].startswith("db-")
        assert s["metadata"]["labels"] == {
            "team": "data",
            "kubernetes.io/service-name": "db",
            "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io",
        }
        assert s["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
        assert s["ports"] == [{"name": "http", "port": 5432, "protocol": "TCP"}]
        eps = addresses(slices)
        assert eps["192.0.2.40"]["conditions"] == {"ready": True}
        assert eps["192.0.2.42"]["conditions"] == {"ready": False}
        # The user changes the Endpoints: the slice follows.
        ep = await client.get(ENDPOINTS, "db", ns)
        ep["subsets"][0]["addresses"] = [{"ip": "192.0.2.43"}]
        del ep["subsets"][0]["notReadyAddresses"]
        await client.update(ENDPOINTS, ep)

        async def followed() -> bool:
            return set(addresses(await slices_of(client, ns, "db"))) == {"192.0.2.43"}

        await eventually(followed)
        # Labelled skip-mirror: the mirrored slices go.
        ep = await client.get(ENDPOINTS, "db", ns)
        ep["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] = "true"
        await client.update(ENDPOINTS, ep)

        async def gone() -> bool:
            return await slices_of(client, ns, "db") == []

        await eventually(gone)
        assert await slices_of(client, ns, "own") == []


def test_tracker_knows_a_stale_cache() -> None:
    from pilothouse.controllers.endpointslice import tracker

    t = tracker.SliceTracker()

    def s(uid: str, rv: int) -> dict[str, Any]:
        return {"metadata": {"uid": uid, "resourceVersion": str(rv)}}

    assert not t.stale("ns/web", [])
    t.written("ns/web", s("a", 10))
    assert t.stale("ns/web", [])  # created, not in the cache yet: syncing would create again
    assert t.stale("ns/web", [s("a", 9)])  # older than what we wrote
    assert not t.stale("ns/web", [s("a", 10)])
    assert not t.should_sync("ns/web", s("a", 10)) and t.should_sync("ns/web", s("a", 11))
    t.deleted("ns/web", s("a", 10))
    assert t.stale("ns/web", [s("a", 10)])  # deleted by us, still cached
    assert not t.stale("ns/web", [])
    assert not t.observed_deletion("ns/web", s("a", 10))  # our own deletion: no resync
    t.written("ns/web", s("b", 12))
    t.untrack("ns/web", s("b", 12))
    assert not t.stale("ns/web", [])
