"""The generic registry over the SQLite store: what its writes leave in the watch cache.

A write's object is handed to the watch cache rather than decoded again; these
tests pin that the cache then holds exactly what decoding the stored bytes would
give (types and key order included), that every write path hands over or
withdraws its offer, and that deletes answer with the object as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from pilothouse.api import errors, resources
from pilothouse.apiserver import cacheentry, watchcache
from pilothouse.apiserver.admission import chain as admission_chain
from pilothouse.apiserver.admission import namespace_lifecycle
from pilothouse.apiserver.registry import deletion, strategies
from pilothouse.apiserver.registry.store import ResourceStore
from pilothouse.storage import sqlite

Obj = dict[str, Any]


class Registry:
    """A store, its watch cache and the ResourceStores of a few kinds."""

    def __init__(self, store: sqlite.SQLiteStore, cache: watchcache.WatchCache) -> None:
        self.store = store
        self.cache = cache
        self.by_plural: dict[str, ResourceStore] = {}
        deps = admission_chain.Deps(
            registry=resources.DEFAULT,
            cache=cache,
            store_for=lambda group, plural: self.by_plural[plural],
        )
        chain = admission_chain.Chain([namespace_lifecycle.NamespaceLifecycle(deps)])
        for group, plural in (("", "namespaces"), ("", "configmaps"), ("", "pods")):
            r = resources.DEFAULT.by_path(group, "v1", plural)
            assert r is not None
            self.by_plural[plural] = ResourceStore(
                resource=r,
                strategy=strategies.for_resource(r, resources.DEFAULT),
                store=store,
                cache=cache,
                admission=chain,
            )

    def cached(self, plural: str, namespace: str, name: str) -> cacheentry.Entry:
        rs = self.by_plural[plural]
        return rs.cache.objects[rs.key(namespace, name)]

    async def stored(self, plural: str, namespace: str, name: str) -> Obj:
        """The object as decoding the store's bytes gives it."""
        kv = await self.store.get(self.by_plural[plural].key(namespace, name))
        assert kv is not None
        return cacheentry.decode(kv).whole()


@pytest.fixture
async def reg(tmp_path: Path) -> AsyncIterator[Registry]:
    store = sqlite.SQLiteStore(tmp_path / "db.sqlite", compact_interval=0)
    await store.start()
    prefixes = [r.storage_prefix for r in resources.DEFAULT.resources if r.stored]
    cache = watchcache.WatchCache(store, prefixes)
    await cache.start()
    out = Registry(store, cache)
    await out.by_plural["namespaces"].create(
        "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
    )
    yield out
    await cache.stop()
    await store.close()


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types and key order all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _adopted(entry: cacheentry.Entry, written: Obj) -> bool:
    """The cache holds what was written, not a decoding of it: the written object's
    own values, its metadata copied without the managedFields it keeps apart."""
    if "managedFields" in entry.obj["metadata"] or entry.managed is None:
        return False
    shared = all(entry.obj[k] is v for k, v in written.items() if k != "metadata")
    return shared and _same(entry.whole(), written)


def _pod(name: str, **meta: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "a"}, **meta},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "ports": [{"containerPort": 80}],
                    "resources": {"requests": {"cpu": "0.1", "memory": "64Mi"}},
                }
            ]
        },
    }


async def test_a_created_object_is_the_one_the_cache_keeps(reg: Registry) -> None:
    pods = reg.by_plural["pods"]
    created = await pods.create("ns", _pod("p"), manager="test")
    entry = reg.cached("pods", "ns", "p")
    assert _adopted(entry, created)  # handed over, not decoded again
    assert created["metadata"]["resourceVersion"] == str(entry.revision)
    assert _same(created, await reg.stored("pods", "ns", "p"))
    assert orjson.dumps(created) == orjson.dumps(await reg.stored("pods", "ns", "p"))
    assert not reg.cache._writing


async def test_managed_fields_are_encoded_once_for_the_store_and_the_cache(
    reg: Registry,
) -> None:
    pods = reg.by_plural["pods"]

    async def check(obj: Obj) -> None:
        entry = reg.cached("pods", "ns", "p")
        assert entry.managed is not None
        # The cache's bytes are the encoding of what was written, found verbatim inside
        # the stored value, and the entry puts them back where they were.
        assert entry.managed == orjson.dumps(obj["metadata"]["managedFields"])
        kv = await reg.store.get(pods.key("ns", "p"))
        assert kv is not None and b'"managedFields":' + entry.managed in kv.value
        assert list(entry.whole()["metadata"]) == list(obj["metadata"])
        assert _same(entry.whole(), obj)

    await check(await pods.create("ns", _pod("p"), manager="test"))
    updated, _ = await pods.update("ns", "p", _pod("p", labels={"b": "c"}), manager="m")
    assert sorted(e["manager"] for e in updated["metadata"]["managedFields"]) == ["m", "test"]
    await check(updated)


async def test_updates_hand_over_their_objects_too(reg: Registry) -> None:
    cms = reg.by_plural["configmaps"]
    base: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    await cms.create("ns", {**base, "data": {"v": "0"}}, manager="test")
    updated, created = await cms.update("ns", "c", {**base, "data": {"v": "1"}}, manager="m2")
    assert not created
    assert _adopted(reg.cached("configmaps", "ns", "c"), updated)
    assert _same(updated, await reg.stored("configmaps", "ns", "c"))

    async def label(obj: Obj) -> Obj:
        obj["metadata"].setdefault("labels", {})["x"] = "y"
        return obj

    patched = await cms.guaranteed_update("ns", "c", label, manager="m3")
    assert _adopted(reg.cached("configmaps", "ns", "c"), patched)
    assert _same(patched, await reg.stored("configmaps", "ns", "c"))
    assert not reg.cache._writing


async def test_failed_and_concurrent_writes_leave_no_offer_behind(reg: Registry) -> None:
    pods = reg.by_plural["pods"]
    results = await asyncio.gather(
        *(pods.create("ns", _pod("same"), manager="test") for _ in range(5)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1
    assert all(
        isinstance(r, errors.StatusError) and r.code == 409 for r in results if r not in winners
    )
    # Racing offers for one key replace each other: the winner's may have been
    # decoded instead, which must make no difference.
    assert _same(reg.cached("pods", "ns", "same").whole(), winners[0])
    stale: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "same"}}
    stale["metadata"]["resourceVersion"] = "1"
    with pytest.raises(errors.StatusError):
        await pods.update("ns", "same", stale, manager="test")
    generated = await asyncio.gather(
        *(pods.create("ns", _pod("", generateName="g-"), manager="t") for _ in range(20))
    )
    for obj in generated:
        assert _adopted(reg.cached("pods", "ns", obj["metadata"]["name"]), obj)
    assert not reg.cache._writing
    assert _same(winners[0], await reg.stored("pods", "ns", "same"))


async def test_delete_answers_with_the_object_at_the_deletion_revision(reg: Registry) -> None:
    cms = reg.by_plural["configmaps"]
    base: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}
    created = await cms.create("ns", {**base, "data": {"v": "0"}}, manager="test")
    snapshot = orjson.dumps(created)
    gone, removed = await cms.delete("ns", "d", deletion.Options())
    assert removed
    rv = gone["metadata"]["resourceVersion"]
    assert int(rv) > int(created["metadata"]["resourceVersion"])
    assert orjson.dumps(created) == snapshot  # the cached object was not touched
    expected = orjson.loads(snapshot)
    expected["metadata"]["resourceVersion"] = rv
    assert orjson.dumps(gone) == orjson.dumps(expected)


async def test_an_update_that_builds_beside_the_cached_object_leaves_it_as_it_was(
    reg: Registry,
) -> None:
    # ``in_place=False`` (a binding's way): the mutate function is given the cached
    # object itself, not a copy, and builds the new one beside it.
    pods = reg.by_plural["pods"]
    await pods.create("ns", _pod("p"), manager="test")
    before = reg.cached("pods", "ns", "p")
    snapshot = orjson.dumps(before.obj)
    given: list[Obj] = []

    async def bind(pod: Obj) -> Obj:
        given.append(pod)
        md = {k: v for k, v in pod["metadata"].items() if k != "resourceVersion"}
        return {**pod, "metadata": md, "spec": {**pod["spec"], "nodeName": "n1"}}

    bound = await pods.guaranteed_update(
        "ns", "p", bind, subresource="binding", manager="sched", in_place=False
    )
    assert given[0]["spec"] is before.obj["spec"]  # the cached object, not a copy
    assert orjson.dumps(before.obj) == snapshot  # the earlier version is untouched
    assert "nodeName" not in before.obj["spec"]
    assert bound["spec"]["nodeName"] == "n1"
    after = reg.cached("pods", "ns", "p")
    assert after.revision > before.revision and after.obj["spec"]["nodeName"] == "n1"
    assert _same(bound, await reg.stored("pods", "ns", "p"))
    # The containers were not copied: the new version shares them with the old one.
    assert after.obj["spec"]["containers"] is before.obj["spec"]["containers"]
