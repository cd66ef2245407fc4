"""The registry client against small stub servers: schemes, auth flows, verification, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import content, mediatypes, pull, reference, registry

MANIFEST = orjson.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {"mediaType": mediatypes.OCI_CONFIG, "digest": "sha256:" + "0" * 64, "size": 2},
        "layers": [],
    }
)

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_schemes() -> None:
    async with aiohttp.ClientSession() as session:

        def base(ref: str, **kw: bool) -> str:
            return registry.RegistryClient(session, reference.parse(ref), **kw).base

        assert base("127.0.0.1:5000/x") == "http://127.0.0.1:5000"
        assert base("localhost:5000/x") == "http://localhost:5000"
        assert base("example.com/x") == "https://example.com"
        assert base("example.com:5000/x", insecure=True) == "http://example.com:5000"
        assert base("busybox") == "https://registry-1.docker.io"


async def test_identity_token_is_traded_for_an_access_token(serve: Serve) -> None:
    seen: dict[str, str] = {}

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        seen.update({k: str(v) for k, v in form.items()})
        return web.json_response({"access_token": "access-1", "expires_in": 300})

    async def manifest(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer access-1":
            realm = f"http://{request.host}/token"
            challenge = f'Bearer realm="{realm}",service="stub",scope="repository:team/app:pull"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        return web.Response(body=MANIFEST, content_type=mediatypes.OCI_MANIFEST)

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/v2/team/app/manifests/1", manifest)
    host = await serve(app)
    cred = protocol.RegistryAuth(host, token="refresh-1")
    async with aiohttp.ClientSession() as session:
        client = registry.RegistryClient(
            session, reference.parse(f"{host}/team/app:1"), credentials=cred
        )
        body, media_type, digest = await client.get_manifest("1")
    assert body == MANIFEST and media_type == mediatypes.OCI_MANIFEST
    assert digest == content.sha256_digest(MANIFEST)
    assert seen == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-1",
        "client_id": "pilothouse",
        "service": "stub",
        "scope": "repository:team/app:pull",
    }


async def test_basic_challenge_gets_basic_credentials(serve: Serve) -> None:
    async def manifest(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Basic dTpw":  # u:p
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="stub"'})
        return web.Response(body=MANIFEST, content_type=mediatypes.OCI_MANIFEST)

    app = web.Application()
    app.router.add_get("/v2/app/manifests/1", manifest)
    host = await serve(app)
    ref = reference.parse(f"{host}/app:1")
    async with aiohttp.ClientSession() as session:
        ok = registry.RegistryClient(
            session, ref, credentials=protocol.RegistryAuth(host, "u", "p")
        )
        assert (await ok.get_manifest("1"))[0] == MANIFEST
        anonymous = registry.RegistryClient(session, ref)
        with pytest.raises(registry.Unauthorized, match="pull access denied"):
            await anonymous.get_manifest("1")


async def test_manifest_by_digest_is_verified(serve: Serve) -> None:
    wanted = "sha256:" + "1" * 64

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=MANIFEST, content_type=mediatypes.OCI_MANIFEST)

    app = web.Application()
    app.router.add_get("/v2/app/manifests/{obj}", manifest)
    host = await serve(app)
    async with aiohttp.ClientSession() as session:
        client = registry.RegistryClient(session, reference.parse(f"{host}/app@{wanted}"))
        with pytest.raises(
            protocol.ImagePullError, match=f"failed to copy manifest {wanted}: digest mismatch"
        ):
            await client.get_manifest(wanted)


async def test_blob_download_survives_a_dropped_connection(serve: Serve, tmp_path: Path) -> None:
    data = b"layer bytes " * 10_000
    digest = content.sha256_digest(data)
    attempts = 0

    async def blob(request: web.Request) -> web.StreamResponse:
        nonlocal attempts
        attempts += 1
        resp = web.StreamResponse()
        resp.content_length = len(data)
        await resp.prepare(request)
        if attempts == 1:
            await resp.write(data[:1000])
            assert request.transport is not None
            request.transport.close()  # the connection drops mid-blob
            return resp
        await resp.write(data)
        return resp

    app = web.Application()
    app.router.add_get(f"/v2/app/blobs/{digest}", blob)
    host = await serve(app)
    blobs = content.BlobStore(tmp_path / "blobs")
    async with aiohttp.ClientSession() as session:
        client = registry.RegistryClient(session, reference.parse(f"{host}/app:1"))
        path = await client.fetch_blob({"digest": digest, "size": len(data)}, blobs)
    assert path.read_bytes() == data and attempts == 2
    assert list(blobs.ingest_dir.iterdir()) == []


def test_unsupported_manifests_are_named() -> None:
    schema1 = orjson.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []})
    with pytest.raises(protocol.ImagePullError, match="schema 1 are not supported"):
        pull.parse_manifest(schema1, mediatypes.DOCKER_SCHEMA1[1], "x")
    with pytest.raises(protocol.ImagePullError, match="unsupported manifest media type"):
        pull.parse_manifest(b'{"hello": 1}', "application/json", "x")
    with pytest.raises(protocol.ImagePullError, match="invalid manifest"):
        pull.parse_manifest(b"not json", mediatypes.OCI_MANIFEST, "x")


@pytest.mark.parametrize(
    ("machine_arch", "variant", "entries", "chosen"),
    [
        ("amd64", "", [("linux", "arm64", "v8"), ("linux", "amd64", "")], 1),
        ("arm64", "v8", [("linux", "amd64", ""), ("linux", "arm64", "")], 1),
        ("arm64", "v8", [("linux", "arm64", "v8"), ("linux", "arm64", "")], 0),
        ("arm", "v7", [("linux", "arm", "v6"), ("linux", "arm", "v7")], 1),
        ("arm", "v7", [("linux", "arm", "v8"), ("linux", "arm", "v6")], 1),
        ("amd64", "", [("windows", "amd64", ""), ("unknown", "unknown", "")], None),
    ],
)
def test_select_manifest(
    machine_arch: str, variant: str, entries: list[tuple[str, str, str]], chosen: int | None
) -> None:
    index = {
        "manifests": [
            {
                "digest": f"d{i}",
                "platform": {"os": o, "architecture": a, **({"variant": v} if v else {})},
            }
            for i, (o, a, v) in enumerate(entries)
        ]
    }
    picked = mediatypes.select_manifest(index, mediatypes.Platform("linux", machine_arch, variant))
    assert (picked["digest"] if picked else None) == (f"d{chosen}" if chosen is not None else None)
