"""Parse a request path into what it names (upstream's ``RequestInfo``).

``/apis/apps/v1/namespaces/default/deployments/web/scale`` becomes group
``apps``, version ``v1``, namespace ``default``, resource ``deployments``, name
``web``, subresource ``scale``. The verb follows from the method and from
whether a name is present (``list`` vs ``get``, ``watch`` when ``?watch=true``
or the legacy ``/watch/`` prefix).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pilothouse.api import errors, resources

# Where :func:`parse_once` keeps a request's parse: (registry, path, RequestInfo).
_PARSED_KEY: web.RequestKey[tuple[Any, ...]] = web.RequestKey("request_info", tuple)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    resource: resources.Resource
    namespace: str
    name: str
    subresource: str
    legacy_watch: bool = False

    @property
    def group(self) -> str:
        return self.resource.group


class NotAResource(Exception):
    """The path is not a resource path (discovery, health, …)."""


def parse(path: str, registry: resources.Registry) -> RequestInfo:
    """Resolve a resource path, raising StatusError 404 for unknown resources.

    Raises NotAResource for paths that are not resource paths at all, such as
    ``/api/v1`` itself (discovery)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise NotAResource(path)
    if not rest:
        raise NotAResource(path)
    if (group, version) not in registry.group_versions:
        raise _not_found_path(path)

    legacy_watch = False
    if rest[0] == "watch":
        legacy_watch = True
        rest = rest[1:]
        if not rest:
            raise _not_found_path(path)

    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        # /namespaces/{ns}/{resource}[/{name}[/{sub}]] — unless the resource
        # named is the namespace itself (/namespaces/{name}/status|finalize).
        candidate = registry.by_path(group, version, rest[2])
        if group == "" and version == "v1" and rest[2] in ("status", "finalize") and len(rest) == 3:
            candidate = None
        if candidate is not None and candidate.namespaced:
            namespace = rest[1]
            rest = rest[2:]
    if len(rest) > 3:
        raise _not_found_path(path)
    plural = rest[0]
    resource = registry.by_path(group, version, plural)
    if resource is None:
        raise _not_found_path(path)
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if subresource and not resource.has(subresource):
        raise _not_found_path(path)
    if resource.namespaced and name and not namespace:
        # /api/v1/pods/foo is not a thing: a named object needs its namespace.
        raise _not_found_path(path)
    return RequestInfo(resource, namespace, name, subresource, legacy_watch)


def parse_once(
    request: MutableMapping[Any, Any], path: str, registry: resources.Registry
) -> RequestInfo:
    """:func:`parse` for a request, done once whoever asks (the metrics middleware, the
    auditor and the dispatcher each need it; their parses were ~1 % of a rollout's
    server CPU). ``path`` is the request's path; trailing slashes do not matter, as
    they do not to :func:`parse`. A failure is not kept: it is raised each time."""
    kept = request.get(_PARSED_KEY)
    if kept is not None and kept[0] is registry and kept[1] == path.rstrip("/"):
        info: RequestInfo = kept[2]
        return info
    info = parse(path, registry)
    request[_PARSED_KEY] = (registry, path.rstrip("/"), info)
    return info


def _not_found_path(path: str) -> errors.StatusError:
    return errors.StatusError(
        404, errors.NOT_FOUND, "the server could not find the requested resource"
    )
