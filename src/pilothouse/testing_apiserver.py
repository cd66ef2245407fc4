"""A small extension API server, to put behind an APIService in tests.

It serves one namespaced kind the way an aggregated API server built on
k8s.io/apiserver does (upstream's sample-apiserver: ``Flunder`` in
``wardle.example.com/v1alpha1``): discovery (``/apis``, ``/apis/<group>``,
``/apis/<group>/<version>``), an OpenAPI v3 index and document (so ``kubectl
explain`` and strict field validation work through the aggregator), and
list/get/create/delete/watch of objects kept in memory, with tables for ``kubectl
get``.

Requests are authenticated as an extension server authenticates the aggregator: a
client certificate signed by the ``requestheader-client-ca-file`` CA with CN
``front-proxy-client``, the user taken from ``X-Remote-User``/``X-Remote-Group``.
Anything else is a 401. Each request's user is recorded in :attr:`requests`.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from pilothouse import testing_https
from pilothouse.apiserver.aggregator import frontproxy

GROUP = "wardle.example.com"
VERSION = "v1alpha1"
KIND = "Flunder"
PLURAL = "flunders"
SCHEMA = f"com.example.wardle.{VERSION}.{KIND}"


@dataclass
class Seen:
    method: str
    path: str
    user: str
    groups: list[str]
    authorization: str | None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def openapi_document() -> dict[str, Any]:
    """The group-version's OpenAPI v3 document, with the GVK kubectl looks for."""
    gvk = [{"group": GROUP, "version": VERSION, "kind": KIND}]
    ref = {"$ref": f"#/components/schemas/{SCHEMA}"}
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}"
    content = {"application/json": {"schema": ref}}
    list_content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{SCHEMA}List"}}}
    params = [
        {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}},
    ]
    validation = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}]
    return {
        "openapi": "3.0.0",
        "info": {"title": "Wardle", "version": "0.1"},
        "paths": {
            base: {
                "parameters": params,
                "get": {
                    "operationId": "listWardleV1alpha1NamespacedFlunder",
                    "responses": {"200": {"description": "OK", "content": list_content}},
                    "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": gvk[0],
                },
                "post": {
                    "operationId": "createWardleV1alpha1NamespacedFlunder",
                    "parameters": validation,
                    "requestBody": {"content": content},
                    "responses": {"201": {"description": "Created", "content": content}},
                    "x-kubernetes-action": "post",
                    "x-kubernetes-group-version-kind": gvk[0],
                },
            },
            base + "/{name}": {
                "parameters": [
                    *params,
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "get": {
                    "operationId": "readWardleV1alpha1NamespacedFlunder",
                    "responses": {"200": {"description": "OK", "content": content}},
                    "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk[0],
                },
                "patch": {
                    "operationId": "patchWardleV1alpha1NamespacedFlunder",
                    "parameters": validation,
                    "requestBody": {
                        "content": {"application/merge-patch+json": {"schema": {"type": "object"}}}
                    },
                    "responses": {"200": {"description": "OK", "content": content}},
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk[0],
                },
            },
        },
        "components": {
            "schemas": {
                SCHEMA: {
                    "description": "A Flunder is an example resource of the sample API server.",
                    "type": "object",
                    "properties": {
                        "apiVersion": {
                            "type": "string",
                            "description": "APIVersion of the object.",
                        },
                        "kind": {"type": "string", "description": "Kind of the object."},
                        "metadata": {"type": "object", "description": "Standard object metadata."},
                        "spec": {
                            "type": "object",
                            "description": "What the flunder should be.",
                            "properties": {
                                "reference": {
                                    "type": "string",
                                    "description": "The name of another flunder.",
                                },
                            },
                        },
                    },
                    "x-kubernetes-group-version-kind": gvk,
                },
                f"{SCHEMA}List": {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": ref}},
                    "x-kubernetes-group-version-kind": [
                        {"group": GROUP, "version": VERSION, "kind": f"{KIND}List"}
                    ],
                },
            }
        },
    }


@dataclass
class ExtensionAPIServer:
    """The sample API server's state and its aiohttp application."""

    requestheader_ca: bytes
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    revision: int = 1
    _watchers: list[asyncio.Queue[tuple[str, dict[str, Any]]]] = field(default_factory=list)

    @property
    def open_watches(self) -> int:
        return len(self._watchers)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/apis", self._apis)
        app.router.add_get(f"/apis/{GROUP}", self._group)
        app.router.add_get(f"/apis/{GROUP}/{VERSION}", self._resources)
        app.router.add_get("/openapi/v3", self._openapi_index)
        app.router.add_get(f"/openapi/v3/apis/{GROUP}/{VERSION}", self._openapi_doc)
        base = f"/apis/{GROUP}/{VERSION}"
        app.router.add_get(f"{base}/{PLURAL}", self._list)
        app.router.add_get(f"{base}/namespaces/{{ns}}/{PLURAL}", self._list)
        app.router.add_post(f"{base}/namespaces/{{ns}}/{PLURAL}", self._create)
        app.router.add_get(f"{base}/namespaces/{{ns}}/{PLURAL}/{{name}}", self._get)
        app.router.add_delete(f"{base}/namespaces/{{ns}}/{PLURAL}/{{name}}", self._delete)
        return app

    def serve(self, **kw: Any) -> testing_https.HTTPSServer:
        """An HTTPS server for this API (start it); TLS asks for client certificates."""
        return testing_https.HTTPSServer(self.app(), client_ca=self.requestheader_ca, **kw)

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(x[0] for x in (peer or {}).get("subject", ()))
        if subject.get("commonName") != frontproxy.CLIENT_NAME:
            return _status(401, "Unauthorized", "Unauthorized")
        user = request.headers.get(frontproxy.USER_HEADER, "")
        groups = request.headers.getall(frontproxy.GROUP_HEADER, [])
        self.requests.append(
            Seen(
                request.method,
                request.path,
                user,
                list(groups),
                request.headers.get("Authorization"),
            )
        )
        if not user:
            return _status(401, "Unauthorized", "Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    async def _apis(self, request: web.Request) -> web.Response:
        gv = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
        return web.json_response(
            {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [{"name": GROUP, "versions": [gv], "preferredVersion": gv}],
            }
        )

    async def _group(self, request: web.Request) -> web.Response:
        gv = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
        return web.json_response(
            {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": GROUP,
                "versions": [gv],
                "preferredVersion": gv,
            }
        )

    async def _resources(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{GROUP}/{VERSION}",
                "resources": [
                    {
                        "name": PLURAL,
                        "singularName": "flunder",
                        "namespaced": True,
                        "kind": KIND,
                        "shortNames": ["fl"],
                        "categories": ["wardle"],
                        "verbs": ["create", "delete", "get", "list", "watch"],
                    }
                ],
            }
        )

    async def _openapi_index(self, request: web.Request) -> web.Response:
        path = f"apis/{GROUP}/{VERSION}"
        return web.json_response(
            {"paths": {path: {"serverRelativeURL": f"/openapi/v3/{path}?hash=WARDLE1"}}}
        )

    async def _openapi_doc(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    def _table(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(self.revision)},
            "columnDefinitions": [
                {
                    "name": "Name",
                    "type": "string",
                    "format": "name",
                    "description": "",
                    "priority": 0,
                },
                {
                    "name": "Reference",
                    "type": "string",
                    "format": "",
                    "description": "",
                    "priority": 0,
                },
                {
                    "name": "Created At",
                    "type": "date",
                    "format": "",
                    "description": "",
                    "priority": 0,
                },
            ],
            "rows": [
                {
                    "cells": [
                        o["metadata"]["name"],
                        (o.get("spec") or {}).get("reference", ""),
                        o["metadata"]["creationTimestamp"],
                    ],
                    "object": {
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"],
                    },
                }
                for o in items
            ],
        }

    async def _list(self, request: web.Request) -> web.StreamResponse:
        ns = request.match_info.get("ns")
        items = [o for (n, _), o in sorted(self.objects.items()) if ns is None or n == ns]
        if request.query.get("watch") in ("true", "1"):
            return await self._watch(request, ns)
        if "as=Table" in request.headers.get("Accept", ""):
            return web.json_response(self._table(items))
        return web.json_response(
            {
                "kind": f"{KIND}List",
                "apiVersion": f"{GROUP}/{VERSION}",
                "metadata": {"resourceVersion": str(self.revision)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, ns: str | None) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._watchers.append(queue)
        try:
            timeout = float(request.query.get("timeoutSeconds") or 30)
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    kind, obj = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                if ns is None or obj["metadata"]["namespace"] == ns:
                    await response.write(orjson.dumps({"type": kind, "object": obj}) + b"\n")
        finally:
            self._watchers.remove(queue)
        await response.write_eof()
        return response

    def _notify(self, kind: str, obj: dict[str, Any]) -> None:
        for queue in self._watchers:
            queue.put_nowait((kind, obj))

    async def _create(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        obj = orjson.loads(await request.read())
        unknown = [f"spec.{k}" for k in obj.get("spec") or {} if k != "reference"]
        if unknown and request.query.get("fieldValidation") == "Strict":
            problems = ", ".join(f'unknown field "{u}"' for u in unknown)
            return _status(
                400,
                "BadRequest",
                f'{KIND} in version "{VERSION}" cannot be handled as a {KIND}: strict decoding '
                f"error: {problems}",
            )
        md = obj.setdefault("metadata", {})
        name = md.get("name") or ""
        if not name:
            return _status(
                422,
                "Invalid",
                f'{KIND}.{GROUP} "" is invalid: metadata.name: Required value: name or generateName is required',
            )
        if (ns, name) in self.objects:
            return _status(409, "AlreadyExists", f'{PLURAL}.{GROUP} "{name}" already exists')
        self.revision += 1
        md.update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            creationTimestamp=_now(),
            resourceVersion=str(self.revision),
        )
        obj["apiVersion"], obj["kind"] = f"{GROUP}/{VERSION}", KIND
        self.objects[(ns, name)] = obj
        self._notify("ADDED", obj)
        return web.json_response(obj, status=201)

    async def _get(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        obj = self.objects.get(key)
        if obj is None:
            return _status(404, "NotFound", f'{PLURAL}.{GROUP} "{key[1]}" not found')
        if "as=Table" in request.headers.get("Accept", ""):
            return web.json_response(self._table([obj]))
        return web.json_response(obj)

    async def _delete(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["name"])
        obj = self.objects.pop(key, None)
        if obj is None:
            return _status(404, "NotFound", f'{PLURAL}.{GROUP} "{key[1]}" not found')
        self._notify("DELETED", obj)
        return web.json_response(obj)
