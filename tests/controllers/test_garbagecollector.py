"""The garbage collector: background, orphan and foreground deletion, and catching up."""

from __future__ import annotations

from typing import Any

from pilothouse.api import errors, resources
from pilothouse.client import rest
from pilothouse.controllers import garbagecollector
from pilothouse.testing import eventually, running_controllers

CM = resources.DEFAULT.by_path("", "v1", "configmaps")
assert CM is not None
GC = {"garbagecollector": garbagecollector.GarbageCollector}


def owned(name: str, owner: dict[str, Any], *, block: bool = False) -> dict[str, Any]:
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if block:
        ref["blockOwnerDeletion"] = True
    return {"metadata": {"name": name, "ownerReferences": [ref]}}


async def exists(client: rest.Client, name: str, ns: str) -> dict[str, Any] | None:
    try:
        return await client.get(CM, name, ns)
    except errors.StatusError as exc:
        if exc.code == 404:
            return None
        raise


async def test_background_deletion_removes_dependents(client: rest.Client, ns: str) -> None:
    async with running_controllers(client, GC):
        owner = await client.create(CM, {"metadata": {"name": "owner"}}, ns)
        await client.create(CM, owned("dep-1", owner), ns)
        await client.create(CM, owned("dep-2", owner), ns)
        await client.create(CM, {"metadata": {"name": "bystander"}}, ns)
        await client.delete(CM, "owner", ns, propagation_policy="Background")

        async def dependents_gone() -> bool:
            return (
                await exists(client, "dep-1", ns) is None
                and await exists(client, "dep-2", ns) is None
            )

        await eventually(dependents_gone)
        assert await exists(client, "bystander", ns) is not None


async def test_orphan_deletion_keeps_dependents_without_owner(client: rest.Client, ns: str) -> None:
    async with running_controllers(client, GC):
        owner = await client.create(CM, {"metadata": {"name": "owner"}}, ns)
        await client.create(CM, owned("child", owner), ns)
        marked = await client.delete(CM, "owner", ns, propagation_policy="Orphan")
        assert marked["metadata"]["finalizers"] == ["orphan"]

        async def owner_gone() -> bool:
            return await exists(client, "owner", ns) is None

        await eventually(owner_gone)
        child = await exists(client, "child", ns)
        assert child is not None
        assert not child["metadata"].get("ownerReferences")


async def test_foreground_deletion_waits_for_blocking_dependents(
    client: rest.Client, ns: str
) -> None:
    async with running_controllers(client, GC):
        owner = await client.create(CM, {"metadata": {"name": "owner"}}, ns)
        # The dependent has a finalizer of its own, so the owner must wait for it.
        child = owned("child", owner, block=True)
        child["metadata"]["finalizers"] = ["example.com/slow"]
        await client.create(CM, child, ns)
        marked = await client.delete(CM, "owner", ns, propagation_policy="Foreground")
        assert marked["metadata"]["finalizers"] == ["foregroundDeletion"]

        async def child_marked() -> bool:
            got = await exists(client, "child", ns)
            return got is not None and bool(got["metadata"].get("deletionTimestamp"))

        await eventually(child_marked)
        assert await exists(client, "owner", ns) is not None  # still waiting
        got = await exists(client, "child", ns)
        assert got is not None
        got["metadata"]["finalizers"] = []
        await client.update(CM, got)

        async def both_gone() -> bool:
            return (
                await exists(client, "owner", ns) is None
                and await exists(client, "child", ns) is None
            )

        await eventually(both_gone)


async def test_collector_catches_up_after_missing_events(client: rest.Client, ns: str) -> None:
    # Owner deleted while no collector runs: the dependent is found at start-up.
    owner = await client.create(CM, {"metadata": {"name": "owner"}}, ns)
    await client.create(CM, owned("left-behind", owner), ns)
    await client.delete(CM, "owner", ns)
    assert await exists(client, "left-behind", ns) is not None
    async with running_controllers(client, GC):

        async def collected() -> bool:
            return await exists(client, "left-behind", ns) is None

        await eventually(collected)


async def test_dangling_reference_is_removed_when_another_owner_remains(
    client: rest.Client, ns: str
) -> None:
    async with running_controllers(client, GC):
        keep = await client.create(CM, {"metadata": {"name": "keep"}}, ns)
        gone = await client.create(CM, {"metadata": {"name": "gone"}}, ns)
        both = owned("shared", keep)
        both["metadata"]["ownerReferences"].append(
            owned("x", gone)["metadata"]["ownerReferences"][0]
        )
        await client.create(CM, both, ns)
        await client.delete(CM, "gone", ns)

        async def only_keep_left() -> bool:
            got = await exists(client, "shared", ns)
            refs = (got or {}).get("metadata", {}).get("ownerReferences") or []
            return got is not None and [ref["name"] for ref in refs] == ["keep"]

        await eventually(only_keep_left)
