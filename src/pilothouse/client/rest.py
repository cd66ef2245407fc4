"""The async REST client every component uses to reach the API.

Resources are addressed with :class:`pilothouse.api.resources.Resource`, objects
are plain dicts, and errors come back as :class:`pilothouse.api.errors.StatusError`
decoded from the server's ``Status`` — so a controller checks ``err.code == 409``
exactly as client-go code checks ``IsConflict``. One aiohttp session (one
connection pool) serves many concurrent requests; watches are long requests on
their own connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from pilothouse.api import errors, resources
from pilothouse.client.config import ClusterConfig

log = logging.getLogger(__name__)

Obj = dict[str, Any]

JSON = "application/json"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def resource_path(
    resource: resources.Resource, namespace: str = "", name: str = "", subresource: str = ""
) -> str:
    base = (
        f"/apis/{resource.group}/{resource.version}"
        if resource.group
        else f"/api/{resource.version}"
    )
    parts = [base]
    if resource.namespaced and namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(resource.plural)
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


def _status_error(status: int, body: bytes) -> errors.StatusError:
    with contextlib.suppress(ValueError):
        data = orjson.loads(body)
        if isinstance(data, dict) and data.get("kind") == "Status":
            return errors.StatusError(
                int(data.get("code") or status),
                str(data.get("reason") or ""),
                str(data.get("message") or ""),
                details=data.get("details"),
            )
    return errors.StatusError(status, "", body.decode(errors="replace")[:500])


class Client:
    """An API client. Create one per component and close it when done."""

    def __init__(self, config: ClusterConfig, *, max_connections: int = 0) -> None:
        # No cap by default, as client-go's transport (MaxConnsPerHost 0): every watch
        # holds a connection for as long as it runs, so a cap at or below the number of
        # informers sharing a client leaves the next list waiting for ever.
        self.config = config
        connector: aiohttp.BaseConnector
        if config.unix_socket:
            connector = aiohttp.UnixConnector(path=config.unix_socket, limit=max_connections)
        else:
            connector = aiohttp.TCPConnector(
                ssl=config.ssl_context() or False, limit=max_connections
            )
        headers = {"User-Agent": config.user_agent, "Accept": JSON, **config.extra_headers}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._session = aiohttp.ClientSession(
            base_url=None,
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            json_serialize=lambda v: orjson.dumps(v).decode(),
        )
        self.requests = 0  # how many requests this client sent (for benchmarks)

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- raw ------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: float | None = 60.0,
        accept: str = "",
    ) -> Any:
        """Send a request and decode the JSON answer; raise StatusError on failure."""
        data: bytes | None = None
        headers = {"Accept": accept} if accept else {}
        if self.config.token_source is not None:
            headers["Authorization"] = f"Bearer {self.config.token_source()}"
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        self.requests += 1
        url = self.config.server + path
        async with self._session.request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise _status_error(resp.status, raw)
            if not raw:
                return None
            if resp.content_type == "application/json":
                return orjson.loads(raw)
            return raw.decode(errors="replace")

    # --- verbs ------------------------------------------------------------------------
    async def get(self, resource: resources.Resource, name: str, namespace: str = "") -> Obj:
        result: Obj = await self.request("GET", resource_path(resource, namespace, name))
        return result

    async def list(
        self,
        resource: resources.Resource,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        metadata_only: bool = False,
    ) -> Obj:
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        if resource_version:
            params["resourceVersion"] = resource_version
        result: Obj = await self.request(
            "GET",
            resource_path(resource, namespace),
            params=params,
            accept=METADATA_LIST if metadata_only else "",
        )
        return result

    async def list_all(self, resource: resources.Resource, namespace: str = "", **kw: Any) -> Obj:
        """List in pages of 500 and return one list (consistent: same resourceVersion)."""
        token = ""
        items: list[Obj] = []
        while True:
            page = await self.list(resource, namespace, limit=500, continue_token=token, **kw)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                page["items"] = items
                return page

    async def create(
        self,
        resource: resources.Resource,
        obj: Obj,
        namespace: str = "",
        *,
        dry_run: bool = False,
        field_manager: str = "",
    ) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace", "")
        params = _write_params(dry_run, field_manager)
        result: Obj = await self.request(
            "POST", resource_path(resource, ns), params=params, body=obj
        )
        return result

    async def update(
        self,
        resource: resources.Resource,
        obj: Obj,
        *,
        subresource: str = "",
        field_manager: str = "",
    ) -> Obj:
        md = obj.get("metadata") or {}
        path = resource_path(resource, md.get("namespace", ""), md["name"], subresource)
        result: Obj = await self.request(
            "PUT", path, params=_write_params(False, field_manager), body=obj
        )
        return result

    async def update_status(self, resource: resources.Resource, obj: Obj) -> Obj:
        return await self.update(resource, obj, subresource="status")

    async def patch(
        self,
        resource: resources.Resource,
        name: str,
        patch: Any,
        namespace: str = "",
        *,
        patch_type: str = MERGE_PATCH,
        subresource: str = "",
        field_manager: str = "",
        force: bool = False,
    ) -> Obj:
        params = _write_params(False, field_manager)
        if force:
            params["force"] = "true"
        result: Obj = await self.request(
            "PATCH",
            resource_path(resource, namespace, name, subresource),
            params=params,
            body=patch,
            content_type=patch_type,
        )
        return result

    async def delete(
        self,
        resource: resources.Resource,
        name: str,
        namespace: str = "",
        *,
        propagation_policy: str = "",
        grace_period_seconds: int | None = None,
        uid: str = "",
        resource_version: str = "",
    ) -> Obj:
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if uid or resource_version:
            options["preconditions"] = {
                k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
            }
        result: Obj = await self.request(
            "DELETE", resource_path(resource, namespace, name), body=options
        )
        return result

    async def watch(
        self,
        resource: resources.Resource,
        namespace: str = "",
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
        allow_bookmarks: bool = True,
        metadata_only: bool = False,
    ) -> AsyncIterator[Obj]:
        """Watch events ({"type", "object"}) until the server ends the watch.

        Raises StatusError when the server refuses the watch; an ERROR event
        (e.g. 410 Gone) is yielded as it comes, for the caller to act on."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if resource_version:
            params["resourceVersion"] = resource_version
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        self.requests += 1
        url = self.config.server + resource_path(resource, namespace)
        watch_headers = {"Accept": METADATA} if metadata_only else {}
        if self.config.token_source is not None:
            watch_headers["Authorization"] = f"Bearer {self.config.token_source()}"
        async with self._session.get(
            url,
            params=params,
            headers=watch_headers or None,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds + 30, sock_read=None),
        ) as resp:
            if resp.status >= 400:
                raise _status_error(resp.status, await resp.read())
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while True:
                    newline = buffer.find(b"\n")
                    if newline < 0:
                        break
                    line, buffer = buffer[:newline], buffer[newline + 1 :]
                    if line.strip():
                        yield orjson.loads(line)

    async def wait_ready(self, *, timeout: float = 30.0) -> None:
        """Wait until the server answers /readyz."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self.request("GET", "/readyz", timeout=2)
                return
            except (aiohttp.ClientError, errors.StatusError, OSError):
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.05)


def _write_params(dry_run: bool, field_manager: str) -> dict[str, str]:
    params: dict[str, str] = {}
    if dry_run:
        params["dryRun"] = "All"
    if field_manager:
        params["fieldManager"] = field_manager
    return params
