"""OpenAPI v3 documents for the group-versions of custom resources.

What kube-apiserver publishes for a CRD version (``controller/openapi/builder``):
the REST paths of the resource (built like the built-in ones, by
:mod:`..handlers.openapi_paths`) and two component schemas named by the reversed
group (``com.example.stable.v1.CronTab`` and ``…CronTabList``): the version's
structural schema with ``apiVersion``, ``kind`` and ``metadata`` (ObjectMeta) added and
``x-kubernetes-group-version-kind`` set, so ``kubectl explain crontab.spec`` and
kubectl's field validation find it. PATCH operations accept JSON, merge and apply
patches only: there is no strategic-merge metadata for a custom kind, and kubectl's
client-side apply then computes a merge patch, as against upstream.

Pure functions of the CRD snapshots they are given.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import orjson

from pilothouse.api import resources
from pilothouse.api.apiextensions import crd as crds
from pilothouse.api.meta import Obj
from pilothouse.apiserver.handlers import openapi_paths, openapi_schemas

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
REF = openapi_schemas.COMPONENT_PREFIX
STRATEGIC = "application/strategic-merge-patch+json"

_API_VERSION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers "
    "should convert recognized schemas to the latest internal value, and may reject "
    "unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND = (
    "Kind is a string value representing the REST resource this object represents. Servers "
    "may infer this from the endpoint the client submits requests to. Cannot be updated. In "
    "CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_METADATA = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_LIST_METADATA = (
    "Standard list metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)


def definition_name(group: str, version: str, kind: str) -> str:
    """``stable.example.com``, ``v1``, ``CronTab`` → ``com.example.stable.v1.CronTab``."""
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def _kind_schema(crd: Obj, r: resources.Resource) -> dict[str, Any]:
    schema = copy.deepcopy(crds.schema(crd, r.version) or {"type": "object"})
    props = dict(schema.get("properties") or {})
    props["apiVersion"] = {"description": _API_VERSION, "type": "string"}
    props["kind"] = {"description": _KIND, "type": "string"}
    props["metadata"] = {"allOf": [{"$ref": REF + META + "ObjectMeta"}], "description": _METADATA}
    schema["properties"] = dict(sorted(props.items()))
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [
        {"group": r.group, "kind": r.kind, "version": r.version}
    ]
    return schema


def _list_schema(r: resources.Resource) -> dict[str, Any]:
    return {
        "description": f"{r.kind}List is a list of {r.kind}",
        "properties": {
            "apiVersion": {"description": _API_VERSION, "type": "string"},
            "items": {
                "description": f"List of {r.plural}. More info: "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                "items": {"$ref": REF + definition_name(r.group, r.version, r.kind)},
                "type": "array",
            },
            "kind": {"description": _KIND, "type": "string"},
            "metadata": {
                "allOf": [{"$ref": REF + META + "ListMeta"}],
                "description": _LIST_METADATA,
            },
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [
            {"group": r.group, "kind": r.list_kind, "version": r.version}
        ],
    }


def _rewrite(node: Any, names: dict[str, str]) -> Any:
    """Point references at the custom definitions and drop strategic merge from PATCH."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF):
                name = value[len(REF) :]
                out[key] = REF + names.get(name, name)
            elif key == STRATEGIC:
                continue
            else:
                out[key] = _rewrite(value, names)
        return out
    if isinstance(node, list):
        return [_rewrite(v, names) for v in node]
    return node


def document(
    registry: resources.Registry, crd_of: dict[resources.Resource, Obj], group: str, version: str
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(paths, components) of a custom group-version."""
    paths, refs = openapi_paths.build(registry, group, version)
    names: dict[str, str] = {}
    custom: dict[str, dict[str, Any]] = {}
    for r in registry.in_group_version(group, version):
        crd = crd_of.get(r)
        if crd is None:
            continue
        for kind, schema in ((r.kind, _kind_schema(crd, r)), (r.list_kind, _list_schema(r))):
            generic = resources.schema_name(r.group, r.version, kind)
            name = definition_name(r.group, r.version, kind)
            names[generic] = name
            custom[name] = schema
    roots = {ref for ref in refs if ref not in names}
    roots |= {META + "ObjectMeta", META + "ListMeta"} if custom else set()
    builtin = openapi_schemas.components(roots)
    paths = _rewrite(paths, names)
    return paths, {**builtin, **dict(sorted(custom.items()))}


def digest(crd: Obj) -> str:
    """What a CRD's documents depend on (its spec and accepted names)."""
    relevant = {"spec": crds.spec(crd), "names": crds.accepted_names(crd)}
    return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()
