"""What the extension API servers serve, merged into this server's discovery and OpenAPI.

For every available APIService with a Service, the extension server's
``/apis/<group>/<version>`` (its legacy resource list) and its OpenAPI v3 document
for that group-version are fetched — as ``system:kube-aggregator`` through the front
proxy — when APIServices change and every 60 s. From them:

- discovery lists the group in ``/apis`` and ``/apis/<group>`` (legacy) and its
  resources in the aggregated ``/apis`` document, groups ordered by
  ``groupPriorityMinimum`` then name, versions by ``versionPriority`` (upstream's
  sort); a group-version whose server stopped answering stays listed with
  ``freshness: Stale``, as upstream marks it;
- ``/openapi/v3`` lists ``apis/<group>/<version>`` with the extension server's hash,
  and serves the document it fetched.

One task fetches (:meth:`ExtensionDiscovery.run`); readers get immutable snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from pilothouse.apiserver import watchcache
from pilothouse.apiserver.aggregator import available, frontproxy
from pilothouse.apiserver.webhook import client, resolver

log = logging.getLogger(__name__)

REFRESH = 60.0
FETCH_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class GroupVersion:
    """One aggregated group-version and what its server said about it."""

    group: str
    version: str
    group_priority: int
    version_priority: int
    resources: tuple[dict[str, Any], ...]  # APIResourceList.resources as fetched
    fresh: bool
    openapi: bytes | None = None
    openapi_hash: str = ""


def version_sort_key(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering (GA > beta > alpha, then by numbers)."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0, version)
    major = int(match.group(1))
    stage = {"beta": 1, "alpha": 2}.get(match.group(2) or "", 0)
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor, version)


def aggregated_resources(
    group: str, version: str, resources: tuple[dict[str, Any], ...]
) -> list[dict[str, Any]]:
    """An APIResourceList's entries in the ``apidiscovery.k8s.io/v2`` shape."""
    out: dict[str, dict[str, Any]] = {}
    subs: list[tuple[str, str, dict[str, Any]]] = []
    for entry in resources:
        name = str(entry.get("name") or "")
        if "/" in name:
            parent, _, sub = name.partition("/")
            subs.append((parent, sub, entry))
            continue
        item: dict[str, Any] = {
            "resource": name,
            "responseKind": {
                "group": entry.get("group", group),
                "version": entry.get("version", version),
                "kind": entry.get("kind", ""),
            },
            "scope": "Namespaced" if entry.get("namespaced") else "Cluster",
            "singularResource": entry.get("singularName") or "",
            "verbs": list(entry.get("verbs") or []),
        }
        if entry.get("shortNames"):
            item["shortNames"] = list(entry["shortNames"])
        if entry.get("categories"):
            item["categories"] = list(entry["categories"])
        out[name] = item
    for parent, sub, entry in subs:
        owner = out.get(parent)
        if owner is None:
            continue
        owner.setdefault("subresources", []).append(
            {
                "subresource": sub,
                "responseKind": {
                    "group": entry.get("group", group),
                    "version": entry.get("version", version),
                    "kind": entry.get("kind", ""),
                },
                "verbs": list(entry.get("verbs") or []),
            }
        )
    return list(out.values())


def ordered_groups(gvs: list[GroupVersion]) -> list[tuple[str, list[GroupVersion]]]:
    """Groups by priority (highest ``groupPriorityMinimum`` of any version, then name),
    versions by ``versionPriority`` then Kubernetes version order."""
    by_group: dict[str, list[GroupVersion]] = {}
    for gv in gvs:
        by_group.setdefault(gv.group, []).append(gv)
    groups = sorted(
        by_group.items(), key=lambda item: (-max(v.group_priority for v in item[1]), item[0])
    )
    return [
        (group, sorted(versions, key=lambda v: (-v.version_priority, version_sort_key(v.version))))
        for group, versions in groups
    ]


class ExtensionDiscovery:
    """Fetches the aggregated servers' discovery and OpenAPI; holds the latest."""

    def __init__(
        self,
        *,
        cache: watchcache.WatchCache,
        clients: client.ClientManager,
        services: resolver.ServiceResolver,
        local_group_versions: Callable[[], set[tuple[str, str]]],
        changed: Callable[[], None],
        refresh: float = REFRESH,
    ) -> None:
        self.cache = cache
        self.clients = clients
        self.services = services
        self.local_group_versions = local_group_versions
        self.changed = changed
        self.refresh = refresh
        self.group_versions: tuple[GroupVersion, ...] = ()
        self._wake = asyncio.Event()
        self.generation = 0

    def poke(self) -> None:
        """APIServices changed: fetch again now."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self.fetch_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.refresh)

    def _api_services(self) -> list[dict[str, Any]]:
        resource = self.cache.caches.get(available.API_SERVICES)
        if resource is None:
            return []
        local = self.local_group_versions()
        out = []
        for entry in resource.snapshot(available.API_SERVICES):
            spec = entry.obj.get("spec") or {}
            if not isinstance(spec.get("service"), dict):
                continue
            if (spec.get("group"), spec.get("version")) in local:
                continue  # served here too: our own documents describe it
            out.append(entry.obj)
        return out

    async def fetch_all(self) -> None:
        previous = {(gv.group, gv.version): gv for gv in self.group_versions}
        results = await asyncio.gather(
            *(self._fetch(obj, previous) for obj in self._api_services())
        )
        fetched = tuple(gv for gv in results if gv is not None)
        if fetched != self.group_versions:
            self.group_versions = fetched
            self.generation += 1
            self.changed()

    async def _get(self, obj: dict[str, Any], path: str) -> bytes | None:
        spec = obj.get("spec") or {}
        ref = spec.get("service") or {}
        namespace, name = str(ref.get("namespace") or ""), str(ref.get("name") or "")
        try:
            address = self.services.resolve(namespace, name, int(ref.get("port") or 443))
            context = self.clients.ssl_context(
                client.decode_ca_bundle(spec.get("caBundle")),
                insecure=spec.get("insecureSkipTLSVerify") is True,
            )
        except (resolver.ResolveError, client.CallError) as exc:
            log.debug("discovery of %s skipped: %s", obj["metadata"]["name"], exc)
            return None
        target = client.Target(
            f"https://{address.netloc}{path}", None, f"{name}.{namespace}.svc", None, context
        )
        headers = {
            frontproxy.USER_HEADER: available.AGGREGATOR_USER,
            frontproxy.GROUP_HEADER: "system:masters",
        }
        try:
            response = await self.clients.send(
                target, "GET", None, timeout=FETCH_TIMEOUT, headers=headers
            )
        except client.CallError as exc:
            log.info("discovery of %s failed: %s", obj["metadata"]["name"], exc)
            return None
        if response.status != 200:
            log.info(
                "discovery of %s: %s answered %d", obj["metadata"]["name"], path, response.status
            )
            return None
        return response.body

    async def _fetch(
        self, obj: dict[str, Any], previous: dict[tuple[str, str], GroupVersion]
    ) -> GroupVersion | None:
        spec = obj.get("spec") or {}
        group, version = str(spec.get("group") or ""), str(spec.get("version") or "")
        group_priority = int(spec.get("groupPriorityMinimum") or 0)
        version_priority = int(spec.get("versionPriority") or 0)
        old = previous.get((group, version))
        resources: tuple[dict[str, Any], ...] | None = None
        if available.is_available(obj):
            body = await self._get(obj, f"/apis/{group}/{version}")
            if body is not None:
                try:
                    doc = orjson.loads(body)
                    resources = tuple(r for r in doc.get("resources") or [] if isinstance(r, dict))
                except (orjson.JSONDecodeError, AttributeError):
                    resources = None
        if resources is None:
            if old is None:
                return GroupVersion(group, version, group_priority, version_priority, (), False)
            return GroupVersion(
                group, version, group_priority, version_priority, old.resources, False,
                old.openapi, old.openapi_hash,
            )  # fmt: skip
        openapi, openapi_hash = await self._openapi(obj, group, version, old)
        return GroupVersion(
            group, version, group_priority, version_priority, resources, True, openapi, openapi_hash
        )

    async def _openapi(
        self, obj: dict[str, Any], group: str, version: str, old: GroupVersion | None
    ) -> tuple[bytes | None, str]:
        index_body = await self._get(obj, "/openapi/v3")
        if index_body is None:
            return (old.openapi, old.openapi_hash) if old is not None else (None, "")
        try:
            paths = orjson.loads(index_body).get("paths") or {}
        except (orjson.JSONDecodeError, AttributeError):
            return None, ""
        entry = paths.get(f"apis/{group}/{version}")
        if not isinstance(entry, dict):
            return None, ""
        relative = str(entry.get("serverRelativeURL") or f"/openapi/v3/apis/{group}/{version}")
        remote_hash = relative.partition("hash=")[2]
        if (
            old is not None
            and old.openapi is not None
            and remote_hash
            and old.openapi_hash == remote_hash
        ):
            return old.openapi, old.openapi_hash
        body = await self._get(obj, relative)
        if body is None:
            return None, ""
        return body, remote_hash or hashlib.sha512(body).hexdigest().upper()

    # --- readers ------------------------------------------------------------------
    def openapi_paths(self) -> dict[str, str]:
        """``apis/<group>/<version>`` → hash, for the OpenAPI index."""
        return {
            f"apis/{gv.group}/{gv.version}": gv.openapi_hash
            for gv in self.group_versions
            if gv.openapi is not None
        }

    def openapi_document(self, path: str) -> tuple[bytes, str] | None:
        for gv in self.group_versions:
            if f"apis/{gv.group}/{gv.version}" == path and gv.openapi is not None:
                return gv.openapi, gv.openapi_hash
        return None
