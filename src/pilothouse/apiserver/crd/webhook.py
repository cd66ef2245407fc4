"""Webhook conversion of custom resources: ConversionReview v1 to the CRD's webhook.

With ``spec.conversion.strategy: Webhook``, objects move between the storage version
and a request's version through the CRD's conversion webhook, as upstream's
``webhookConverter`` does: one ``apiextensions.k8s.io/v1`` ``ConversionReview`` per
call, carrying every object to convert (a list converts in one review), over HTTPS
verified with the ``caBundle``. The answer must echo the request's ``uid``, say
``Success``, and return as many objects as were sent, each in the desired version
with the same kind; metadata the webhook may not change (anything but labels and
annotations) is restored from the original, as upstream restores it. Any failure is
a 500: ``Internal error occurred: conversion webhook for stable.example.com/v1,
Kind=CronTab failed: …``.

The webhook is reached at ``clientConfig.url``, or for ``clientConfig.service`` at
a ready endpoint of the Service (its EndpointSlices), else its cluster IP (or its
external name), with the server name ``<service>.<namespace>.svc`` checked against
the certificate. Calls share one connection pool (opened lazily, closed with the
serving layer); many requests convert concurrently.
"""

from __future__ import annotations

import base64
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from pilothouse.api import errors
from pilothouse.api.meta import Obj

log = logging.getLogger(__name__)

TIMEOUT = 30.0
_KEPT_METADATA = ("labels", "annotations")

# (namespace, name, port) -> (host, port): where a Service's webhook is reached.
ServiceResolver = Callable[[str, str, int], Awaitable[tuple[str, int]]]


@dataclass(frozen=True)
class Target:
    url: str
    server_name: str | None  # TLS name to verify (services); None: the URL's host
    ssl: ssl.SSLContext


class Sessions:
    """The connection pool every conversion webhook call shares."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                connector=aiohttp.TCPConnector(limit=64),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _ssl(ca_bundle: str | None) -> ssl.SSLContext:
    if ca_bundle:
        context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
    else:
        context = ssl.create_default_context()
    return context


class WebhookConverter:
    """Converts objects of one CRD version to and from its storage version."""

    def __init__(
        self,
        *,
        crd_name: str,
        group: str,
        kind: str,
        storage_version: str,
        version: str,
        client_config: dict[str, Any],
        sessions: Sessions,
        resolve: ServiceResolver,
    ) -> None:
        self.crd_name = crd_name
        self.kind = kind
        self.storage_api_version = f"{group}/{storage_version}"
        self.api_version = f"{group}/{version}"
        self.config = client_config
        self.sessions = sessions
        self.resolve = resolve
        self._ssl = _ssl(client_config.get("caBundle"))

    async def _target(self) -> Target:
        url = self.config.get("url")
        if url:
            return Target(str(url), None, self._ssl)
        service = self.config.get("service") or {}
        namespace, name = str(service.get("namespace")), str(service.get("name"))
        port = int(service.get("port") or 443)
        host, port = await self.resolve(namespace, name, port)
        path = str(service.get("path") or "")
        shown_host = f"[{host}]" if ":" in host else host
        return Target(f"https://{shown_host}:{port}{path}", f"{name}.{namespace}.svc", self._ssl)

    async def to_storage(self, obj: Obj) -> Obj:
        if obj.get("apiVersion") == self.storage_api_version:
            return obj
        (converted,) = await self.convert([obj], self.storage_api_version)
        return converted

    async def to_api(self, objs: list[Obj]) -> list[Obj]:
        todo = [i for i, o in enumerate(objs) if o.get("apiVersion") != self.api_version]
        if not todo:
            return objs
        converted = await self.convert([objs[i] for i in todo], self.api_version)
        out = list(objs)
        for i, obj in zip(todo, converted, strict=True):
            out[i] = obj
        return out

    async def convert(self, objs: list[Obj], desired: str) -> list[Obj]:
        source = str(objs[0].get("apiVersion") or "")
        gvk = f"{source}, Kind={self.kind}"
        try:
            converted = await self._review(objs, desired)
        except _Failure as exc:
            raise errors.internal(f"conversion webhook for {gvk} failed: {exc}") from None
        for original, new in zip(objs, converted, strict=True):
            md = dict(original.get("metadata") or {})
            raw_md = new.get("metadata")
            new_md: dict[str, Any] = raw_md if isinstance(raw_md, dict) else {}
            for key in _KEPT_METADATA:
                if key in new_md:
                    md[key] = new_md[key]
                else:
                    md.pop(key, None)
            new["metadata"] = md
        return converted

    async def _review(self, objs: list[Obj], desired: str) -> list[Obj]:
        uid = str(uuid.uuid4())
        target = await self._target()
        review = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objs},
        }
        try:
            async with self.sessions.get().post(
                target.url,
                data=orjson.dumps(review),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                ssl=target.ssl,
                server_hostname=target.server_name,
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise _Failure(
                        f"conversion webhook answered {resp.status}: {body[:200].decode(errors='replace')}"
                    )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _Failure(f'Post "{target.url}": {exc or type(exc).__name__}') from None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _Failure(f"unmarshal response: {exc}") from None
        response = answer.get("response") if isinstance(answer, dict) else None
        if not isinstance(response, dict):
            raise _Failure("no response provided")
        if response.get("uid") != uid:
            raise _Failure(f"expected response uid {uid!r}, got {response.get('uid')!r}")
        result = response.get("result") or {}
        if result.get("status") != "Success":
            raise _Failure(str(result.get("message") or "conversion failed"))
        converted = response.get("convertedObjects")
        if not isinstance(converted, list) or len(converted) != len(objs):
            count = len(converted) if isinstance(converted, list) else 0
            raise _Failure(f"returned {count} objects, expected {len(objs)}")
        for obj, original in zip(converted, objs, strict=True):
            if not isinstance(obj, dict) or obj.get("apiVersion") != desired:
                got = obj.get("apiVersion") if isinstance(obj, dict) else None
                raise _Failure(
                    f"invalid converted object: expected apiVersion {desired!r}, got {got!r}"
                )
            if obj.get("kind") != original.get("kind"):
                raise _Failure(
                    f"invalid converted object: expected kind {original.get('kind')!r}, got {obj.get('kind')!r}"
                )
        return converted


class _Failure(Exception):
    pass


class ResolveError(_Failure):
    """A Service-backed webhook whose address cannot be found."""
