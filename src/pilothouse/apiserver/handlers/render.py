"""Turning objects and lists into response bodies in the negotiated form.

A JSON list splices each object's own encoding into the body
(``orjson.Fragment``): a version still in the watch cache's event window reuses
the encoding its watch event made; older ones are encoded here and not kept
(see :class:`~pilothouse.apiserver.cacheentry.Entry`).
"""

from __future__ import annotations

import time
import unicodedata
from typing import Any

import orjson
from aiohttp import web

from pilothouse.api import meta, resources
from pilothouse.api.meta import Obj
from pilothouse.apiserver import cacheentry, negotiation, table
from pilothouse.apiserver.registry.store import ResourceStore

JSON_CT = "application/json"
YAML_CT = "application/yaml"


def metadata_only(obj: Obj, version: str) -> Obj:
    return meta.wire_order(
        {
            "kind": "PartialObjectMetadata",
            "apiVersion": f"meta.k8s.io/{version}",
            "metadata": obj.get("metadata") or {},
        }
    )


def response(
    body: bytes, output: negotiation.Output, status: int = 200, warnings: list[str] | None = None
) -> web.Response:
    ct = YAML_CT if output.media_type == negotiation.YAML else JSON_CT
    resp = web.Response(body=body, status=status, content_type=ct)
    for w in warnings or ():
        if _printable(w):  # as upstream's NewWarningHeader, which refuses the others
            resp.headers.add("Warning", f'299 - "{_escape(w)}"')
    return resp


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _printable(text: str) -> bool:
    """No control characters (a field named ``"a\\nb"`` by a client, say): a header
    cannot carry them."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def object_body(
    resource: resources.Resource,
    obj: Obj,
    output: negotiation.Output,
    *,
    include_object: str = "Metadata",
    printer: table.Printer | None = None,
) -> bytes:
    if output.form == "table":
        t = table.build_table(
            resource,
            [obj],
            now=time.time(),
            list_metadata={
                "resourceVersion": (obj.get("metadata") or {}).get("resourceVersion", "")
            },
            include_object=include_object,
            printer=printer,
        )
        t["apiVersion"] = f"meta.k8s.io/{output.version}"
        return negotiation.encode(t, output.media_type)
    if output.form == "metadata":
        return negotiation.encode(metadata_only(obj, output.version), output.media_type)
    return negotiation.encode(meta.wire_order(obj), output.media_type)


def list_body(
    store: ResourceStore,
    entries: list[cacheentry.Entry],
    list_meta: dict[str, Any],
    output: negotiation.Output,
    *,
    include_object: str = "Metadata",
) -> bytes:
    resource = store.resource
    if output.form == "table":
        objs = [store.output(e.whole()) for e in entries]
        t = table.build_table(
            resource,
            objs,
            now=time.time(),
            list_metadata=list_meta,
            include_object=include_object,
            printer=store.strategy.printer(),
        )
        t["apiVersion"] = f"meta.k8s.io/{output.version}"
        return negotiation.encode(t, output.media_type)
    if output.form == "metadata":
        body: Obj = {
            "kind": "PartialObjectMetadataList",
            "apiVersion": f"meta.k8s.io/{output.version}",
            "metadata": list_meta,
            "items": [metadata_only(e.whole(), output.version) for e in entries],
        }
        return negotiation.encode(body, output.media_type)
    items: list[Any]
    if output.media_type == negotiation.JSON and store.convert is None:
        items = [orjson.Fragment(e.encode()) for e in entries]
    else:
        items = [meta.wire_order(store.output(e.whole())) for e in entries]
    body = {
        "kind": resource.list_kind,
        "apiVersion": resource.api_version,
        "metadata": list_meta,
        "items": items,
    }
    return negotiation.encode(body, output.media_type)
