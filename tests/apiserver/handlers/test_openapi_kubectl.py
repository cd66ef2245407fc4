"""The real kubectl 1.32 against ``/openapi/v3``: server-side field validation, explain, apply.

A tiny self-contained server (plain HTTP on 127.0.0.1) offers ``/version`` with
minor 32 (so the kubectl dispatcher runs its 1.32), legacy discovery, the
OpenAPI handler under test, and write endpoints that record what kubectl sends
and answer with pilothouse's own decoding and strict field checks.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web

from pilothouse.api import decode, errors, resources, schema
from pilothouse.apiserver.handlers import openapi

KUBECTL = shutil.which("kubectl")
pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(
        KUBECTL is None, reason="kubectl is not installed (these tests drive the real kubectl 1.32)"
    ),
]
REGISTRY = resources.DEFAULT

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
"""


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _error(err: errors.StatusError) -> web.Response:
    return _json(err.status(), err.code)


def _resource_list(group: str, version: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for r in REGISTRY.in_group_version(group, version):
        entries.append(
            {
                "name": r.plural,
                "singularName": r.singular_name,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
                "shortNames": list(r.short_names),
            }
        )
        for sub in r.subresources:
            verbs = list(resources.SUBRESOURCE_VERBS.get(sub, ()))
            entries.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": verbs,
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}".lstrip("/"),
        "resources": entries,
    }


class FakeServer:
    """Discovery, OpenAPI and recording write endpoints, served from a thread."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fake-apiserver", daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        assert self._ready.wait(10), "the fake API server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._record])
        openapi.OpenAPIV3(REGISTRY).add_routes(app.router)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "ct": request.content_type,
                "body": await request.read(),
            }
        )
        response: web.StreamResponse = await handler(request)
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        if path == "/version":
            return _json(
                {"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"}
            )
        if path == "/api":
            return _json(
                {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            )
        if path == "/apis":
            groups = [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                }
                for g, vs in REGISTRY.groups().items()
            ]
            return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        parts = path.strip("/").split("/")
        if path == "/api/v1" or (parts[0] == "apis" and len(parts) == 3):
            return _json(
                _resource_list(*(("", "v1") if path == "/api/v1" else (parts[1], parts[2])))
            )
        return self._resource(request, parts, body)

    def _resource(self, request: web.Request, parts: list[str], body: bytes) -> web.Response:
        group, version, rest = (
            ("", parts[1], parts[2:]) if parts[0] == "api" else (parts[1], parts[2], parts[3:])
        )
        namespace = rest[1] if rest[:1] == ["namespaces"] and len(rest) > 2 else ""
        rest = rest[2:] if namespace else rest
        resource = REGISTRY.by_path(group, version, rest[0])
        assert resource is not None, request.path
        if request.method == "GET" and len(rest) == 2:
            found = self.objects.get(rest[1])
            return _json(found) if found else _error(errors.not_found(rest[0], group, rest[1]))
        if request.method == "POST":
            obj, duplicates = decode.decode_json(body, find_duplicates=True)
            problems = schema.field_problems(group, version, resource.kind, obj, prune=True)
            if problems.type_errors:
                return _error(schema.decode_error(resource.kind, version, problems.type_errors[0]))
            strict = [schema.unknown_field(p) for p in problems.unknown]
            strict += [schema.duplicate_field(p) for p in duplicates]
            if strict and request.query.get("fieldValidation") == "Strict":
                return _error(schema.strict_decoding_error(resource.kind, version, strict))
            obj["metadata"].update(namespace=namespace, uid="1", resourceVersion="1")
            return _json(obj, 201)
        if request.method == "PATCH":
            return _json(
                self.objects.get(rest[1])
                or {
                    "apiVersion": resource.api_version,
                    "kind": resource.kind,
                    "metadata": {"name": rest[1]},
                }
            )
        return _error(errors.method_not_allowed(""))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


class Kubectl:
    """kubectl with its own kubeconfig, cache and home, so nothing outside the test is touched."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": "t", "user": {"token": "t"}}],
            "contexts": [
                {"name": "t", "context": {"cluster": "t", "user": "t", "namespace": "default"}}
            ],
            "current-context": "t",
        }
        (root / "kubeconfig").write_text(json.dumps(config))

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        env = {**os.environ, "KUBECONFIG": str(self.root / "kubeconfig"), "HOME": str(self.root)}
        return subprocess.run(
            [KUBECTL, f"--cache-dir={self.root / 'cache'}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )


@pytest.fixture
def kubectl(server: FakeServer, tmp_path: Path) -> Kubectl:
    server.requests.clear()
    server.objects.clear()
    return Kubectl(tmp_path, server.port)


def test_create_uses_server_side_field_validation(server: FakeServer, kubectl: Kubectl) -> None:
    done = kubectl("create", "-f", "-", stdin=DEPLOYMENT)
    assert done.returncode == 0, done.stderr
    assert "deployment.apps/web created" in done.stdout
    assert "failed to download openapi" not in done.stderr
    paths = [r["path"] for r in server.requests]
    assert "/openapi/v3" in paths and "/openapi/v3/apis/apps/v1" in paths
    fetched = next(r for r in server.requests if r["path"] == "/openapi/v3/apis/apps/v1")
    assert "hash" in fetched["query"]
    post = next(r for r in server.requests if r["method"] == "POST")
    assert post["path"] == "/apis/apps/v1/namespaces/default/deployments"
    assert post["query"] == {"fieldManager": "kubectl-create", "fieldValidation": "Strict"}
    assert not any(r["path"].startswith("/openapi/v2") for r in server.requests)


def test_create_with_an_unknown_field_fails_as_upstream(kubectl: Kubectl) -> None:
    bad = DEPLOYMENT.replace(
        "image: nginx:1.27", "image: nginx:1.27\n        imagePullPolicyy: Always"
    )
    done = kubectl("create", "-f", "-", stdin=bad)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        'Error from server (BadRequest): error when creating "STDIN": Deployment in version "v1" cannot be '
        "handled as a Deployment: strict decoding error: unknown field "
        '"spec.template.spec.containers[0].imagePullPolicyy"'
    )


def test_explain_a_field(kubectl: Kubectl) -> None:
    done = kubectl("explain", "pods.spec.containers")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n\nFIELD: containers <[]Container>\n")
    assert "A single application container that you want to run within a pod." in out
    for line in ("  image\t<string>", "  ports\t<[]ContainerPort>", "  name\t<string> -required-"):
        assert line in out.splitlines()


def test_explain_recursive(kubectl: Kubectl) -> None:
    done = kubectl("explain", "deployment", "--recursive")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["GROUP:      apps", "KIND:       Deployment", "VERSION:    v1"]
    assert "        maxSurge\t<IntOrString>" in lines
    assert any(line.strip() == "limits\t<map[string]Quantity>" for line in lines)
    assert len(lines) > 500


def test_client_side_apply_patches_with_merge_keys_from_openapi_v3(
    server: FakeServer, kubectl: Kubectl
) -> None:
    applied = yaml.safe_load(DEPLOYMENT)
    spec = applied["spec"]["template"]["spec"]
    spec["containers"].append({"name": "side", "image": "busybox"})
    live = json.loads(json.dumps(applied))
    live["metadata"].update(
        namespace="default",
        uid="1",
        resourceVersion="5",
        annotations={"kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied)},
    )
    server.objects["web"] = live
    done = kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower()
    patch = next(r for r in server.requests if r["method"] == "PATCH")
    assert patch["ct"] == "application/strategic-merge-patch+json"
    assert patch["query"] == {
        "fieldManager": "kubectl-client-side-apply",
        "fieldValidation": "Strict",
    }
    body = json.loads(patch["body"])["spec"]["template"]["spec"]
    assert body["$setElementOrder/containers"] == [{"name": "nginx"}]
    assert {"$patch": "delete", "name": "side"} in body["containers"]
    # The patch came from the v3 documents, not from an OpenAPI v2 fallback.
    assert not any(r["path"].startswith("/openapi/v2") for r in server.requests)


def test_server_side_apply_sends_an_apply_patch(server: FakeServer, kubectl: Kubectl) -> None:
    done = kubectl("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    assert done.returncode == 0, done.stderr
    patch = next(r for r in server.requests if r["method"] == "PATCH")
    assert patch["ct"] == "application/apply-patch+yaml"
    assert patch["query"] == {
        "fieldManager": "kubectl",
        "fieldValidation": "Strict",
        "force": "false",
    }
    value, duplicates = decode.decode_yaml(patch["body"], find_duplicates=True)
    assert value["spec"]["replicas"] == 2 and duplicates == []


# --- kind: List, validated client-side against /openapi/v2 ------------------------------

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
"""


def _list_of(*manifests: str) -> str:
    items = [yaml.safe_load(m) for m in manifests]
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})


@pytest.mark.parametrize("verb", ["create", "apply"])
def test_a_list_is_validated_with_openapi_v2_and_created(
    server: FakeServer, kubectl: Kubectl, verb: str
) -> None:
    done = kubectl(verb, "-f", "-", stdin=_list_of(CONFIG_MAP, DEPLOYMENT))
    assert done.returncode == 0, done.stderr
    action = "created"
    assert f"configmap/settings {action}" in done.stdout
    assert f"deployment.apps/web {action}" in done.stdout
    v2 = [r for r in server.requests if r["path"] == "/openapi/v2"]
    assert v2, "kubectl validated the List without OpenAPI v2"
    posts = [r["path"] for r in server.requests if r["method"] == "POST"]
    assert posts == [
        "/api/v1/namespaces/default/configmaps",
        "/apis/apps/v1/namespaces/default/deployments",
    ]


def test_a_list_with_a_misspelt_field_fails_client_side(
    server: FakeServer, kubectl: Kubectl
) -> None:
    bad = DEPLOYMENT.replace("  replicas: 2", "  replicaz: 2")
    done = kubectl("create", "-f", "-", stdin=_list_of(CONFIG_MAP, bad))
    assert done.returncode == 1
    assert (
        'error validating "STDIN": error validating data: ValidationError(Deployment.spec): '
        'unknown field "replicaz" in io.k8s.api.apps.v1.DeploymentSpec; if you choose to '
        "ignore these errors, turn validation off with --validate=false"
    ) in done.stderr
    assert not any(r["method"] == "POST" for r in server.requests)


def test_explain_with_plaintext_openapiv2(server: FakeServer, kubectl: Kubectl) -> None:
    done = kubectl("explain", "deployment.spec", "--output=plaintext-openapiv2")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("KIND:     Deployment\nVERSION:  apps/v1\n\nRESOURCE: spec <Object>\n")
    assert "   replicas\t<integer>" in out.splitlines()
    assert "   template\t<Object> -required-" in out.splitlines()
    assert any(r["path"] == "/openapi/v2" for r in server.requests)
