"""``pilothouse dashboard``'s proxy and the /ui/ pages, without a browser."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import aiohttp

from pilothouse import testing
from pilothouse.client import config
from pilothouse.dashboard import proxy


async def test_pages_and_the_api_through_the_kubeconfig(api_server: testing.ServerThread) -> None:
    server = proxy.DashboardProxy(config.load_kubeconfig(api_server.kubeconfig), port=0)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/", allow_redirects=False) as resp:
                assert resp.status == 302 and resp.headers["Location"] == "/ui/"
            async with s.get(base + "/ui/") as resp:
                assert resp.status == 200
                assert resp.content_type == "text/html"
                assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
                assert '<script type="module" src="app.js">' in await resp.text()
            async with s.get(base + "/ui/app.js") as resp:
                assert resp.content_type == "text/javascript"
            async with s.get(base + "/ui/nothing.js") as resp:
                assert resp.status == 404
            # The API as the kubeconfig's user, with no credential from the browser.
            review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            async with s.post(
                base + "/apis/authentication.k8s.io/v1/selfsubjectreviews", json=review
            ) as resp:
                assert resp.status == 201
                assert (await resp.json())["status"]["userInfo"]["username"] == "admin"
            # Errors come through as the API server's Status.
            async with s.get(base + "/api/v1/namespaces/nope-" + uuid.uuid4().hex[:6]) as resp:
                assert resp.status == 404
                assert (await resp.json())["reason"] == "NotFound"
            # A watch streams through event by event.
            name = "w-" + uuid.uuid4().hex[:6]
            async with s.get(
                base + "/api/v1/namespaces",
                params={"watch": "true", "fieldSelector": f"metadata.name={name}"},
            ) as watch:
                await asyncio.sleep(0.2)
                async with s.post(
                    base + "/api/v1/namespaces", json={"metadata": {"name": name}}
                ) as resp:
                    assert resp.status == 201
                line = await asyncio.wait_for(watch.content.readline(), 10)
                event = json.loads(line)
                assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", name)
            # A page elsewhere cannot reach it through DNS rebinding.
            async with s.get(
                base + "/api/v1/namespaces", headers={"Host": "evil.example:80"}
            ) as resp:
                assert resp.status == 403
                assert "is not loopback" in await resp.text()
    finally:
        await server.stop()


async def test_the_api_server_serves_the_pages_without_credentials(
    api_server: testing.ServerThread,
) -> None:
    pki = api_server.server.pki
    assert pki is not None
    ctx = pki.ssl_client_context()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        async with s.get(api_server.url + "/ui", allow_redirects=False) as resp:
            assert resp.status == 302
        async with s.get(api_server.url + "/ui/baseline.html", params={"bytes": "20000"}) as resp:
            body = await resp.text()
            assert resp.status == 200 and 20000 <= len(body) < 20200
        async with s.post(api_server.url + "/ui/") as resp:
            assert resp.status == 405


def test_dashboard_command_explains_bad_input(api_server: testing.ServerThread) -> None:
    run = [sys.executable, "-m", "pilothouse.cli.main", "dashboard", "--no-browser"]
    bad_port = subprocess.run([*run, "--port", "70000"], capture_output=True, text=True, timeout=30)
    assert bad_port.returncode == 2
    assert "--port 70000 is not a port" in bad_port.stderr
    missing = subprocess.run(
        [*run, "--kubeconfig", "/nonexistent/kubeconfig"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1
    assert "cannot read kubeconfig /nonexistent/kubeconfig" in missing.stderr
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=30)
    assert "127.0.0.1" in helped.stdout and "kubectl create token" in helped.stdout
