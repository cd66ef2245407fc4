"""``GET /history/<object path>``: answers, errors as Status, and who may read it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, rest

R = resources.DEFAULT
NAMESPACES = R.by_path("", "v1", "namespaces")
CONFIGMAPS = R.by_path("", "v1", "configmaps")


@pytest.fixture
async def admin(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    async with rest.Client(config.local_socket(api_server.server.socket_path)) as c:
        yield c


async def test_revisions_with_origins(admin: rest.Client) -> None:
    ns = "hist-" + uuid.uuid4().hex[:6]
    await admin.create(NAMESPACES, {"metadata": {"name": ns}})
    await admin.request(
        "POST",
        rest.resource_path(CONFIGMAPS, ns),
        params={"fieldManager": "maker"},
        body={"metadata": {"name": "c"}, "data": {"k": "1"}},
    )
    await admin.request(
        "PATCH",
        rest.resource_path(CONFIGMAPS, ns, "c"),
        params={"fieldManager": "applier", "force": "true"},
        body=b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: '2'\n",
        content_type="application/apply-patch+yaml",
    )
    await admin.delete(CONFIGMAPS, "c", ns)
    doc = await admin.request("GET", "/history" + rest.resource_path(CONFIGMAPS, ns, "c"))
    assert doc["kind"] == "ObjectHistory" and doc["apiVersion"] == "history.pilothouse.dev/v1"
    assert doc["metadata"] == {"name": "c", "namespace": ns}
    assert doc["retentionSeconds"] == 24 * 3600
    got = [
        (r["manager"], r["operation"], r["deleted"], r["object"]["data"]["k"])
        for r in doc["revisions"]
    ]
    assert got == [
        ("maker", "Update", False, "1"),
        ("applier", "Apply", False, "2"),
        ("pilothouse", "Delete", True, "2"),  # the client's default manager (its User-Agent)
    ]
    assert {r["user"] for r in doc["revisions"]} == {"system:apiserver"}  # the private socket
    first = doc["revisions"][0]["object"]
    assert first["apiVersion"] == "v1" and first["kind"] == "ConfigMap"
    assert first["metadata"]["resourceVersion"] == doc["revisions"][0]["resourceVersion"]


async def test_bad_paths_are_statuses(admin: rest.Client) -> None:
    with pytest.raises(errors.StatusError) as collection:
        await admin.request("GET", "/history/api/v1/namespaces/default/configmaps")
    assert collection.value.code == 400
    assert "history is kept per object" in collection.value.message
    with pytest.raises(errors.StatusError) as unknown:
        await admin.request("GET", "/history/api/v1/namespaces/default/frobs/x")
    assert unknown.value.code == 404
    with pytest.raises(errors.StatusError) as never:
        await admin.request("GET", "/history/api/v1/namespaces/default/configmaps/never-was")
    assert (never.value.code, never.value.message) == (404, 'configmaps "never-was" not found')
    with pytest.raises(errors.StatusError) as post:
        await admin.request("POST", "/history/api/v1/namespaces/default/configmaps/x", body={})
    assert post.value.code == 405


async def test_anonymous_is_refused_like_a_get(api_server: testing.ServerThread) -> None:
    pki = api_server.server.pki
    assert pki is not None
    cfg = config.ClusterConfig(server=api_server.url, ca_data=pki.ca_cert.read_bytes())
    async with rest.Client(cfg) as anonymous:
        with pytest.raises(errors.StatusError) as refused:
            await anonymous.request("GET", "/history/api/v1/namespaces/default/secrets/x")
    assert refused.value.code == 403
    assert refused.value.message == (
        'secrets "x" is forbidden: User "system:anonymous" cannot get resource "secrets" in'
        ' API group "" in the namespace "default"'
    )


async def test_a_datastore_without_history_says_so(tmp_path: Path) -> None:
    with testing.server_thread(tmp_path / "data", datastore_endpoint="memory://") as srv:
        async with rest.Client(config.local_socket(srv.server.socket_path)) as c:
            with pytest.raises(errors.StatusError) as off:
                await c.request("GET", "/history/api/v1/namespaces/default")
    assert off.value.code == 405
    assert "keeps no object history" in off.value.message


async def test_the_pages_are_public(api_server: testing.ServerThread) -> None:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as s,
        s.get(api_server.url + "/ui/") as resp,
    ):
        assert resp.status == 200
        assert "<title>pilothouse</title>" in await resp.text()
