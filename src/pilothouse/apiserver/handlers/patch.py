"""PATCH: JSON patch, merge patch, strategic merge patch and server-side apply.

The patch is applied to the current object inside the registry's update loop,
so a concurrent write makes it apply again to the fresh object (unless the
patch itself names a resourceVersion, which is then a precondition). Nothing
is stored unless the whole patched object passes field validation and the
kind's validation. Server-side apply (``application/apply-patch+yaml``) merges
the applied configuration with field ownership, and creates the object when it
does not exist.

Subresources patch their own view: ``/status`` patches the object (only its
status is kept), ``/scale`` patches the autoscaling/v1 Scale view.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from pilothouse.api import errors, fieldmanager, meta, schema
from pilothouse.api import patch as patch_engines
from pilothouse.api.meta import Obj
from pilothouse.apiserver import negotiation, requestcontext
from pilothouse.apiserver import request as request_info
from pilothouse.apiserver.handlers import body, render, subresources
from pilothouse.apiserver.handlers.options import WriteParams
from pilothouse.apiserver.registry.store import ResourceStore

ACCEPTED = [
    negotiation.JSON_PATCH,
    negotiation.MERGE_PATCH,
    negotiation.STRATEGIC_PATCH,
    negotiation.APPLY_PATCH,
]


def manager_name(request: web.Request, write: WriteParams) -> str:
    return write.field_manager or fieldmanager.default_manager(
        request.headers.get("User-Agent", "")
    )


def _view(
    store: ResourceStore, subresource: str
) -> tuple[Callable[[Obj], Obj], Callable[[Obj, Obj], Obj], str, str]:
    """(to view, back to object, view apiVersion, view kind) for what the patch addresses."""
    if subresource == "scale":
        return (
            functools.partial(subresources.scale_of, store),
            functools.partial(subresources.with_scale, store),
            "autoscaling/v1",
            "Scale",
        )
    r = store.resource
    return (lambda o: o), (lambda _o, v: v), r.api_version, r.kind


def _check_fields(
    obj: Obj,
    api_version: str,
    kind: str,
    validation: str,
    warnings: list[str],
    store: ResourceStore | None = None,
) -> None:
    group, _, version = api_version.rpartition("/")
    custom = store.strategy.body_problems(obj) if store is not None else None
    problems = (
        custom
        if custom is not None
        else schema.field_problems(group, version, kind, obj, prune=True)
    )
    if problems.type_errors:
        raise schema.decode_error(kind, version, problems.type_errors[0])
    if validation in ("Strict", "Warn") and problems.unknown:
        found = [schema.unknown_field(p) for p in problems.unknown]
        if validation == "Strict":
            raise schema.strict_decoding_error(kind, version, found)
        warnings.extend(found)


async def patch(
    request: web.Request, store: ResourceStore, info: request_info.RequestInfo
) -> web.StreamResponse:
    output = negotiation.negotiate(request.headers.get("Accept"))
    content_type = request.headers.get("Content-Type", "")
    patch_type = negotiation.body_type(content_type)
    accepted = ACCEPTED
    if info.subresource != "scale" and store.strategy.patch_types is not None:
        accepted = list(store.strategy.patch_types)
    if patch_type not in accepted:
        if patch_type == negotiation.STRATEGIC_PATCH and accepted is not ACCEPTED:
            # A custom kind: upstream's words, without the media type received.
            raise errors.StatusError(
                415, errors.UNSUPPORTED_MEDIA_TYPE, patch_engines.UNSUPPORTED_MEDIA_TYPE
            )
        raise errors.unsupported_media_type(content_type, accepted)
    write = WriteParams.parse(request.query, options_kind="PatchOptions")
    is_apply = patch_type == negotiation.APPLY_PATCH
    if write.force and not is_apply:
        raise errors.invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            [errors.field_forbidden("force", "may not be specified for non-apply patch")],
        )
    if is_apply and not write.field_manager:
        raise errors.invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            [errors.required("fieldManager", "is required for apply patch")],
        )
    manager = manager_name(request, write)
    raw = await body.read(request)
    warnings: list[str] = []
    to_view, from_view, view_api_version, view_kind = _view(store, info.subresource)

    if is_apply:
        config = body.decode_object(
            raw,
            negotiation.YAML,
            resource=store.resource,
            kind=view_kind,
            api_version=view_api_version,
            field_validation=write.field_validation,
            warnings=warnings,
            problems=None if info.subresource == "scale" else store.strategy.body_problems,
        )
        config_md = config.get("metadata") or {}
        if config_md.get("name") not in (None, info.name):
            raise errors.bad_request(
                f"the name of the object ({config_md.get('name')}) does not match the name on the URL ({info.name})"
            )
        if store.resource.namespaced and config_md.get("namespace") not in (
            None,
            "",
            info.namespace,
        ):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
    else:
        document, _ = body.parse(raw, negotiation.JSON, find_duplicates=False)
    audited = requestcontext.auditing()
    if audited is not None:
        # The audit log keeps the patch as JSON on one line (YAML apply patches converted).
        audited.log_request_patch(orjson.dumps(config if is_apply else document))

    now = meta.now()
    strategy = store.strategy

    async def mutate(current: Obj) -> Obj:
        view = to_view(current)
        try:
            if is_apply:
                patched = fieldmanager.apply(
                    live=view,
                    config=config,
                    manager=manager,
                    api_version=view_api_version,
                    force=write.force,
                    subresource=info.subresource,
                    now=now,
                    kind=view_kind,
                    status_subresource=strategy.status_subresource(),
                    typ=None if info.subresource == "scale" else strategy.field_type(),
                )
            else:
                patched = _apply_patch(
                    view,
                    document,
                    patch_type,
                    write,
                    view_api_version,
                    view_kind,
                    warnings,
                    None if info.subresource == "scale" else store,
                )
        except fieldmanager.ApplyConflict as conflict:
            raise conflict.status(
                kind=view_kind, group=store.resource.group, name=info.name
            ) from None
        except fieldmanager.ApplyError as exc:
            raise exc.status() from None
        except patch_engines.PatchError as exc:
            raise exc.status_error() from None
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata", {}), dict):
            raise errors.bad_request("the patch must result in an object with object metadata")
        # A resourceVersion the patch itself carries is a precondition; otherwise
        # the patch applies to whatever is current.
        patched_md = patched.setdefault("metadata", {})
        patch_rv = _patch_resource_version(config if is_apply else document)
        if patch_rv:
            patched_md["resourceVersion"] = patch_rv
        else:
            patched_md.pop("resourceVersion", None)
        new = from_view(current, patched)
        _check_name(new, info)
        if not is_apply:
            # Field ownership is recorded on the object, also for /scale (as upstream).
            new = fieldmanager.update_managed_fields(
                live=current,
                new=new,
                manager=manager,
                api_version=store.resource.api_version,
                subresource=info.subresource,
                now=now,
                status_subresource=strategy.status_subresource(),
                typ=strategy.field_type(),
            )
        return new

    try:
        result = await store.guaranteed_update(
            info.namespace, info.name, mutate, dry_run=write.dry_run, subresource=info.subresource
        )
        status = 200
    except errors.StatusError as exc:
        if not (errors.is_not_found(exc) and is_apply and not info.subresource):
            raise
        try:
            created = fieldmanager.apply(
                live=None,
                config=config,
                manager=manager,
                api_version=view_api_version,
                force=write.force,
                now=now,
                kind=view_kind,
                status_subresource=strategy.status_subresource(),
                typ=strategy.field_type(),
            )
        except fieldmanager.ApplyError as apply_error:
            raise apply_error.status() from None
        created.setdefault("metadata", {})["name"] = info.name
        result = await store.create(info.namespace, created, dry_run=write.dry_run)
        status = 201
    if info.subresource == "scale":
        return render.response(
            negotiation.encode(subresources.scale_of(store, result), output.media_type),
            output,
            status,
            warnings,
        )
    return render.response(
        render.object_body(store.resource, result, output), output, status, warnings
    )


def _apply_patch(
    view: Obj,
    document: Any,
    patch_type: str,
    write: WriteParams,
    api_version: str,
    kind: str,
    warnings: list[str],
    store: ResourceStore | None = None,
) -> Any:
    """Apply a non-apply patch to ``view`` and check the result's fields."""
    if patch_type == negotiation.JSON_PATCH:
        if write.field_validation in ("Strict", "Warn"):
            problems = patch_engines.json_patch_strict_problems(document)
            if problems and write.field_validation == "Strict":
                raise schema.strict_decoding_error(kind, api_version.rpartition("/")[2], problems)
            warnings.extend(problems)
        patched = patch_engines.apply_json_patch(
            view, document, field_validation=write.field_validation
        )
    elif patch_type == negotiation.MERGE_PATCH:
        patched = patch_engines.apply_merge_patch(
            view, document, field_validation=write.field_validation
        )
    else:
        group, _, version = api_version.rpartition("/")
        patched = patch_engines.apply_strategic_merge_patch(
            view, document, group=group, version=version, kind=kind
        )
    if isinstance(patched, dict):
        _check_fields(patched, api_version, kind, write.field_validation, warnings, store)
    return patched


def _check_name(obj: Obj, info: request_info.RequestInfo) -> None:
    """Upstream's checkName: a patch cannot rename or move an object (400)."""
    md = obj.get("metadata") or {}
    name = md.get("name") or ""
    if name != info.name:
        raise errors.bad_request(
            f"the name of the object ({name}) does not match the name on the URL ({info.name})"
        )
    namespace = md.get("namespace") or ""
    if info.namespace and namespace and namespace != info.namespace:
        raise errors.bad_request(
            f"the namespace of the provided object ({namespace}) does not match the namespace sent on the request ({info.namespace})"
        )


def _patch_resource_version(document: Any) -> str:
    if isinstance(document, dict):
        md = document.get("metadata")
        if isinstance(md, dict) and isinstance(md.get("resourceVersion"), str):
            return str(md["resourceVersion"])
    return ""
