"""The async REST client every component uses to reach the API.

Resources are addressed with :class:`pilothouse.api.resources.Resource`, objects
are plain dicts. Two kinds of failure, as client-go and httpx separate them:

* the server answered with an error: a :class:`pilothouse.api.errors.StatusError`
  decoded from its ``Status``, which callers classify with the predicates of
  :mod:`pilothouse.api.errors` (``is_not_found``, ``is_conflict``, …);
* no answer came: a :class:`TransportError` — :class:`ConnectError` (refused,
  unreachable, no such socket; the request was never sent), :class:`TLSError`,
  :class:`Timeout` and :class:`Disconnected` (the connection dropped after the
  request went out, so it may have been applied). aiohttp's own exceptions never
  reach callers, so a loop catches exactly ``(StatusError, TransportError)``.

Retries (:class:`RetryPolicy`), as client-go's request does: an answer of 429
or 5xx that carries ``Retry-After`` is sent again after that many seconds,
whatever the method (the server did not act on it); a request that never left
(connect failed) is sent again with back-off, whatever the method; a GET whose
connection dropped is sent again too, as reads are safe to repeat. Writes that
may have reached the server are never repeated behind the caller's back.

One aiohttp session (one connection pool) serves many concurrent requests;
watches are long requests on their own connections. A client of a component inside
``pilothouse server`` (its config's ``in_process``) has no session: each request goes
to the server's handler in process (:mod:`pilothouse.client.inprocess`), with the same
headers, bodies, answers, errors and retries. How either transport's answers and
failures are read is :mod:`pilothouse.client.transport`, where the error family is
defined (and re-exported here).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from pilothouse.api import errors, resources
from pilothouse.api.meta import Obj
from pilothouse.client import transport
from pilothouse.client.config import ClusterConfig

# The client's public error family lives with the answers it is read from; callers
# keep catching it here, as ``rest.TransportError`` and its subclasses.
from pilothouse.client.transport import ConnectError as ConnectError
from pilothouse.client.transport import Disconnected as Disconnected
from pilothouse.client.transport import Timeout as Timeout
from pilothouse.client.transport import TLSError as TLSError
from pilothouse.client.transport import TransportError as TransportError

log = logging.getLogger(__name__)

JSON = "application/json"
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Methods that are safe to send twice when the connection dropped mid-request.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long :class:`Client` retries (see the module docstring).

    ``attempts`` bounds the sends of one request (1: no retry); back-off doubles
    from ``backoff_initial`` up to ``backoff_max`` with jitter; a server's
    ``Retry-After`` is honoured up to ``retry_after_max`` seconds per wait."""

    attempts: int = 5
    backoff_initial: float = 0.1
    backoff_max: float = 2.0
    retry_after_max: float = 10.0

    def backoff(self, attempt: int) -> float:
        delay: float = min(self.backoff_initial * 2.0**attempt, self.backoff_max)
        return delay * random.uniform(0.5, 1.0)


NO_RETRIES = RetryPolicy(attempts=1)


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


class Client:
    """An API client. Create one per component and close it when done."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        max_connections: int = 0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        # No cap by default, as client-go's transport (MaxConnsPerHost 0): every watch
        # holds a connection for as long as it runs, so a cap at or below the number of
        # informers sharing a client leaves the next list waiting for ever.
        self.config = config
        self.retry = retry
        headers = {"User-Agent": config.user_agent, "Accept": JSON, **config.extra_headers}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self.requests = 0  # how many requests this client sent (for benchmarks)
        self.retries = 0  # how many of them were retries
        self._local = config.in_process
        self._headers = headers  # what every request carries (in process; aiohttp's own)
        self._session: aiohttp.ClientSession | None = None
        if self._local is not None:
            return
        connector: aiohttp.BaseConnector
        if config.unix_socket:
            connector = aiohttp.UnixConnector(path=config.unix_socket, limit=max_connections)
        else:
            connector = aiohttp.TCPConnector(
                ssl=config.ssl_context() or False, limit=max_connections
            )
        self._session = aiohttp.ClientSession(
            base_url=None,
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            json_serialize=lambda v: orjson.dumps(v).decode(),
        )
        # aiohttp resends PUT and DELETE too when a kept-alive connection drops; Go's
        # transport (client-go's) resends only GET, HEAD, OPTIONS and TRACE. The retries
        # here follow client-go, so aiohttp's are off (it has no public switch for it).
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
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
        """Send a request and decode the JSON answer, retrying as :class:`RetryPolicy`
        says; raise StatusError for an error answer, TransportError for none."""
        data: bytes | None = None
        headers = {"Accept": accept} if accept else {}
        if self.config.token_source is not None:
            headers["Authorization"] = f"Bearer {self.config.token_source()}"
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        policy = self.retry
        attempt = 0
        while True:
            try:
                return await self._send(method, path, params, data, headers, deadline)
            except errors.StatusError as exc:
                wait = errors.retry_after(exc)
                if wait is None or not (exc.code == 429 or exc.code >= 500):
                    raise
                delay = min(float(wait), policy.retry_after_max)
                failure: Exception = exc
            except TransportError as exc:
                if not exc.sent and isinstance(exc, TLSError):
                    raise  # a certificate does not get better by asking again
                if exc.sent and (method not in SAFE_METHODS or isinstance(exc, Timeout)):
                    raise
                delay = policy.backoff(attempt)
                failure = exc
            attempt += 1
            if attempt >= policy.attempts or (
                deadline is not None and loop.time() + delay >= deadline
            ):
                raise failure
            log.debug("%s %s: %s; retry %d in %.2fs", method, path, failure, attempt, delay)
            self.retries += 1
            await asyncio.sleep(delay)

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: dict[str, str],
        deadline: float | None,
    ) -> Any:
        self.requests += 1
        timeout = None
        if deadline is not None:
            timeout = max(deadline - asyncio.get_running_loop().time(), 0.001)
        if self._local is not None:
            return await transport.send_local(
                self._local, method, path, params, data, {**self._headers, **headers}, timeout
            )
        assert self._session is not None
        url = self.config.server + path
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw = await resp.read()
                return transport.decode_answer(resp.status, resp.content_type, raw, resp.headers)
        except transport.TRANSPORT_FAILURES as exc:
            raise transport.transport_error(exc, method, url) from None

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
        path = resource_path(resource, namespace)
        watch_headers = {"Accept": METADATA} if metadata_only else {}
        if self.config.token_source is not None:
            watch_headers["Authorization"] = f"Bearer {self.config.token_source()}"
        if self._local is not None:
            async for event in transport.watch_local(
                self._local,
                path,
                params,
                {**self._headers, **watch_headers},
                timeout_seconds + 30,
            ):
                yield event
            return
        assert self._session is not None
        url = self.config.server + path
        try:
            async with self._session.get(
                url,
                params=params,
                headers=watch_headers or None,
                timeout=aiohttp.ClientTimeout(total=timeout_seconds + 30, sock_read=None),
            ) as resp:
                if resp.status >= 400:
                    raise transport.status_error(
                        resp.status, await resp.read(), resp.headers.get("Retry-After")
                    )
                async for event in transport.events(resp.content.iter_any()):
                    yield event
        except transport.TRANSPORT_FAILURES as exc:
            raise transport.transport_error(exc, "GET", url) from None

    async def wait_ready(self, *, timeout: float = 30.0) -> None:
        """Wait until the server answers /readyz."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self.request("GET", "/readyz", timeout=2)
                return
            except (errors.StatusError, TransportError):
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
