"""One informer factory shared by several consumers of a process (scopes and views),
and the managedFields transform, against a real API server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from pilothouse import supervisor as supervision
from pilothouse import testing
from pilothouse.api import meta, resources
from pilothouse.client import informer, informerscope, rest

CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")
NAMESPACES = resources.DEFAULT.by_path("", "v1", "namespaces")
assert CONFIGMAPS is not None and NAMESPACES is not None


async def _namespace(client: rest.Client) -> str:
    name = "s-" + uuid.uuid4().hex[:8]
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    await testing.namespace_set_up(client, name)
    return name


async def _until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_scopes_share_one_cache_and_one_watch(
    client: rest.Client, supervisor: supervision.Supervisor
) -> None:
    ns = await _namespace(client)
    await client.create(CONFIGMAPS, {"metadata": {"name": "before"}}, ns)
    factory = informer.InformerFactory(client, transform=informer.trim_managed_fields)
    factory.start(supervisor.nest("shared"))
    first, second = informerscope.InformerScope(factory), informerscope.InformerScope(factory)
    a = first.informer(CONFIGMAPS, namespace=ns)
    b = second.informer(CONFIGMAPS, namespace=ns)
    seen_a: list[str] = []
    seen_b: list[str] = []
    a.add_handlers(on_add=lambda o: seen_a.append(o["metadata"]["name"]))
    b.add_handlers(on_add=lambda o: seen_b.append(o["metadata"]["name"]))
    first.start(supervisor)
    second.start(supervisor)
    try:
        await first.wait_synced(10)
        await second.wait_synced(10)
        # One informer behind both views: the very same cached object, listed once.
        shared = factory.informer(CONFIGMAPS, namespace=ns)
        assert a.indexer is b.indexer is shared.indexer
        assert a.indexer.get(f"{ns}/before") is b.indexer.get(f"{ns}/before")
        assert shared.lists == 1 and a.lists == 1
        # The transform ran before anyone saw the object.
        cached = a.indexer.get(f"{ns}/before")
        assert cached is not None and "managedFields" not in cached["metadata"]
        assert "before" in seen_a and "before" in seen_b

        # A scope that stops takes its handlers away; the informer runs on for the other.
        await first.stop()
        await client.create(CONFIGMAPS, {"metadata": {"name": "after"}}, ns)
        await _until(lambda: "after" in seen_b, "the remaining scope to see the add")
        assert "after" not in seen_a
        assert a.indexer.get(f"{ns}/after") is not None

        # A new scope (a new leadership term) is replayed what the cache holds.
        third = informerscope.InformerScope(factory)
        seen_c: list[str] = []
        third.informer(CONFIGMAPS, namespace=ns).add_handlers(
            on_add=lambda o: seen_c.append(o["metadata"]["name"])
        )
        third.start(supervisor)
        await third.wait_synced(10)
        assert {"before", "after"} <= set(seen_c)
        assert shared.lists == 1
        await third.stop()
    finally:
        await second.stop()
        await factory.stop()


async def test_the_server_keeps_managed_fields_an_update_from_a_trimmed_cache_omits(
    client: rest.Client, supervisor: supervision.Supervisor
) -> None:
    # What the controllers do: copy the trimmed cached object, change it, update it.
    ns = await _namespace(client)
    await client.create(CONFIGMAPS, {"metadata": {"name": "m"}, "data": {"k": "v"}}, ns)
    inf = informer.Informer(
        client, CONFIGMAPS, namespace=ns, transform=informer.trim_managed_fields
    )
    inf.start(supervisor)
    try:
        await inf.wait_synced(10)
        cached = inf.indexer.get(f"{ns}/m")
        assert cached is not None
        changed = meta.deep_copy(cached)
        changed["data"] = {"k": "w"}
        await client.update(CONFIGMAPS, changed)
        live = await client.get(CONFIGMAPS, "m", ns)
        assert live["data"] == {"k": "w"}
        assert [e["manager"] for e in live["metadata"]["managedFields"]]
    finally:
        await inf.stop()


async def test_the_mutation_detector_names_an_object_changed_in_place(
    client: rest.Client, supervisor: supervision.Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(informer.MUTATION_DETECTOR_ENV, "true")
    ns = await _namespace(client)
    await client.create(CONFIGMAPS, {"metadata": {"name": "m"}, "data": {"k": "v"}}, ns)
    await client.create(CONFIGMAPS, {"metadata": {"name": "fine"}, "data": {"k": "v"}}, ns)
    inf = informer.Informer(client, CONFIGMAPS, namespace=ns)
    inf.start(supervisor)
    try:
        await inf.wait_synced(10)
        cached = inf.indexer.get(f"{ns}/m")
        assert cached is not None
        cached["data"]["k"] = "changed in place"  # what a consumer must never do
        for name in ("m", "fine"):
            live = await client.get(CONFIGMAPS, name, ns)
            live["data"] = {"k": "updated"}
            await client.update(CONFIGMAPS, live)
        await _until(
            lambda: (inf.indexer.get(f"{ns}/fine") or {}).get("data") == {"k": "updated"},
            "both updates",
        )
        assert inf.mutations == [f"{ns}/m"]
    finally:
        await inf.stop()


async def test_metadata_readers_share_a_whole_object_informer_when_there_is_one(
    client: rest.Client,
) -> None:
    assert NAMESPACES is not None and CONFIGMAPS is not None
    factory = informer.InformerFactory(client)
    full = factory.informer(CONFIGMAPS)
    assert factory.informer_or_metadata(CONFIGMAPS) is full
    meta_only = factory.informer_or_metadata(NAMESPACES)
    assert meta_only.metadata_only
    assert meta_only is factory.informer(NAMESPACES, metadata_only=True)
    # Through a scope: a view of the shared whole-object informer.
    scope = informerscope.InformerScope(factory)
    view = scope.informer_or_metadata(CONFIGMAPS)
    assert isinstance(view, informerscope.InformerView) and view.shared is full
    assert scope.informer_or_metadata(NAMESPACES).metadata_only
