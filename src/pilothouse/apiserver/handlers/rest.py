"""Resource requests: the verbs on ``/api/v1/…`` and ``/apis/<group>/<version>/…``.

One :class:`ResourceAPI` routes every resource request to its registry store
(``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``, ``delete``,
``deletecollection``) and to subresource handlers. Requests run concurrently;
each is a coroutine that awaits the store or the watch cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from pilothouse.api import defaults, errors, resources, selectors
from pilothouse.api.meta import Obj
from pilothouse.apiserver import cacheentry, negotiation, requestcontext
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.handlers import body, patch, render, watch
from pilothouse.apiserver.handlers.options import DeleteParams, ListParams, WriteParams
from pilothouse.apiserver.registry import deletion
from pilothouse.apiserver.registry.listing import ListOptions, list_metadata
from pilothouse.apiserver.registry.store import ResourceStore

SubresourceHandler = Callable[
    [web.Request, ResourceStore, request_info.RequestInfo], Awaitable[web.StreamResponse]
]


def log_request_object(
    resource: resources.Resource, obj: Obj, subresource: str = "", *, kind: str = ""
) -> None:
    """Hand the decoded body to the audit log, defaulted as upstream's decoder leaves it
    (only when the request is audited: the copy costs)."""
    ctx = requestcontext.auditing()
    if ctx is None:
        return
    if ctx.audit.keeps_request_object():
        copy = orjson.loads(orjson.dumps(obj))
        defaults.apply_defaults(resource.group, resource.version, kind or resource.kind, copy)
        obj = copy
    ctx.log_request_object(
        obj,
        group=resource.group,
        version=resource.version,
        plural=resource.plural,
        subresource=subresource,
    )


# Subresources that open a stream (upstream's CONNECT verbs), and their options kinds.
CONNECT_OPTIONS = {
    "exec": "PodExecOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
    "proxy": "PodProxyOptions",
}


def connect_options(info: request_info.RequestInfo, query: Any) -> Obj:
    """The options object of a CONNECT request, as upstream decodes it from the query
    (what admission sees)."""
    kind = CONNECT_OPTIONS[info.subresource]
    if info.resource.plural == "nodes":
        kind = "NodeProxyOptions"
    elif info.resource.plural == "services":
        kind = "ServiceProxyOptions"
    options: Obj = {"kind": kind, "apiVersion": "v1"}
    if info.subresource in ("exec", "attach"):
        for key in ("stdin", "stdout", "stderr", "tty"):
            if query.get(key) in ("true", "1"):
                options[key] = True
        if query.get("container"):
            options["container"] = query["container"]
        if info.subresource == "exec":
            options["command"] = query.getall("command", [])
    elif info.subresource == "portforward":
        ports = [int(p) for p in query.getall("ports", []) if p.isdigit()]
        if ports:
            options["ports"] = ports
    elif query.get("path"):
        options["path"] = query["path"]
    return options


def build_filter(
    store: ResourceStore, label_selector: str, field_selector: str, name: str = ""
) -> cacheentry.Filter | None:
    """A predicate for the label and field selectors of a request (None: all)."""
    try:
        labels = selectors.parse_label_selector(label_selector) if label_selector else None
        fields = selectors.parse_field_selector(field_selector) if field_selector else None
        if fields is not None:
            # Aliases (spec.host, regarding.*) become the fields objects carry.
            fields = store.strategy.convert_field_selector(fields, store.resource)
    except selectors.SelectorError as exc:
        raise errors.bad_request(str(exc)) from None
    if labels is not None and labels.empty:
        labels = None
    if fields is not None and not fields.requirements:
        fields = None
    if labels is None and fields is None and not name:
        return None
    object_fields = store.strategy.object_fields
    requested = store.resource

    def match(obj: Obj) -> bool:
        md = obj.get("metadata") or {}
        if name and md.get("name") != name:
            return False
        if labels is not None and not labels.matches(md.get("labels") or {}):
            return False
        return fields is None or fields.matches(object_fields(obj, requested))

    return match


class ResourceAPI:
    """Serves resource paths for every store in ``stores``."""

    def __init__(
        self,
        *,
        registry: resources.Registry,
        stores: dict[resources.Resource, ResourceStore],
        subresources: dict[str, SubresourceHandler] | None = None,
    ) -> None:
        self.registry = registry
        self.stores = stores
        self.subresources = subresources or {}
        self.patcher = patch.patch

    async def handle(
        self, request: web.Request, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        resp = await self._handle(request, info)
        store = self.stores.get(info.resource)
        warning = store.strategy.deprecation_warning if store is not None else None
        if warning and not resp.prepared:
            # A deprecated version of a custom resource (the CRD's deprecationWarning).
            resp.headers.add("Warning", f'299 - "{warning}"')
        return resp

    async def _handle(
        self, request: web.Request, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        store = self.stores.get(info.resource)
        method = request.method
        verb_allowed = info.resource.verbs
        if info.subresource:
            if method == "PATCH" and info.subresource in ("status", "scale") and store is not None:
                return await self.patcher(request, store, info)
            if info.subresource == "status":
                return await self._status(request, store, info)
            handler = self.subresources.get(info.subresource)
            if handler is None or (store is None and info.subresource != "binding"):
                raise errors.method_not_allowed("")
            assert store is not None
            if info.subresource in CONNECT_OPTIONS:
                await store.connect(
                    info.namespace,
                    info.name,
                    info.subresource,
                    connect_options(info, request.query),
                )
            return await handler(request, store, info)
        if store is None:
            # Create-only virtual resources (bindings) are served as subresources.
            handler = self.subresources.get(info.resource.plural)
            if handler is not None and method == "POST":
                return await handler(request, self.stores[self._pods()], info)
            raise errors.method_not_allowed("")
        if method == "GET":
            params = ListParams.parse(request.query)
            if info.legacy_watch or params.watch:
                _require(verb_allowed, "watch")
                return await self._watch(request, store, info, params)
            if info.name:
                _require(verb_allowed, "get")
                return await self._get(request, store, info)
            _require(verb_allowed, "list")
            return await self._list(request, store, info, params)
        if method == "POST" and not info.name:
            _require(verb_allowed, "create")
            return await self._create(request, store, info)
        if method == "PUT" and info.name:
            _require(verb_allowed, "update")
            return await self._update(request, store, info)
        if method == "PATCH" and info.name:
            _require(verb_allowed, "patch")
            return await self.patcher(request, store, info)
        if method == "DELETE" and info.name:
            _require(verb_allowed, "delete")
            return await self._delete(request, store, info)
        if method == "DELETE" and not info.name:
            _require(verb_allowed, "deletecollection")
            return await self._delete_collection(request, store, info)
        raise errors.method_not_allowed("")

    def _pods(self) -> resources.Resource:
        pods = self.registry.by_path("", "v1", "pods")
        assert pods is not None
        return pods

    # --- reads -------------------------------------------------------------
    async def _get(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.Response:
        output = negotiation.negotiate(request.headers.get("Accept"))
        params = ListParams.parse(request.query)
        obj = await store.get(info.namespace, info.name)
        return render.response(
            render.object_body(
                store.resource,
                obj,
                output,
                include_object=params.include_object,
                printer=store.strategy.printer(),
            ),
            output,
        )

    async def _list(
        self,
        request: web.Request,
        store: ResourceStore,
        info: request_info.RequestInfo,
        params: ListParams,
    ) -> web.Response:
        output = negotiation.negotiate(request.headers.get("Accept"))
        match = build_filter(store, params.label_selector, params.field_selector, info.name)
        page = await store.list(
            info.namespace,
            ListOptions(
                match=match,
                limit=params.limit,
                continue_token=params.continue_token,
                resource_version=params.resource_version,
                resource_version_match=params.resource_version_match,
            ),
        )
        entries = await store.api_entries(page.entries)
        body_bytes = render.list_body(
            store, entries, list_metadata(page), output, include_object=params.include_object
        )
        return render.response(body_bytes, output)

    async def _watch(
        self,
        request: web.Request,
        store: ResourceStore,
        info: request_info.RequestInfo,
        params: ListParams,
    ) -> web.StreamResponse:
        output = negotiation.negotiate(request.headers.get("Accept"))
        if output.media_type != negotiation.JSON:
            output = negotiation.Output(negotiation.JSON, output.form, output.version)
        match = build_filter(store, params.label_selector, params.field_selector, info.name)
        return await watch.serve(request, store, info.namespace, params, match, output)

    # --- writes ------------------------------------------------------------
    async def _create(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.Response:
        output = negotiation.negotiate(request.headers.get("Accept"))
        write = WriteParams.parse(request.query, options_kind="CreateOptions")
        warnings: list[str] = []
        raw = await body.read(request)
        obj = body.decode_object(
            raw,
            request.headers.get("Content-Type", ""),
            resource=store.resource,
            field_validation=write.field_validation,
            warnings=warnings,
            problems=store.strategy.body_problems,
        )
        if not store.resource.namespaced:
            pass
        elif not info.namespace:
            # POST /api/v1/pods: upstream requires the namespace in the path.
            raise errors.StatusError(
                404, errors.NOT_FOUND, "the server could not find the requested resource"
            )
        log_request_object(store.resource, obj)
        created = await store.create(
            info.namespace, obj, dry_run=write.dry_run, manager=patch.manager_name(request, write)
        )
        return render.response(
            render.object_body(store.resource, created, output), output, 201, warnings
        )

    async def _update(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.Response:
        output = negotiation.negotiate(request.headers.get("Accept"))
        write = WriteParams.parse(request.query, options_kind="UpdateOptions")
        warnings: list[str] = []
        raw = await body.read(request)
        obj = body.decode_object(
            raw,
            request.headers.get("Content-Type", ""),
            resource=store.resource,
            field_validation=write.field_validation,
            warnings=warnings,
            problems=store.strategy.body_problems,
        )
        log_request_object(store.resource, obj)
        updated, created = await store.update(
            info.namespace,
            info.name,
            obj,
            dry_run=write.dry_run,
            manager=patch.manager_name(request, write),
        )
        return render.response(
            render.object_body(store.resource, updated, output),
            output,
            201 if created else 200,
            warnings,
        )

    async def _status(
        self, request: web.Request, store: ResourceStore | None, info: request_info.RequestInfo
    ) -> web.StreamResponse:
        if store is None:
            raise errors.method_not_allowed("")
        output = negotiation.negotiate(request.headers.get("Accept"))
        if request.method == "GET":
            obj = await store.get(info.namespace, info.name)
            return render.response(render.object_body(store.resource, obj, output), output)
        if request.method == "PUT":
            write = WriteParams.parse(request.query, options_kind="UpdateOptions")
            warnings: list[str] = []
            raw = await body.read(request)
            obj = body.decode_object(
                raw,
                request.headers.get("Content-Type", ""),
                resource=store.resource,
                field_validation=write.field_validation,
                warnings=warnings,
                problems=store.strategy.body_problems,
            )
            log_request_object(store.resource, obj, "status")
            updated, _ = await store.update(
                info.namespace,
                info.name,
                obj,
                dry_run=write.dry_run,
                subresource="status",
                manager=patch.manager_name(request, write),
            )
            return render.response(
                render.object_body(store.resource, updated, output), output, 200, warnings
            )
        raise errors.method_not_allowed("")

    async def _delete(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.Response:
        output = negotiation.negotiate(request.headers.get("Accept"))
        params = await _delete_options(request)
        options = params.to_options()
        obj, gone = await store.delete(info.namespace, info.name, options)
        warnings = _delete_warnings(store, options)
        # Upstream answers 202 when the object stays and the client asked for
        # cascading deletion the old way (orphanDependents=false).
        code = 202 if not gone and options.orphan_dependents is False else 200
        if not gone or store.strategy.return_deleted_object:
            return render.response(
                render.object_body(store.resource, obj, output), output, code, warnings
            )
        return render.response(
            negotiation.encode(deleted_status(store.resource, obj), output.media_type),
            output,
            code,
            warnings,
        )

    async def _delete_collection(
        self, request: web.Request, store: ResourceStore, info: request_info.RequestInfo
    ) -> web.Response:
        output = negotiation.negotiate(request.headers.get("Accept"))
        params = ListParams.parse(request.query)
        options = await _delete_options(request)
        match = build_filter(store, params.label_selector, params.field_selector)
        page = await store.list(info.namespace, ListOptions(match=match))
        delete_options = options.to_options()
        for entry in page.entries:
            md = entry.obj["metadata"]
            try:
                await store.delete(md.get("namespace", ""), md["name"], delete_options)
            except errors.StatusError as exc:
                if errors.is_not_found(exc):
                    continue
                raise
        # Upstream answers with the list as it was before the deletions.
        body_bytes = render.list_body(store, page.entries, list_metadata(page), output)
        return render.response(body_bytes, output, 200, _delete_warnings(store, delete_options))


def deleted_status(resource: resources.Resource, obj: Obj) -> Obj:
    """The success Status of a kind that does not return the deleted object
    (upstream's finalizeDelete: ``details.kind`` holds the resource, not the kind)."""
    md = obj.get("metadata") or {}
    details: Obj = {"name": md.get("name", "")}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.plural
    if md.get("uid"):
        details["uid"] = md["uid"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _delete_warnings(store: ResourceStore, options: deletion.Options) -> list[str]:
    strategy = store.strategy
    if (
        strategy.default_gc_warning
        and not options.propagation_policy
        and options.orphan_dependents is None
    ):
        return [strategy.default_gc_warning]
    return []


async def _delete_options(request: web.Request) -> DeleteParams:
    options_body: dict[str, Any] | None = None
    if request.can_read_body:
        raw = await body.read(request)
        if raw.strip():
            value, _ = body.parse(
                raw, request.headers.get("Content-Type", ""), find_duplicates=False
            )
            if not isinstance(value, dict):
                raise errors.bad_request(
                    "the body of a DELETE request must be a DeleteOptions object"
                )
            options_body = value
    return DeleteParams.parse(request.query, options_body)


def _require(verbs: tuple[str, ...], verb: str) -> None:
    if verb not in verbs:
        raise errors.method_not_allowed("")
