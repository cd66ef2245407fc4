"""Paged lists (limit and continue) over the SQLite store and its watch cache.

A first page takes a snapshot of the resource; its continue token serves the rest
of that very list however the resource changes meanwhile, from the snapshot while
it is kept and from the store's log after, until the store compacts that revision
(410 Gone). These tests pin what a client sees either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse.api import errors, meta, resources
from pilothouse.apiserver import listsnapshots, watchcache
from pilothouse.apiserver.registry import listing, strategies
from pilothouse.apiserver.registry.store import ResourceStore
from pilothouse.storage import sqlite

Obj = dict[str, Any]
CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")
assert CONFIGMAPS is not None


class Setup:
    def __init__(self, store: sqlite.SQLiteStore, cache: watchcache.WatchCache) -> None:
        self.store = store
        self.cache = cache
        assert CONFIGMAPS is not None
        self.cms = ResourceStore(
            resource=CONFIGMAPS,
            strategy=strategies.for_resource(CONFIGMAPS, resources.DEFAULT),
            store=store,
            cache=cache,
        )

    async def create(self, ns: str, name: str, **labels: str) -> Obj:
        return await self.cms.create(
            ns, {"metadata": {"name": name, "labels": labels}, "data": {"k": name}}
        )

    async def pages(
        self, ns: str, limit: int, *, match: listing.Match | None = None, between: Any = None
    ) -> list[listing.ListPage]:
        """Every page of one list, calling ``between(i)`` after page i."""
        out = []
        token = ""
        while True:
            page = await self.cms.list(
                ns, listing.ListOptions(match=match, limit=limit, continue_token=token)
            )
            out.append(page)
            if between is not None:
                await between(len(out) - 1)
            token = page.continue_token
            if not token:
                return out


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    store = sqlite.SQLiteStore(tmp_path / "db.sqlite", compact_interval=0)
    await store.start()
    cache = watchcache.WatchCache(
        store, [r.storage_prefix for r in resources.DEFAULT.resources if r.stored]
    )
    await cache.start()
    yield Setup(store, cache)
    await cache.stop()
    await store.close()


def _names(pages: list[listing.ListPage]) -> list[str]:
    return [e.obj["metadata"]["name"] for p in pages for e in p.entries]


async def test_pages_visit_the_list_as_of_the_first_page_whatever_changes_meanwhile(
    setup: Setup,
) -> None:
    for i in range(10):
        await setup.create("a", f"cm-{i:02}")
    await setup.create("b", "other")  # another namespace's keys sort after: never listed
    before = {
        e.obj["metadata"]["name"]: e.obj["metadata"]["resourceVersion"]
        for e in setup.cms.cache.objects.values()
    }

    async def write(i: int) -> None:
        # Between pages: a new object, a deleted one not yet listed, an updated one.
        await setup.create("a", f"cm-{i:02}-new")
        if i == 0:
            await setup.cms.delete("a", "cm-08")
            cm = meta.deep_copy(setup.cms.cache.objects[setup.cms.key("a", "cm-09")].obj)
            cm["data"] = {"k": "changed"}
            await setup.cms.update("a", "cm-09", cm)

    pages = await setup.pages("a", 3, between=write)
    assert _names(pages) == [f"cm-{i:02}" for i in range(10)]
    # Each object as it was when the list began, at the first page's revision.
    assert {p.resource_version for p in pages} == {pages[0].resource_version}
    for e in (e for p in pages for e in p.entries):
        assert e.obj["metadata"]["resourceVersion"] == before[e.obj["metadata"]["name"]]
    last = pages[-1].entries[-1].obj
    assert last["data"] == {"k": "cm-09"}
    assert [p.remaining for p in pages] == [7, 4, 1, None]
    # A new list sees the changes.
    fresh = _names(await setup.pages("a", 100))
    assert "cm-08" not in fresh and "cm-00-new" in fresh


async def test_a_continue_token_outliving_its_snapshot_is_served_from_the_store(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(6):
        await setup.create("a", f"cm-{i}")

    async def write_and_forget_snapshots(i: int) -> None:
        await setup.create("a", f"cm-{i}-late")
        setup.cms.cache.snapshots.clear()

    from_store = await setup.pages("a", 2, between=write_and_forget_snapshots)
    assert _names(from_store) == [f"cm-{i}" for i in range(6)]
    assert [p.remaining for p in from_store] == [4, 2, None]


async def test_pages_with_a_selector_and_no_count(setup: Setup) -> None:
    for i in range(9):
        await setup.create("a", f"cm-{i}", parity="even" if i % 2 == 0 else "odd")

    def even(obj: Obj) -> bool:
        return bool(obj["metadata"].get("labels", {}).get("parity") == "even")

    pages = await setup.pages("a", 2, match=even)
    assert _names(pages) == ["cm-0", "cm-2", "cm-4", "cm-6", "cm-8"]
    # The count of what remains is not known without reading it all (upstream omits it).
    assert [p.remaining for p in pages] == [None, None, None]
    # No empty last page: a token only when another matching object follows.
    assert [len(p.entries) for p in pages] == [2, 2, 1]


async def test_an_unchanged_resource_shares_one_snapshot(setup: Setup) -> None:
    for i in range(4):
        await setup.create("a", f"cm-{i}")
    await setup.pages("a", 3)
    await setup.pages("a", 3)
    assert len(setup.cms.cache.snapshots) == 1
    await setup.create("a", "cm-9")
    await setup.pages("a", 3)
    assert len(setup.cms.cache.snapshots) == 2
    assert len(setup.cms.cache.snapshots) <= listsnapshots.PER_RESOURCE


async def test_snapshots_expire(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(4):
        await setup.create("a", f"cm-{i}")
    first = (await setup.pages("a", 3))[0]
    assert len(setup.cms.cache.snapshots) == 1
    monkeypatch.setattr(listsnapshots, "TTL", -1.0)
    assert setup.cms.cache.snapshot_at(int(first.resource_version)) is None
    assert len(setup.cms.cache.snapshots) == 0


async def test_an_expired_continue_token_is_gone(setup: Setup) -> None:
    for i in range(4):
        await setup.create("a", f"cm-{i}")
    first = await setup.cms.list("a", listing.ListOptions(limit=2))
    assert first.continue_token
    for i in range(3):
        await setup.create("a", f"later-{i}")
    await setup.store.compact(setup.store.current_revision())
    # Even while its snapshot is still kept: the token names a compacted revision.
    assert len(setup.cms.cache.snapshots) == 1
    with pytest.raises(errors.StatusError) as exc:
        await setup.cms.list("a", listing.ListOptions(limit=2, continue_token=first.continue_token))
    assert exc.value.code == 410 and exc.value.reason == "Expired"
    assert exc.value.message == listing.EXPIRED_CONTINUE


async def test_resource_version_match_exact_lists_a_past_revision(setup: Setup) -> None:
    await setup.create("a", "one")
    past = (await setup.cms.list("a", listing.ListOptions())).resource_version
    await setup.create("a", "two")
    exact = await setup.cms.list(
        "a", listing.ListOptions(resource_version=past, resource_version_match="Exact")
    )
    assert [e.obj["metadata"]["name"] for e in exact.entries] == ["one"]
    assert exact.resource_version == past
    newer = await setup.cms.list(
        "a", listing.ListOptions(resource_version=past, resource_version_match="NotOlderThan")
    )
    assert [e.obj["metadata"]["name"] for e in newer.entries] == ["one", "two"]
    # Exact with a limit pages the past revision.
    paged = await setup.cms.list(
        "a", listing.ListOptions(resource_version=past, resource_version_match="Exact", limit=1)
    )
    assert [e.obj["metadata"]["name"] for e in paged.entries] == ["one"]
    assert paged.continue_token == ""


async def test_a_snapshot_the_resource_moved_far_from_is_dropped(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listsnapshots, "STALE_CHANGES", 3)
    for i in range(4):
        await setup.create("a", f"cm-{i}")
    first = await setup.cms.list("a", listing.ListOptions(limit=2))
    for i in range(3):
        await setup.create("a", f"later-{i}")
    assert setup.cms.cache.snapshot_at(int(first.resource_version)) is not None
    await setup.create("a", "one-too-many")
    assert len(setup.cms.cache.snapshots) == 0
    # Its list goes on from the store's log, the same as it began.
    rest = await setup.cms.list(
        "a", listing.ListOptions(limit=2, continue_token=first.continue_token)
    )
    assert [e.obj["metadata"]["name"] for e in rest.entries] == ["cm-2", "cm-3"]
    assert rest.continue_token == ""
