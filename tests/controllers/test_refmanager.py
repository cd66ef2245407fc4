"""The ControllerRefManager against a real API server: adopt, release, leave others'
objects alone, re-check the controller uncached before adopting, and fail a claim
(rather than act on half of it) when an adoption loses a race."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse.api import errors, meta, selectors
from pilothouse.client import rest
from pilothouse.controllers import podcontrol, refmanager

from .conftest import r

PODS = r("", "pods")
RS = r("apps", "replicasets")
SELECTOR = selectors.from_label_selector_dict({"matchLabels": {"app": "web"}})


def pod(name: str, labels: dict[str, str], owners: list[dict[str, Any]] | None = None) -> dict:
    md: dict[str, Any] = {"name": name, "labels": labels}
    if owners:
        md["ownerReferences"] = owners
    return {"metadata": md, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def replica_set(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


@pytest.fixture(autouse=True)
async def tidy(client: rest.Client, ns: str) -> AsyncIterator[None]:
    """Leave no ReplicaSet or pod behind for the controllers later tests run."""
    yield
    for resource in (RS, PODS):
        for obj in (await client.list(resource, ns))["items"]:
            md = obj["metadata"]
            if md.get("finalizers"):
                await client.patch(resource, md["name"], {"metadata": {"finalizers": None}}, ns)
            with contextlib.suppress(errors.StatusError):
                await client.delete(resource, md["name"], ns, grace_period_seconds=0)


def manager(client: rest.Client, rs: dict[str, Any]) -> refmanager.ControllerRefManager:
    return refmanager.ControllerRefManager(
        client,
        controller=rs,
        selector=SELECTOR,
        resource=PODS,
        recheck=refmanager.recheck_deletion(client, RS, rs),
    )


async def test_adopts_orphans_releases_strays_and_leaves_others_alone(
    client: rest.Client, ns: str
) -> None:
    rs = await client.create(RS, replica_set("mine"), ns)
    other = await client.create(RS, replica_set("other"), ns)
    bystander = {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u-cm"}
    orphan = await client.create(PODS, pod("orphan", {"app": "web"}, [bystander]), ns)
    stray = await client.create(
        PODS, pod("stray", {"app": "db"}, [bystander, podcontrol.controller_ref(rs)]), ns
    )
    kept = await client.create(
        PODS, pod("kept", {"app": "web"}, [podcontrol.controller_ref(rs)]), ns
    )
    theirs = await client.create(
        PODS, pod("theirs", {"app": "web"}, [podcontrol.controller_ref(other)]), ns
    )
    unrelated = await client.create(PODS, pod("unrelated", {"app": "db"}), ns)

    claimed = await manager(client, rs).claim([orphan, stray, kept, theirs, unrelated])

    assert sorted(p["metadata"]["name"] for p in claimed) == ["kept", "orphan"]
    adopted = await client.get(PODS, "orphan", ns)
    # (a strategic merge without $setElementOrder puts the patch's item first, as upstream)
    assert adopted["metadata"]["ownerReferences"] == [podcontrol.controller_ref(rs), bystander]
    released = await client.get(PODS, "stray", ns)
    assert released["metadata"]["ownerReferences"] == [bystander]
    untouched = await client.get(PODS, "theirs", ns)
    assert untouched["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]


async def test_a_controller_being_deleted_keeps_what_it_owns_and_adopts_nothing(
    client: rest.Client, ns: str
) -> None:
    rs = await client.create(RS, replica_set("going"), ns)
    kept = await client.create(
        PODS, pod("kept", {"app": "db"}, [podcontrol.controller_ref(rs)]), ns
    )
    orphan = await client.create(PODS, pod("orphan", {"app": "web"}), ns)
    deleting = meta.deep_copy(rs)
    deleting["metadata"]["deletionTimestamp"] = meta.now()
    claimed = await manager(client, deleting).claim([kept, orphan], lambda p: True)
    # Not matched any more, but a controller being deleted releases nothing either.
    assert claimed == []
    assert (await client.get(PODS, "orphan", ns))["metadata"].get("ownerReferences") is None
    assert (await client.get(PODS, "kept", ns))["metadata"]["ownerReferences"]


@pytest.mark.parametrize("change", ["deleted", "replaced"])
async def test_the_controller_is_rechecked_uncached_before_adopting(
    client: rest.Client, ns: str, change: str
) -> None:
    """The cache still shows the controller alive; the API knows it is being deleted (a
    finalizer holds it) or was replaced by another of the same name: no adoption."""
    cached = await client.create(RS, {**replica_set("web"), "metadata": {"name": "web"}}, ns)
    if change == "deleted":
        held = meta.deep_copy(cached)
        held["metadata"]["finalizers"] = ["example.com/hold"]
        await client.update(RS, held)
        await client.delete(RS, "web", ns)
    else:
        await client.delete(RS, "web", ns)
        await client.create(RS, replica_set("web"), ns)
    orphan = await client.create(PODS, pod("orphan", {"app": "web"}), ns)
    also = await client.create(PODS, pod("also", {"app": "web"}), ns)
    checks = 0
    fetch = refmanager.recheck_deletion(client, RS, cached)

    async def counted() -> dict[str, Any]:
        nonlocal checks
        checks += 1
        return await fetch()

    m = refmanager.ControllerRefManager(
        client, controller=cached, selector=SELECTOR, resource=PODS, recheck=counted
    )
    with pytest.raises(refmanager.ClaimError) as info:
        await m.claim([orphan, also])
    assert len(info.value.failures) == 2 and checks == 1  # asked once per claim
    why = "has just been deleted" if change == "deleted" else "is gone: got uid"
    assert why in str(info.value) and "can't adopt Pod" in str(info.value)
    for name in ("orphan", "also"):
        assert (await client.get(PODS, name, ns))["metadata"].get("ownerReferences") is None


async def test_two_controllers_racing_for_an_orphan_one_wins_the_other_fails_its_claim(
    client: rest.Client, ns: str
) -> None:
    first = await client.create(RS, replica_set("first"), ns)
    second = await client.create(RS, replica_set("second"), ns)
    orphan = await client.create(PODS, pod("orphan", {"app": "web"}), ns)
    assert await manager(client, first).claim([orphan]) != []
    # The second one's cache still shows the orphan: the API refuses a second controller.
    with pytest.raises(refmanager.ClaimError) as info:
        await manager(client, second).claim([orphan])
    assert errors.is_invalid(info.value.failures[0])
    owners = (await client.get(PODS, "orphan", ns))["metadata"]["ownerReferences"]
    assert [o["name"] for o in owners] == ["first"]


async def test_adoption_never_lands_on_a_new_object_of_the_same_name(
    client: rest.Client, ns: str
) -> None:
    rs = await client.create(RS, replica_set("web"), ns)
    stale = await client.create(PODS, pod("p", {"app": "web"}), ns)
    await client.delete(PODS, "p", ns, grace_period_seconds=0)
    await client.create(PODS, pod("p", {"app": "web"}), ns)  # another pod, same name
    with pytest.raises(refmanager.ClaimError) as info:
        await manager(client, rs).claim([stale])
    # The uid in the patch does not match. (Upstream answers a patch so with 422 Invalid;
    # this server's update loop checks it as a precondition, 409 Conflict.)
    failure = info.value.failures[0]
    assert errors.is_invalid(failure) or errors.is_conflict(failure)
    assert (await client.get(PODS, "p", ns))["metadata"].get("ownerReferences") is None
    await client.delete(PODS, "p", ns, grace_period_seconds=0)
    # Gone altogether: nothing to claim, and nothing wrong.
    assert await manager(client, rs).claim([stale]) == []
