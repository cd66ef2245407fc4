"""The replication manager: the ReplicaSet controller's logic on core/v1 RCs,
whose selectors are label maps, with a hollow node running the pods."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse.api import errors, resources
from pilothouse.client import rest
from pilothouse.controllers import disruption, garbagecollector, replicationcontroller
from pilothouse.node import hollow
from pilothouse.testing import eventually, running_controllers

RC = resources.DEFAULT.by_path("", "v1", "replicationcontrollers")
PODS = resources.DEFAULT.by_path("", "v1", "pods")
EVENTS = resources.DEFAULT.by_path("", "v1", "events")
assert RC is not None and PODS is not None and EVENTS is not None


@pytest.fixture
async def node(client: rest.Client) -> AsyncIterator[hollow.HollowCluster]:
    sim = hollow.HollowCluster(
        client, count=1, name_prefix=f"rc-{uuid.uuid4().hex[:6]}-", heartbeat=60
    )
    await sim.start()
    yield sim
    await sim.stop(unregister=True)


def rc(name: str, replicas: int, node_name: str, *, selector: dict[str, str] | None = None) -> Any:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "template": {
            "metadata": {"labels": {"app": name, "tier": "web"}},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}]},
        },
    }
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": name}, "spec": spec}


async def live_pods(client: rest.Client, ns: str, selector: str) -> list[dict[str, Any]]:
    items = (await client.list(PODS, ns, label_selector=selector))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


@contextlib.asynccontextmanager
async def manager(client: rest.Client, *, gc: bool = False) -> AsyncIterator[None]:
    factories: dict[str, Any] = {"replicationcontroller": replicationcontroller.ReplicationManager}
    if gc:
        factories["garbagecollector"] = garbagecollector.GarbageCollector
    async with running_controllers(client, factories):
        yield


async def test_keeps_replicas_with_a_label_map_selector(
    client: rest.Client, ns: str, node: hollow.HollowCluster
) -> None:
    node_name = next(iter(node.nodes))
    async with manager(client):
        created = await client.create(RC, rc("web", 3, node_name), ns)
        # Defaulted from the template's labels, as upstream's SetDefaults_ReplicationController.
        assert created["spec"]["selector"] == {"app": "web", "tier": "web"}
        assert created["metadata"]["labels"] == {"app": "web", "tier": "web"}

        async def ready() -> dict[str, Any] | None:
            st = (await client.get(RC, "web", ns)).get("status") or {}
            return st if st.get("readyReplicas") == 3 and st.get("availableReplicas") == 3 else None

        st = await eventually(ready)
        assert st["replicas"] == 3 and st["fullyLabeledReplicas"] == 3
        assert st["observedGeneration"] == 1
        pods = await live_pods(client, ns, "app=web")
        assert len(pods) == 3
        assert all(p["metadata"]["name"].startswith("web-") for p in pods)
        ref = pods[0]["metadata"]["ownerReferences"][0]
        assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
            "v1",
            "ReplicationController",
            "web",
        )
        assert ref["controller"] is True and ref["blockOwnerDeletion"] is True
        assert ref["uid"] == created["metadata"]["uid"]

        # Scaling down through /scale deletes pods; the Scale shows the map as a selector.
        scale = await client.patch(RC, "web", {"spec": {"replicas": 1}}, ns, subresource="scale")
        assert scale["status"]["selector"] == "app=web,tier=web"
        await eventually(lambda: _count(client, ns, "app=web", 1))
        rc_now = await client.get(RC, "web", ns)
        assert rc_now["metadata"]["generation"] == 2

        # Events come from the replication controller's own source.
        async def created_events() -> list[Any]:
            items = (await client.list(EVENTS, ns))["items"]
            return [
                e
                for e in items
                if e["reason"] == "SuccessfulCreate"
                and e["involvedObject"]["kind"] == "ReplicationController"
            ]

        evs = await eventually(created_events)
        assert evs[0]["source"]["component"] == "replication-controller"


async def _count(client: rest.Client, ns: str, selector: str, n: int) -> bool:
    return len(await live_pods(client, ns, selector)) == n


async def test_adopts_matching_orphans_and_releases_pods_it_no_longer_selects(
    client: rest.Client, ns: str, node: hollow.HollowCluster
) -> None:
    node_name = next(iter(node.nodes))
    orphan = {
        "metadata": {"name": "stray", "labels": {"app": "api", "tier": "web"}},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}]},
    }
    await client.create(PODS, orphan, ns)
    async with manager(client):
        owner = await client.create(RC, rc("api", 2, node_name, selector={"app": "api"}), ns)

        async def adopted() -> bool:
            pod = await client.get(PODS, "stray", ns)
            refs = pod["metadata"].get("ownerReferences") or []
            return any(r["uid"] == owner["metadata"]["uid"] for r in refs)

        await eventually(adopted)
        await eventually(lambda: _count(client, ns, "app=api", 2))

        # Relabel the adopted pod out of the selector: it is released and replaced.
        await client.patch(PODS, "stray", {"metadata": {"labels": {"app": "other"}}}, ns)

        async def released() -> bool:
            pod = await client.get(PODS, "stray", ns)
            return not pod["metadata"].get("ownerReferences")

        await eventually(released)
        await eventually(lambda: _count(client, ns, "app=api", 2))


async def test_delete_without_a_policy_orphans_the_pods(
    client: rest.Client, ns: str, node: hollow.HollowCluster
) -> None:
    """Upstream's RC strategy defaults to OrphanDependents: a DELETE naming no
    policy leaves the pods running, without their owner reference."""
    node_name = next(iter(node.nodes))
    async with manager(client, gc=True):
        await client.create(RC, rc("keep", 2, node_name), ns)
        await eventually(lambda: _count(client, ns, "app=keep", 2))
        answer = await client.request("DELETE", rest.resource_path(RC, ns, "keep"))
        # Deferred by the orphan finalizer, so the answer is the RC itself.
        assert answer["kind"] == "ReplicationController"
        assert answer["metadata"]["finalizers"] == ["orphan"]
        assert answer["metadata"]["deletionTimestamp"]

        async def gone() -> bool:
            try:
                await client.get(RC, "keep", ns)
            except errors.StatusError as exc:
                return errors.is_not_found(exc)
            return False

        await eventually(gone)
        pods = await live_pods(client, ns, "app=keep")
        assert len(pods) == 2
        assert all(not p["metadata"].get("ownerReferences") for p in pods)

        # With propagationPolicy=Background (what kubectl sends) the pods go too.
        await client.create(RC, rc("drop", 1, node_name), ns)
        await eventually(lambda: _count(client, ns, "app=drop", 1))
        await client.delete(RC, "drop", ns, propagation_policy="Background")
        await eventually(lambda: _count(client, ns, "app=drop", 0))


async def test_disruption_budgets_expect_an_rcs_replicas(client: rest.Client, ns: str) -> None:
    """Upstream's disruption controller finds a pod's RC (getPodReplicationController)
    and expects its ``spec.replicas`` pods."""
    owner = await client.create(RC, rc("db", 5, ""), ns)
    ref = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "name": "db",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    for name in ("db-a", "db-b"):
        await client.create(
            PODS,
            {
                "metadata": {"name": name, "labels": {"app": "db"}, "ownerReferences": [ref]},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
            ns,
        )
        pod = await client.get(PODS, name, ns)
        pod["status"]["phase"] = "Running"
        pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        await client.update_status(PODS, pod)
    pdbs = resources.DEFAULT.by_path("policy", "v1", "poddisruptionbudgets")
    assert pdbs is not None
    await client.create(
        pdbs,
        {
            "metadata": {"name": "db"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "db"}}},
        },
        ns,
    )
    async with running_controllers(client, {"disruption": disruption.DisruptionController}):

        async def status() -> dict[str, Any] | None:
            got = await client.get(pdbs, "db", ns)
            st = got.get("status") or {}
            return st if st.get("observedGeneration") == got["metadata"]["generation"] else None

        st = await eventually(status)
        assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"]) == (5, 4, 2)
        assert st["disruptionsAllowed"] == 0
