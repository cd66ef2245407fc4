"""Object history over HTTP: ``GET /history/<the object's own path>``.

``/history/api/v1/namespaces/dev/secrets/db`` answers every retained revision of
that Secret, oldest first, as an ``ObjectHistory`` (group ``history.pilothouse.dev``):
each revision's resourceVersion, commit time, user, field manager, operation and
subresource, whether it was the delete, and the object as it was. The path of the
object is the rest of the URL, so the request is authorized exactly as a GET of the
object (the authentication middleware strips the prefix before it asks the
authorizer): a user who cannot read a Secret cannot read its history, and history
of a deleted object is readable by whoever could read it by that name.

Requests are independent coroutines; each reads the store once.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from pilothouse.api import errors, meta, resources
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.registry.store import ResourceStore
from pilothouse.storage import history

PREFIX = "/history"
API_VERSION = "history.pilothouse.dev/v1"


def object_path(path: str) -> str | None:
    """The object's own path inside a history path (None: not a history path)."""
    if path.startswith(PREFIX + "/"):
        return path[len(PREFIX) :]
    return None


class HistoryAPI:
    """Serves ``/history/…`` from a store that keeps history."""

    def __init__(
        self,
        *,
        registry: resources.Registry,
        stores: dict[resources.Resource, ResourceStore],
        backend: object,
    ) -> None:
        self.registry = registry
        self.stores = stores
        self.backend = backend

    async def handle(self, request: web.Request, path: str) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed("")
        try:
            info = request_info.parse(path, self.registry)
        except request_info.NotAResource:
            raise errors.StatusError(
                404, errors.NOT_FOUND, "the server could not find the requested resource"
            ) from None
        if not info.name or info.subresource or info.legacy_watch:
            raise errors.bad_request(
                "history is kept per object: use /history/<the object's path>, such as"
                " /history/apis/apps/v1/namespaces/default/deployments/web"
            )
        store = self.stores.get(info.resource)
        if store is None or not info.resource.stored:
            raise errors.not_found(info.resource.plural, info.resource.group, info.name)
        backend = self.backend
        if not isinstance(backend, history.HistoryStore) or not backend.history_retention:
            raise errors.StatusError(
                405,
                errors.METHOD_NOT_ALLOWED,
                "this server keeps no object history: start it with --history-retention"
                " above 0 on the embedded SQLite datastore",
            )
        revisions = await backend.history(store.key(info.namespace, info.name))
        if not revisions:
            raise errors.not_found(info.resource.plural, info.resource.group, info.name)
        objects = [store.output(orjson.loads(rev.kv.value)) for rev in revisions]
        if store.remote is not None:
            # A custom resource converted by its webhook: every revision in one call.
            objects = await store.remote.to_api(objects)
        body = self._render(info, revisions, objects, retention=backend.history_retention)
        return web.Response(
            body=orjson.dumps(body) + b"\n", content_type="application/json", status=200
        )

    def _render(
        self,
        info: request_info.RequestInfo,
        revisions: list[history.Revision],
        objects: list[Any],
        *,
        retention: float,
    ) -> dict[str, Any]:
        items = []
        for rev, obj in zip(revisions, objects, strict=True):
            obj.setdefault("metadata", {})["resourceVersion"] = str(rev.kv.mod_revision)
            items.append(
                {
                    "resourceVersion": str(rev.kv.mod_revision),
                    "time": meta.format_micro_time(rev.time) if rev.time else None,
                    "user": rev.origin.user,
                    "manager": rev.origin.manager,
                    "operation": rev.origin.operation,
                    "subresource": rev.origin.subresource,
                    "deleted": rev.deleted,
                    "object": obj,
                }
            )
        r = info.resource
        return {
            "kind": "ObjectHistory",
            "apiVersion": API_VERSION,
            "metadata": {
                "name": info.name,
                **({"namespace": info.namespace} if info.namespace else {}),
            },
            "resource": {"group": r.group, "version": r.version, "resource": r.plural},
            "kindOf": r.kind,
            "retentionSeconds": int(retention),
            "revisions": items,
        }
