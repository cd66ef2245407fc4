"""The OpenAPI v3 group-version documents merged into one swagger 2.0 document.

kube-apiserver builds ``/openapi/v2`` from the same route and schema definitions as
its v3 documents; we build it from our v3 documents, so both always agree:

* ``definitions`` are the union of the documents' component schemas with
  ``#/components/schemas/X`` → ``#/definitions/X``; a v3 ``{"allOf": [{"$ref": …}],
  "description": …}`` wrapper becomes upstream's v2 ``{"$ref": …, "description": …}``.
  What swagger 2.0 cannot say is dropped as apiextensions' ``ToStructuralOpenAPIV2``
  drops it for custom resources: ``oneOf``/``anyOf``/``not`` (and an ``allOf`` that is
  no reference wrapper); a ``nullable`` schema loses its type, items and properties
  and leaves its parent's ``required``; ``x-kubernetes-preserve-unknown-fields`` drops
  items and properties (and ``type: object``); an array without items loses its type
  — kubectl's parser (kube-openapi ``proto.NewOpenAPIData``) rejects those shapes.
  ``IntOrString`` and ``Quantity`` take upstream's v2 shapes (``type: string``).
* ``paths``: each v3 operation as a v2 one — ``requestBody`` → a ``body`` parameter,
  parameter ``schema`` → inline ``type``, response ``content`` → ``schema`` plus
  ``produces``, ``consumes`` (``*/*`` unless the body names its media types, as
  PATCH does), ``schemes: [https]``.
* Shared parameters move to the top-level ``parameters`` as kube-openapi's
  ``deduplicateParameters`` moves them, named ``<name>-<8 characters of FNV-64>``
  of their JSON — except ``name``, ``dryRun``, ``fieldValidation`` (kubectl looks
  for it inline on the PATCH operation) and bodies that are a kind's own schema.
  (The hash is of our JSON, so the names differ from upstream's; nothing keys on them.)
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import orjson

V3_PREFIX = "#/components/schemas/"
DEFINITIONS = "#/definitions/"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

# What gnostic's swagger 2.0 Schema has besides x- extensions; others make it fail.
_SCHEMA_KEYS = frozenset(
    {
        "format",
        "title",
        "description",
        "default",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "required",
        "enum",
        "additionalProperties",
        "type",
        "items",
        "properties",
        "discriminator",
        "readOnly",
        "externalDocs",
        "example",
    }
)
_PARAMETER_SCHEMA_KEYS = frozenset(
    {"type", "format", "items", "default", "enum", "uniqueItems", "maximum", "minimum", "pattern"}
)
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_V2_SHAPES = {
    INT_OR_STRING: {"format": "int-or-string", "type": "string"},
    QUANTITY: {"type": "string"},
}
SECURITY_DEFINITIONS = {
    "BearerToken": {
        "description": "Bearer Token authentication",
        "in": "header",
        "name": "authorization",
        "type": "apiKey",
    }
}


def _ref(ref: str) -> str:
    return DEFINITIONS + ref.removeprefix(V3_PREFIX) if ref.startswith(V3_PREFIX) else ref


def _wrapped_ref(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return ref
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        inner = all_of[0].get("$ref")
        if isinstance(inner, str) and len(all_of[0]) == 1:
            return inner
    return None


def schema(node: Any) -> Any:
    """One v3 schema as a swagger 2.0 schema kubectl can parse."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-"):
            out[key] = value
        elif key not in _SCHEMA_KEYS:
            continue
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: schema(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = [schema(s) for s in value] if isinstance(value, list) else schema(value)
        elif key == "additionalProperties":
            out[key] = schema(value)
        else:
            out[key] = value
    ref = _wrapped_ref(node)
    if ref is not None:
        # kube-openapi rejects a reference with a type or properties of its own.
        out.pop("type", None)
        out.pop("properties", None)
        return {"$ref": _ref(ref), **out}
    if node.get("nullable") is True:
        for key in ("type", "items", "properties"):
            out.pop(key, None)
    if node.get("x-kubernetes-preserve-unknown-fields") is True:
        out.pop("items", None)
        out.pop("properties", None)
        if out.get("type") == "object":
            del out["type"]
    if out.get("type") == "array" and "items" not in out:
        del out["type"]
    props = node.get("properties")
    if isinstance(props, dict) and isinstance(out.get("required"), list):
        nullable = {n for n, s in props.items() if isinstance(s, dict) and s.get("nullable")}
        kept = [n for n in out["required"] if n not in nullable]
        if kept:
            out["required"] = kept
        else:
            del out["required"]
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("nullable") is True:
        out.pop("required", None)
    return out


def definition(name: str, node: dict[str, Any]) -> dict[str, Any]:
    shape = _V2_SHAPES.get(name)
    if shape is not None:
        described = {"description": node["description"]} if "description" in node else {}
        return {**described, **shape}
    converted: dict[str, Any] = schema(node)
    return converted


def _parameter(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return {"$ref": node["$ref"].replace("#/components/parameters/", "#/parameters/")}
    out: dict[str, Any] = {
        k: node[k] for k in ("description", "in", "name", "required") if k in node
    }
    for key, value in (node.get("schema") or {}).items():
        if key in _PARAMETER_SCHEMA_KEYS:
            out[key] = value
    return out


def _operation(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    params = [_parameter(p) for p in node.get("parameters", ())]
    consumes = ["*/*"]
    body = node.get("requestBody")
    if isinstance(body, dict):
        content = body.get("content") or {}
        if content and list(content) != ["*/*"]:
            consumes = list(content)
        first: dict[str, Any] = next(iter(content.values()), {})
        param: dict[str, Any] = {
            "in": "body",
            "name": "body",
            "schema": schema(first.get("schema")),
        }
        if body.get("required"):
            param["required"] = True
        params.append(param)
    out["consumes"] = consumes
    for key in ("description", "operationId", "summary", "deprecated"):
        if key in node:
            out[key] = node[key]
    if params:
        out["parameters"] = sorted(params, key=lambda p: (p.get("name", ""), p.get("in", "")))
    produces: list[str] = []
    responses: dict[str, Any] = {}
    for code, response in (node.get("responses") or {}).items():
        converted: dict[str, Any] = {"description": response.get("description", "")}
        content = response.get("content") or {}
        if content:
            produces.extend(m for m in content if m not in produces)
            converted["schema"] = schema(next(iter(content.values())).get("schema") or {})
        responses[code] = converted
    if produces:
        out["produces"] = produces
    out["responses"] = responses
    out["schemes"] = ["https"]
    if "tags" in node:
        out["tags"] = node["tags"]
    out.update((k, v) for k, v in node.items() if k.startswith("x-"))
    return out


def path_item(node: dict[str, Any]) -> dict[str, Any]:
    """One v3 path item as a v2 one."""
    out: dict[str, Any] = {}
    for method in _METHODS:
        if isinstance(node.get(method), dict):
            out[method] = _operation(node[method])
    if node.get("parameters"):
        out["parameters"] = [_parameter(p) for p in node["parameters"]]
    out.update((k, v) for k, v in node.items() if k.startswith("x-"))
    return out


# --- shared parameters ------------------------------------------------------------


def _shareable(p: dict[str, Any]) -> bool:
    if "$ref" in p:
        return False
    if p.get("name") == "name" and p.get("in") in ("query", "path"):
        return False
    if p.get("in") == "query" and p.get("name") in ("fieldValidation", "dryRun"):
        return False
    if p.get("in") == "body":
        ref = (p.get("schema") or {}).get("$ref", "")
        return isinstance(ref, str) and ref.startswith(DEFINITIONS + "io.k8s.apimachinery")
    return True


def _fnv64(data: bytes) -> bytes:
    """FNV-1, 64 bits (Go's ``hash/fnv.New64``), big-endian."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        value ^= byte
    return value.to_bytes(8, "big")


def _parameter_lists(paths: dict[str, Any]) -> Iterable[list[dict[str, Any]]]:
    for item in paths.values():
        for method in _METHODS:
            op = item.get(method)
            if isinstance(op, dict) and op.get("parameters"):
                yield op["parameters"]
        if item.get("parameters"):
            yield item["parameters"]


def deduplicate(paths: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Move shared parameters to the top level (in place); returns them by name."""
    by_json: dict[bytes, dict[str, Any]] = {}
    for params in _parameter_lists(paths):
        for p in params:
            if _shareable(p):
                by_json.setdefault(orjson.dumps(p, option=orjson.OPT_SORT_KEYS), p)
    names: dict[bytes, str] = {}
    shared: dict[str, dict[str, Any]] = {}
    for key in sorted(by_json):
        p = by_json[key]
        base = str(p.get("name") or "param")
        name = f"{base}-{base64.urlsafe_b64encode(_fnv64(key)[:6]).decode()}"
        n = 0
        while name in shared:
            n += 1
            name = f"{base}-{n}"
        shared[name] = p
        names[key] = name
    for params in _parameter_lists(paths):
        for i, p in enumerate(params):
            if _shareable(p):
                params[i] = {
                    "$ref": "#/parameters/" + names[orjson.dumps(p, option=orjson.OPT_SORT_KEYS)]
                }
    return dict(sorted(shared.items()))


def _dangling(node: Any, known: set[str]) -> Any:
    """References to definitions no document supplied become arbitrary values: one
    dangling reference would make kubectl reject the whole document."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if (
            isinstance(ref, str)
            and ref.startswith(DEFINITIONS)
            and ref[len(DEFINITIONS) :] not in known
        ):
            return {k: _dangling(v, known) for k, v in node.items() if k != "$ref"}
        return {k: _dangling(v, known) for k, v in node.items()}
    if isinstance(node, list):
        return [_dangling(v, known) for v in node]
    return node


def document(v3_documents: Iterable[dict[str, Any]], *, version: str) -> dict[str, Any]:
    """The swagger 2.0 document of all the given v3 documents."""
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for doc in v3_documents:
        for path, item in (doc.get("paths") or {}).items():
            if path not in paths and isinstance(item, dict):
                paths[path] = path_item(item)
        for name, node in ((doc.get("components") or {}).get("schemas") or {}).items():
            if name not in definitions and isinstance(node, dict):
                definitions[name] = definition(name, node)
    known = set(definitions)
    definitions = _dangling(definitions, known)
    paths = _dangling(dict(sorted(paths.items())), known)
    parameters = deduplicate(paths)
    return {
        "definitions": dict(sorted(definitions.items())),
        "info": {"title": "Kubernetes", "version": version},
        "parameters": parameters,
        "paths": paths,
        "security": [{"BearerToken": []}],
        "securityDefinitions": SECURITY_DEFINITIONS,
        "swagger": "2.0",
    }
