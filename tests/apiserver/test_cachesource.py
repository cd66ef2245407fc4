"""Informers of the server's own process reading its watch cache (apiserver/cachesource):
the cache's very objects, events in order, selectors, re-list after the cache rebuilt
itself, the mutation detector, and what is declined (conversion, RBAC)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from pilothouse import supervisor as supervision
from pilothouse import testing
from pilothouse.api import errors, meta, rbac, resources
from pilothouse.apiserver import cachesource
from pilothouse.apiserver.authn import user as user_module
from pilothouse.client import informer, rest

CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")
NAMESPACES = resources.DEFAULT.by_path("", "v1", "namespaces")
SECRETS = resources.DEFAULT.by_path("", "v1", "secrets")
EVENTS_V1 = resources.DEFAULT.by_path("events.k8s.io", "v1", "events")
assert CONFIGMAPS and NAMESPACES and SECRETS and EVENTS_V1

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.ServerThread]:
    with testing.ServerThread(tmp_path_factory.mktemp("cachesource") / "data") as s:
        yield s


def source(srv: testing.ServerThread, user: str = rbac.KUBE_CONTROLLER_MANAGER) -> Any:
    assert srv.server.identity is not None
    return cachesource.CacheSource(
        registry=srv.server.registry,
        stores=srv.server.stores,
        authorizer=srv.server.identity.authorizer,
        user=user_module.UserInfo(user),
    )


def run(srv: testing.ServerThread, body: Callable[[rest.Client], Awaitable[None]]) -> None:
    """Run ``body`` on the server's loop (where the cache lives) with a client of it."""

    async def wrapped() -> None:
        client = srv.cluster.client("test-cachesource")
        try:
            await body(client)
        finally:
            srv.cluster.clients.remove(client)
            await client.close()

    srv.call(wrapped(), timeout=60)


async def namespace(client: rest.Client) -> str:
    name = "cs-" + uuid.uuid4().hex[:8]
    assert NAMESPACES is not None
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    return name


async def until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cached_entry(srv: testing.ServerThread, ns: str, name: str) -> Obj:
    assert CONFIGMAPS is not None
    store = srv.server.stores[CONFIGMAPS]
    return store.cache.objects[CONFIGMAPS.key(ns, name)].obj


def test_an_informer_holds_the_caches_own_objects_and_sees_every_event_in_order(
    srv: testing.ServerThread,
) -> None:
    async def body(client: rest.Client) -> None:
        assert CONFIGMAPS is not None
        ns = await namespace(client)
        await client.create(CONFIGMAPS, {"metadata": {"name": "before"}}, ns)
        inf = informer.Informer(client, CONFIGMAPS, namespace=ns, local=source(srv))
        seen: list[tuple[str, str, str]] = []
        inf.add_handlers(
            on_add=lambda o: seen.append(("add", o["metadata"]["name"], str(o.get("data")))),
            on_update=lambda _, o: seen.append(
                ("update", o["metadata"]["name"], str(o.get("data")))
            ),
            on_delete=lambda o: seen.append(("delete", o["metadata"]["name"], "")),
        )
        async with supervision.Supervisor("t") as sup:
            inf.start(sup)
            await inf.wait_synced(10)
            assert inf.served_locally
            assert inf.indexer.get(f"{ns}/before") is cached_entry(srv, ns, "before")
            await client.create(CONFIGMAPS, {"metadata": {"name": "a"}, "data": {"k": "1"}}, ns)
            for value in ("2", "3"):
                live = await client.get(CONFIGMAPS, "a", ns)
                await client.update(CONFIGMAPS, {**live, "data": {"k": value}})
            await client.delete(CONFIGMAPS, "a", ns)
            await until(lambda: ("delete", "a", "") in seen, "the delete")
            # (kube-root-ca.crt comes and changes too: the identity controllers run.)
            assert [e for e in seen if e[1] != "kube-root-ca.crt"] == [
                ("add", "before", "None"),
                ("add", "a", "{'k': '1'}"),
                ("update", "a", "{'k': '2'}"),
                ("update", "a", "{'k': '3'}"),
                ("delete", "a", ""),
            ]
            assert inf.lists == 1
            # The resourceVersion it resumes from is the last event's.
            assert int(inf.resource_version) >= int(
                cached_entry(srv, ns, "before")["metadata"]["resourceVersion"]
            )
            await inf.stop()

    run(srv, body)


def test_selectors_narrow_the_watch_as_over_http(srv: testing.ServerThread) -> None:
    async def body(client: rest.Client) -> None:
        assert CONFIGMAPS is not None
        ns = await namespace(client)
        labelled = informer.Informer(
            client, CONFIGMAPS, namespace=ns, label_selector="app=x", local=source(srv)
        )
        named = informer.Informer(
            client, CONFIGMAPS, field_selector=f"metadata.name=n,metadata.namespace={ns}",
            local=source(srv),
        )  # fmt: skip
        events: list[str] = []
        labelled.add_handlers(
            on_add=lambda o: events.append("add " + o["metadata"]["name"]),
            on_delete=lambda o: events.append("delete " + o["metadata"]["name"]),
        )
        async with supervision.Supervisor("t") as sup:
            labelled.start(sup)
            named.start(sup)
            await labelled.wait_synced(10)
            await named.wait_synced(10)
            assert labelled.served_locally and named.served_locally
            await client.create(CONFIGMAPS, {"metadata": {"name": "n"}}, ns)
            await client.create(CONFIGMAPS, {"metadata": {"name": "m", "labels": {"app": "x"}}}, ns)
            await until(lambda: "add m" in events, "the labelled add")
            # A label removed: the object leaves the selection (a DELETED, as upstream).
            live = await client.get(CONFIGMAPS, "m", ns)
            await client.update(
                CONFIGMAPS, {**live, "metadata": {**live["metadata"], "labels": {}}}
            )
            await until(lambda: "delete m" in events, "the labelled object leaving")
            assert events == ["add m", "delete m"]
            assert labelled.indexer.list() == []
            assert [o["metadata"]["name"] for o in named.indexer.list()] == ["n"]
            await labelled.stop()
            await named.stop()

    run(srv, body)


def test_a_rebuilt_cache_ends_the_watch_and_the_informer_lists_again(
    srv: testing.ServerThread,
) -> None:
    assert srv.server.cache is not None
    cache = srv.server.cache

    async def body(client: rest.Client) -> None:
        assert CONFIGMAPS is not None
        ns = await namespace(client)
        inf = informer.Informer(client, CONFIGMAPS, namespace=ns, local=source(srv))
        deleted: list[str] = []
        inf.add_handlers(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
        await client.create(CONFIGMAPS, {"metadata": {"name": "gone"}}, ns)
        async with supervision.Supervisor("t") as sup:
            inf.start(sup)
            await inf.wait_synced(10)
            before = cache.resyncs
            # The feeder fails; while it is away (its restart back-off) objects change.
            srv.cluster.supervisor.inject_failure("apiserver/watch-cache")
            await client.delete(CONFIGMAPS, "gone", ns)
            await client.create(CONFIGMAPS, {"metadata": {"name": "new"}}, ns)
            await until(lambda: cache.resyncs > before, "the feeder's fresh listing")
            await until(lambda: inf.indexer.get(f"{ns}/new") is not None, "the new object")
            # The informer resumed past a gap in the cache's history: it listed again,
            # and the object deleted meanwhile was reported gone.
            assert inf.lists == 2
            assert deleted == ["gone"]
            assert inf.indexer.get(f"{ns}/new") is cached_entry(srv, ns, "new")
            await inf.stop()

    run(srv, body)


def test_a_resume_older_than_the_window_is_410(srv: testing.ServerThread) -> None:
    async def body(client: rest.Client) -> None:
        assert CONFIGMAPS is not None
        lw = source(srv).list_watch(CONFIGMAPS, namespace="", label_selector="", field_selector="")
        assert lw is not None
        floor = srv.server.stores[CONFIGMAPS].cache.floor
        assert floor > 0  # the server's bootstrap wrote configmaps before the cache started
        with pytest.raises(errors.StatusError) as exc:
            await anext(aiter(lw.watch(str(floor - 1))))
        assert errors.is_gone(exc.value)

    run(srv, body)


def test_the_mutation_detector_covers_the_shared_objects(
    srv: testing.ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(informer.MUTATION_DETECTOR_ENV, "true")

    async def body(client: rest.Client) -> None:
        assert CONFIGMAPS is not None
        ns = await namespace(client)
        await client.create(CONFIGMAPS, {"metadata": {"name": "m"}, "data": {"k": "v"}}, ns)
        inf = informer.Informer(client, CONFIGMAPS, namespace=ns, local=source(srv))
        async with supervision.Supervisor("t") as sup:
            inf.start(sup)
            await inf.wait_synced(10)
            cached = inf.indexer.get(f"{ns}/m")
            assert cached is not None and inf.served_locally
            cached["data"]["k"] = "changed in place"  # what a consumer must never do
            live = meta.deep_copy(cached)
            live["data"] = {"k": "updated"}
            await client.update(CONFIGMAPS, live)
            await until(
                lambda: (inf.indexer.get(f"{ns}/m") or {}).get("data") == {"k": "updated"},
                "the update",
            )
            assert inf.mutations == [f"{ns}/m"]
            await inf.stop()

    run(srv, body)


def test_what_the_source_declines(srv: testing.ServerThread) -> None:
    assert CONFIGMAPS and SECRETS and EVENTS_V1
    controller_manager = source(srv)
    args: dict[str, str] = {"namespace": "", "label_selector": "", "field_selector": ""}
    assert controller_manager.list_watch(CONFIGMAPS, **args) is not None
    # Served in another shape than stored: conversion belongs to the API.
    assert controller_manager.list_watch(EVENTS_V1, **args) is None
    # An identity RBAC does not let list and watch a resource reads it through the API.
    assert source(srv, "somebody").list_watch(CONFIGMAPS, **args) is None
    assert not source(srv, rbac.KUBE_SCHEDULER).allowed(SECRETS, "")
    assert source(srv, rbac.KUBE_SCHEDULER).allowed(resources.DEFAULT.by_path("", "v1", "pods"), "")
    # A selector the API would refuse: the informer gets the API's answer.
    bad = {**args, "field_selector": "no.such.field=1"}
    assert controller_manager.list_watch(CONFIGMAPS, **bad) is None


def test_the_all_in_one_servers_informers_read_its_watch_cache(
    cluster_server: testing.ServerThread,
) -> None:
    informers = cluster_server.cluster.informers
    assert informers is not None
    made = informers.informers()
    assert made
    deadline = time.monotonic() + 20
    while not all(inf.has_synced() for inf in made):
        assert time.monotonic() < deadline, [inf.name for inf in made if not inf.has_synced()]
        time.sleep(0.05)
    server = cluster_server.server
    for inf in made:
        r = inf.resource
        store = server.stores.get(server.registry.by_path(r.group, r.version, r.plural))  # type: ignore[arg-type]
        expected = store is not None and store.convert is None and store.remote is None
        assert inf.served_locally == expected, inf.name
        if inf.served_locally:
            # Handed over as they are: no kind stamped in, no managedFields to trim.
            for obj in inf.indexer.list():
                assert obj["kind"] == r.kind and obj["apiVersion"] == r.api_version, inf.name
                assert "managedFields" not in obj["metadata"], inf.name
    assert any(inf.served_locally for inf in made)
    ns = informers.informer(NAMESPACES)  # type: ignore[arg-type]
    entry = cluster_server.server.stores[NAMESPACES].cache.objects["/registry/namespaces/default"]  # type: ignore[index]
    assert ns.indexer.get("default") is entry.obj


def test_a_backlog_is_handed_over_in_slices_in_order(
    srv: testing.ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cachesource, "WATCH_SLICE", 2)

    async def body(client: rest.Client) -> None:
        assert CONFIGMAPS is not None
        ns = await namespace(client)
        lw = source(srv).list_watch(CONFIGMAPS, namespace=ns, label_selector="", field_selector="")
        assert lw is not None
        _, rv = await lw.listing()
        for i in range(5):
            await client.create(CONFIGMAPS, {"metadata": {"name": f"c{i}"}}, ns)
        # Registered after the five writes: all five are its first backlog.
        stream = lw.watch(rv)
        batches: list[list[str]] = []
        async for batch in stream:
            batches.append(
                [
                    o["metadata"]["name"]
                    for _, o in batch
                    if o["metadata"]["name"] != "kube-root-ca.crt"
                ]
            )
            if sum(len(b) for b in batches) >= 5:
                break
        await stream.aclose()
        assert [n for b in batches for n in b] == [f"c{i}" for i in range(5)]
        assert all(len(b) <= 2 for b in batches) and len(batches) >= 3

    run(srv, body)
