"""The API's JSON schemas, rewritten as OpenAPI 3.0 component schemas.

``kubernetes-validate`` ships upstream's definitions in JSON-schema dress; the
``/openapi/v3`` documents need them as kube-apiserver serves them:

* ``"type": ["string", "null"]`` becomes ``"type": "string"`` — upstream marks no
  built-in field ``nullable``, it just leaves optional fields out of ``required``;
* ``$ref: "#/$defs/X"`` becomes ``#/components/schemas/X``, and a reference with
  neighbours (a description, merge directives) is wrapped as upstream wraps it,
  ``{"allOf": [{"$ref": …}], "description": …}``, because OpenAPI 3.0 ignores
  the neighbours of a bare ``$ref``;
* ``IntOrString`` and ``Quantity`` get upstream's v3 shapes
  (``{"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}``
  and ``{"oneOf": [{"type": "string"}, {"type": "number"}]}``), which
  ``kubectl explain`` prints as ``<IntOrString>`` and ``<Quantity>``;
* the ``enum`` that kubernetes-validate adds to every ``apiVersion`` and ``kind``
  is dropped (upstream has none, and explain would print it).

Upstream's ``default`` values are not in the source schemas and so are absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pilothouse.api import schema
from pilothouse.apiserver.handlers import resource_metrics

COMPONENT_PREFIX = "#/components/schemas/"

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

_REPLACEMENTS: dict[str, dict[str, Any]] = {
    INT_OR_STRING: {
        "description": (
            "IntOrString is a type that can hold an int32 or a string. When used in JSON or "
            "YAML marshalling and unmarshalling, it produces or consumes the inner type."
        ),
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    QUANTITY: {
        "description": (
            "Quantity is a fixed-point representation of a number, written as a number "
            "with an optional suffix: a binary SI suffix (Ki, Mi, Gi, Ti, Pi, Ei), a decimal "
            "SI suffix (n, u, m, k, M, G, T, P, E) or a decimal exponent (e3, E-2)."
        ),
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
}

_TYPE_META = ("apiVersion", "kind")


def convert(node: dict[str, Any], refs: set[str]) -> dict[str, Any]:
    """One schema in OpenAPI 3.0 form; the definitions it names are added to ``refs``."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type":
            if isinstance(value, list):
                kinds = [k for k in value if k != "null"]
                if len(kinds) == 1:
                    out["type"] = kinds[0]
            else:
                out["type"] = value
        elif key == "properties":
            out[key] = {
                name: _without_enum(convert(sub, refs))
                if name in _TYPE_META
                else convert(sub, refs)
                for name, sub in value.items()
            }
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = convert(value, refs)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [convert(sub, refs) for sub in value]
        else:
            out[key] = value
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = schema.ref_name(ref)
        refs.add(name)
        target = {"$ref": COMPONENT_PREFIX + name}
        if not out:
            return target
        return {"allOf": [target], **out}
    return out


def _without_enum(node: dict[str, Any]) -> dict[str, Any]:
    node.pop("enum", None)
    return node


def definition(name: str, refs: set[str]) -> dict[str, Any] | None:
    """A named definition as a component schema (None if there is no such definition)."""
    replacement = _REPLACEMENTS.get(name)
    if replacement is not None:
        return dict(replacement)
    source = schema.definitions().get(name) or resource_metrics.SCHEMAS.get(name)
    if source is None:
        return None
    return convert(source, refs)


def components(roots: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Every definition reachable from ``roots``, converted, keyed and sorted by name."""
    done: dict[str, dict[str, Any]] = {}
    pending = list(dict.fromkeys(roots))
    while pending:
        name = pending.pop()
        if name in done:
            continue
        refs: set[str] = set()
        converted = definition(name, refs)
        if converted is None:
            continue
        done[name] = converted
        pending.extend(ref for ref in refs if ref not in done)
    return dict(sorted(done.items()))
