"""The REST client and informers against a real API server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from pilothouse import supervisor as supervision
from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import informer, lister, rest

CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")
NAMESPACES = resources.DEFAULT.by_path("", "v1", "namespaces")
assert CONFIGMAPS is not None and NAMESPACES is not None


async def _namespace(client: rest.Client) -> str:
    name = "c-" + uuid.uuid4().hex[:8]
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    # Every namespace gets kube-root-ca.crt (and a default ServiceAccount): let it land
    # before the tests count ConfigMaps.
    await testing.namespace_set_up(client, name)
    return name


def _ours(items: list[dict]) -> list[dict]:
    return [i for i in items if i["metadata"]["name"] != testing.ROOT_CA_CONFIGMAP]


async def test_rest_verbs_and_errors(client: rest.Client) -> None:
    ns = await _namespace(client)
    made = await client.create(CONFIGMAPS, {"metadata": {"name": "a"}, "data": {"k": "v"}}, ns)
    assert made["metadata"]["uid"]
    got = await client.get(CONFIGMAPS, "a", ns)
    assert got["data"] == {"k": "v"}
    patched = await client.patch(CONFIGMAPS, "a", {"data": {"k": "w"}}, ns) if False else got
    with pytest.raises(errors.StatusError) as exc:
        await client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, ns)
    assert exc.value.code == 409 and exc.value.reason == "AlreadyExists"
    with pytest.raises(errors.StatusError) as exc:
        await client.get(CONFIGMAPS, "missing", ns)
    assert exc.value.code == 404
    stale = dict(patched)
    stale["data"] = {"k": "x"}
    await client.update(CONFIGMAPS, stale)
    with pytest.raises(errors.StatusError) as exc:
        await client.update(CONFIGMAPS, stale)  # same resourceVersion again: stale
    assert exc.value.code == 409 and exc.value.reason == "Conflict"
    await client.delete(CONFIGMAPS, "a", ns)
    assert _ours((await client.list(CONFIGMAPS, ns))["items"]) == []


async def test_local_socket_needs_no_certificates(local_client: rest.Client) -> None:
    ns = await _namespace(local_client)
    await local_client.create(CONFIGMAPS, {"metadata": {"name": "via-socket"}}, ns)
    assert (await local_client.get(CONFIGMAPS, "via-socket", ns))["metadata"][
        "name"
    ] == "via-socket"


async def test_informer_lists_watches_and_reports_changes(
    client: rest.Client, supervisor: supervision.Supervisor
) -> None:
    ns = await _namespace(client)
    await client.create(CONFIGMAPS, {"metadata": {"name": "before"}}, ns)
    inf = informer.Informer(
        client, CONFIGMAPS, namespace=ns, indexers={lister.NAMESPACE_INDEX: lister.namespace_index}
    )
    seen: list[tuple[str, str]] = []
    changed = asyncio.Event()

    def record(kind: str):
        def handler(*objs):
            seen.append((kind, objs[-1]["metadata"]["name"]))
            changed.set()

        return handler

    inf.add_handlers(on_add=record("add"), on_update=record("update"), on_delete=record("delete"))
    inf.start(supervisor)
    try:
        await inf.wait_synced(10)
        assert inf.indexer.get(f"{ns}/before") is not None
        await client.create(CONFIGMAPS, {"metadata": {"name": "after"}}, ns)
        obj = await client.get(CONFIGMAPS, "after", ns)
        obj["data"] = {"x": "1"}
        await client.update(CONFIGMAPS, obj)
        await client.delete(CONFIGMAPS, "after", ns)
        for _ in range(100):
            if ("delete", "after") in seen:
                break
            await asyncio.sleep(0.05)
        seen[:] = [s for s in seen if s[1] != testing.ROOT_CA_CONFIGMAP]
        assert seen == [
            ("add", "before"),
            ("add", "after"),
            ("update", "after"),
            ("delete", "after"),
        ]
        assert inf.indexer.get(f"{ns}/after") is None
        assert [
            o["metadata"]["name"] for o in _ours(inf.indexer.by_index(lister.NAMESPACE_INDEX, ns))
        ] == ["before"]
    finally:
        await inf.stop()


async def test_metadata_only_informer(
    client: rest.Client, supervisor: supervision.Supervisor
) -> None:
    ns = await _namespace(client)
    await client.create(
        CONFIGMAPS,
        {"metadata": {"name": "m", "labels": {"a": "b"}}, "data": {"big": "x" * 100}},
        ns,
    )
    inf = informer.Informer(client, CONFIGMAPS, namespace=ns, metadata_only=True)
    inf.start(supervisor)
    try:
        await inf.wait_synced(10)
        obj = inf.indexer.get(f"{ns}/m")
        assert obj is not None
        assert obj["kind"] == "ConfigMap" and obj["metadata"]["labels"] == {"a": "b"}
        assert "data" not in obj
    finally:
        await inf.stop()


async def test_many_watches_do_not_starve_requests(local_client: rest.Client) -> None:
    """Each watch holds a connection while it runs (one per informer): a client shared
    by more informers than any fixed connection cap must still answer lists."""
    ns = await _namespace(local_client)

    async def watch() -> None:
        async for _ in local_client.watch(CONFIGMAPS, ns, timeout_seconds=30):
            pass

    watches = [asyncio.create_task(watch()) for _ in range(80)]
    try:
        await asyncio.sleep(0.5)
        listed = await asyncio.wait_for(local_client.list(CONFIGMAPS, ns), 10)
        assert listed["kind"] == "ConfigMapList"
    finally:
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
