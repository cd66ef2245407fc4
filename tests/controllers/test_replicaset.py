"""The ReplicaSet controller with a hollow node running its pods."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from pilothouse.api import errors, resources
from pilothouse.client import rest
from pilothouse.controllers import replicaset
from pilothouse.controllers.replicaset import deletion_order
from pilothouse.node import hollow
from pilothouse.testing import eventually, running_controllers

RS = resources.DEFAULT.by_path("apps", "v1", "replicasets")
PODS = resources.DEFAULT.by_path("", "v1", "pods")
assert RS is not None and PODS is not None


@pytest.fixture
async def node(client: rest.Client) -> AsyncIterator[hollow.HollowCluster]:
    sim = hollow.HollowCluster(
        client, count=1, name_prefix=f"rs-{uuid.uuid4().hex[:6]}-", heartbeat=60
    )
    await sim.start()
    yield sim
    await sim.stop(unregister=True)


def replica_set(name: str, replicas: int, node_name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


async def pods_of(client: rest.Client, ns: str, app: str) -> list[dict[str, Any]]:
    items = (await client.list(PODS, ns, label_selector=f"app={app}"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


@contextlib.asynccontextmanager
async def controller(client: rest.Client) -> AsyncIterator[None]:
    async with running_controllers(client, {"replicaset": replicaset.ReplicaSetController}):
        yield


async def test_creates_pods_reports_status_and_replaces_deleted_ones(
    client: rest.Client, ns: str, node: hollow.HollowCluster
) -> None:
    node_name = next(iter(node.nodes))
    async with controller(client):
        await client.create(RS, replica_set("web", 3, node_name), ns)

        async def all_ready() -> dict[str, Any] | None:
            st = (await client.get(RS, "web", ns)).get("status") or {}
            return st if st.get("readyReplicas") == 3 and st.get("availableReplicas") == 3 else None

        st = await eventually(all_ready)
        assert (
            st["replicas"] == 3
            and st["fullyLabeledReplicas"] == 3
            and st["observedGeneration"] == 1
        )
        pods = await pods_of(client, ns, "web")
        assert len(pods) == 3
        ref = pods[0]["metadata"]["ownerReferences"][0]
        assert (
            ref["kind"] == "ReplicaSet"
            and ref["controller"] is True
            and ref["blockOwnerDeletion"] is True
        )
        assert pods[0]["metadata"]["generateName"] == "web-"

        victim = pods[0]["metadata"]["name"]
        await client.delete(PODS, victim, ns)

        async def replaced() -> bool:
            names = {p["metadata"]["name"] for p in await pods_of(client, ns, "web")}
            return len(names) == 3 and victim not in names

        await eventually(replaced)

        # A merge patch, as kubectl scale: the controller writes the status meanwhile.
        await client.patch(RS, "web", {"spec": {"replicas": 1}}, ns)

        async def scaled_down() -> bool:
            st = (await client.get(RS, "web", ns)).get("status") or {}
            return len(await pods_of(client, ns, "web")) == 1 and st.get("replicas") == 1

        await eventually(scaled_down)

        async def recorded() -> bool:  # events are written in the background
            events = (await client.list(resources.DEFAULT.by_path("", "v1", "events"), ns))[  # type: ignore[arg-type]
                "items"
            ]
            reasons = {e["reason"] for e in events if e["involvedObject"].get("name") == "web"}
            return {"SuccessfulCreate", "SuccessfulDelete"} <= reasons

        await eventually(recorded)


async def test_adopts_orphans_and_releases_non_matching_pods(
    client: rest.Client, ns: str, node: hollow.HollowCluster
) -> None:
    node_name = next(iter(node.nodes))
    orphan = {
        "metadata": {"name": "orphan", "labels": {"app": "db"}},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}]},
    }
    await client.create(PODS, orphan, ns)
    async with controller(client):
        await client.create(RS, replica_set("db", 2, node_name), ns)

        async def two_pods_one_adopted() -> bool:
            pods = await pods_of(client, ns, "db")
            got = await client.get(PODS, "orphan", ns)
            refs = got["metadata"].get("ownerReferences") or []
            return len(pods) == 2 and any(
                r["kind"] == "ReplicaSet" and r["name"] == "db" for r in refs
            )

        await eventually(two_pods_one_adopted)
        # Relabel the adopted pod: it is released and replaced.
        got = await client.get(PODS, "orphan", ns)
        got["metadata"]["labels"] = {"app": "other"}
        await client.update(PODS, got)

        async def released() -> bool:
            pod = await client.get(PODS, "orphan", ns)
            return (
                not pod["metadata"].get("ownerReferences")
                and len(await pods_of(client, ns, "db")) == 2
            )

        await eventually(released)


def test_deletion_order_prefers_unassigned_pending_unready_and_young() -> None:
    def pod(
        name: str,
        node: str = "",
        phase: str = "Running",
        ready: bool = True,
        created: str = "2026-01-01T00:00:00Z",
    ) -> dict[str, Any]:
        conds = (
            [{"type": "Ready", "status": "True", "lastTransitionTime": created}] if ready else []
        )
        return {
            "metadata": {"name": name, "uid": name, "creationTimestamp": created},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conds},
        }

    pods = [
        pod("running-old", "n1", created="2026-01-01T00:00:00Z"),
        pod("unassigned", "", "Pending", ready=False),
        pod("pending", "n1", "Pending", ready=False),
        pod("not-ready", "n1", "Running", ready=False),
        pod("running-young", "n2", created="2026-01-01T11:59:00Z"),
    ]
    now = 1_767_268_800.0  # 2026-01-01T12:00:00Z
    order = [p["metadata"]["name"] for p in deletion_order(pods, pods, now)]
    assert order[:3] == ["unassigned", "pending", "not-ready"]
    # n1 holds more of this set's pods than n2: doubled-up nodes go first.
    assert order[3:] == ["running-old", "running-young"]


async def test_scale_down_counts_sibling_sets_pods_per_node(client: rest.Client, ns: str) -> None:
    """Of two pods alike but for their node, the one on the node where its owner's other
    ReplicaSets also run goes first (upstream's getIndirectlyRelatedPods): scaling a
    Deployment's old set down then spreads what is left across nodes."""
    sim = hollow.HollowCluster(
        client, count=2, name_prefix=f"sib-{uuid.uuid4().hex[:6]}-", heartbeat=60
    )
    await sim.start()
    try:
        busy, quiet = list(sim.nodes)
        owner = await client.create(
            resources.DEFAULT.by_path("", "v1", "configmaps"),  # type: ignore[arg-type]
            {"metadata": {"name": "owner"}},
            ns,
        )
        ref = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }

        def pod(name: str, app: str, node_name: str) -> dict[str, Any]:
            return {
                "metadata": {"name": name, "labels": {"app": app}},
                "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "busybox"}]},
            }

        def all_ready(count: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                items = (await client.list(PODS, ns))["items"]
                return len(items) == count and all(
                    any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in (p.get("status") or {}).get("conditions") or []
                    )
                    for p in items
                )

            return check

        # Pod "a-busy" shares its node with both pods of sibling set "b". Every other rank
        # favours deleting "a-quiet" (ready for less time, younger), so only counting the
        # siblings' pods makes "a-busy" go first.
        for name, app, node_name in (("a-busy", "a", busy), ("b-1", "b", busy), ("b-2", "b", busy)):
            await client.create(PODS, pod(name, app, node_name), ns)
        await eventually(all_ready(3))
        await asyncio.sleep(3)  # a-busy's ready time is in a higher log2 bucket from now on
        await client.create(PODS, pod("a-quiet", "a", quiet), ns)
        await eventually(all_ready(4))
        async with controller(client):
            for name in ("a", "b"):
                rs = replica_set(name, 2, busy)
                rs["metadata"]["ownerReferences"] = [ref]
                await client.create(RS, rs, ns)

            async def adopted() -> bool:
                for name in ("a", "b"):
                    st = (await client.get(RS, name, ns)).get("status") or {}
                    if st.get("readyReplicas") != 2:
                        return False
                return True

            await eventually(adopted)
            await client.patch(RS, "a", {"spec": {"replicas": 1}}, ns)

            async def one_left() -> list[str] | None:
                names = [p["metadata"]["name"] for p in await pods_of(client, ns, "a")]
                return names if len(names) == 1 else None

            assert await eventually(one_left) == ["a-quiet"]
    finally:
        await sim.stop(unregister=True)


async def test_a_pod_relabeled_into_another_set_moves_there(
    client: rest.Client, ns: str, node: hollow.HollowCluster
) -> None:
    """Set "a" releases the pod it no longer selects and replaces it; set "b" adopts it,
    has one too many and deletes one; both statuses count what each now controls."""
    node_name = next(iter(node.nodes))
    async with controller(client):
        await client.create(RS, replica_set("a", 2, node_name), ns)
        await client.create(RS, replica_set("b", 1, node_name), ns)

        def settled(a: int, b: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                for name, want in (("a", a), ("b", b)):
                    st = (await client.get(RS, name, ns)).get("status") or {}
                    owned = [
                        p
                        for p in await pods_of(client, ns, name)
                        if (p["metadata"].get("ownerReferences") or [{}])[0].get("name") == name
                    ]
                    if not (
                        len(owned) == want
                        and st.get("replicas") == want
                        and st.get("readyReplicas") == want
                        and st.get("fullyLabeledReplicas") == want
                    ):
                        return False
                return True

            return check

        await eventually(settled(2, 1))
        moved = (await pods_of(client, ns, "a"))[0]
        moved["metadata"]["labels"] = {"app": "b"}
        await client.update(PODS, moved)

        async def moved_to_b() -> bool:
            try:
                pod = await client.get(PODS, moved["metadata"]["name"], ns)
            except errors.StatusError as exc:
                return errors.is_not_found(exc)  # adopted by b, then b's one too many
            refs = pod["metadata"].get("ownerReferences") or []
            return bool(refs) and refs[0]["name"] == "b" and refs[0]["kind"] == "ReplicaSet"

        await eventually(moved_to_b)
        await eventually(settled(2, 1))


async def test_available_waits_for_min_ready_seconds(
    client: rest.Client, ns: str, node: hollow.HollowCluster
) -> None:
    node_name = next(iter(node.nodes))
    rs = replica_set("slow", 2, node_name)
    rs["spec"]["minReadySeconds"] = 2
    async with controller(client):
        await client.create(RS, rs, ns)

        async def ready_not_available() -> bool:
            st = (await client.get(RS, "slow", ns)).get("status") or {}
            return st.get("readyReplicas") == 2 and not st.get("availableReplicas")

        async def available() -> bool:
            st = (await client.get(RS, "slow", ns)).get("status") or {}
            return st.get("readyReplicas") == 2 and st.get("availableReplicas") == 2

        await eventually(ready_not_available)
        await eventually(available)
