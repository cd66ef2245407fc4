"""Type checking of ValidatingAdmissionPolicies (upstream's ``validating.TypeChecker``).

A policy's expressions are compiled with ``object`` and ``oldObject`` typed by the
schema of each kind its ``matchConstraints`` name (at most ten, none when a rule has a
wildcard group, version or resource — upstream gives up there too), and ``params``
typed by its ``paramKind``'s schema. What fails to compile is reported in
``status.typeChecking.expressionWarnings`` (``fieldRef: spec.validations[0].expression``,
``warning: apps/v1, Kind=Deployment: compilation failed: ERROR: …``). Warnings never
change what the policy does: at admission ``object`` is ``dyn``.

Schemas are the built-in kinds' (:mod:`pilothouse.api.schema`), and for custom
resources what the caller found (:class:`Schemas`: the status controller reads the
server's discovery and OpenAPI v3, as upstream's resolver does); kinds found nowhere
are skipped, as upstream skips kinds its resolver cannot find.

No I/O here: part of the bottom ``api`` layer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from pilothouse.api import admission_cel, cel, resources, schema
from pilothouse.api.cel import types as cel_types

MAX_TYPES = 10
_MAX_DEPTH = 24


Resolve = Callable[[dict[str, Any]], dict[str, Any]]


class Schemas(Protocol):
    """Kinds the built-in schemas do not know (custom resources), as the caller found
    them (upstream's resolver asks discovery and ``/openapi/v3``)."""

    def kind_for(self, group: str, version: str, plural: str) -> str | None: ...

    def schema_for(
        self, group: str, version: str, kind: str
    ) -> tuple[dict[str, Any], Resolve] | None: ...


def _plain(node: dict[str, Any], depth: int, resolve: Resolve = schema.resolve) -> dict[str, Any]:
    """An OpenAPI schema as the structural schema CEL types are made from."""
    if depth > _MAX_DEPTH:
        return {"x-kubernetes-preserve-unknown-fields": True}
    node = resolve(node) if "$ref" in node else node
    if "oneOf" in node or "anyOf" in node:
        return {"x-kubernetes-int-or-string": True}  # IntOrString and friends: dyn
    out: dict[str, Any] = {}
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind:
        out["type"] = kind
    for key in ("format", "maxLength", "maxItems", "maxProperties"):
        if key in node:
            out[key] = node[key]
    if isinstance(node.get("properties"), dict):
        out["properties"] = {
            name: _plain(sub, depth + 1, resolve)
            for name, sub in node["properties"].items()
            if isinstance(sub, dict)
        }
        out.setdefault("type", "object")
    if isinstance(node.get("items"), dict):
        out["items"] = _plain(node["items"], depth + 1, resolve)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = _plain(extra, depth + 1, resolve)
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


@functools.cache
def kind_type(group: str, version: str, kind: str) -> cel_types.Type | None:
    """The CEL type of a built-in kind's objects, or None without a schema."""
    found = schema.kind_schema(group, version, kind)
    if found is None:
        return None
    return cel.from_schema(_plain(found, 0))


def gvk_string(group: str, version: str, kind: str) -> str:
    """Go's ``schema.GroupVersionKind.String()``."""
    return f"{group}/{version}, Kind={kind}"


def _type_of(group: str, version: str, kind: str, schemas: Schemas | None) -> cel_types.Type | None:
    found = kind_type(group, version, kind)
    if found is None and schemas is not None:
        custom = schemas.schema_for(group, version, kind)
        if custom is not None:
            found = cel.from_schema(_plain(custom[0], 0, custom[1]))
    return found


def types_to_check(
    policy: dict[str, Any], registry: resources.Registry, schemas: Schemas | None = None
) -> list[tuple[str, str, str]]:
    match = ((policy.get("spec") or {}).get("matchConstraints")) or {}
    found: set[tuple[str, str, str]] = set()
    for rule in match.get("resourceRules") or []:
        groups = [str(g) for g in rule.get("apiGroups") or []]
        versions = [str(v) for v in rule.get("apiVersions") or []]
        plurals = [str(r) for r in rule.get("resources") or [] if "*" not in r and "/" not in r]
        if any("*" in g for g in groups) or any("*" in v for v in versions):
            continue
        for group in sorted(groups):
            for version in sorted(versions):
                for plural in sorted(plurals):
                    resource = registry.by_path(group, version, plural)
                    if resource is not None:
                        found.add((resource.group, resource.version, resource.kind))
                    elif schemas is not None:
                        kind = schemas.kind_for(group, version, plural)
                        if kind is None:
                            continue
                        found.add((group, version, kind))
                    else:
                        continue
                    if len(found) == MAX_TYPES:
                        return sorted(found)
    return sorted(found)


def check(
    policy: dict[str, Any], registry: resources.Registry, schemas: Schemas | None = None
) -> list[dict[str, str]]:
    """The policy's ``expressionWarnings`` (empty: everything type-checks); kinds the
    built-in schemas lack are looked up in ``schemas``."""
    spec = policy.get("spec") or {}
    kinds = [(gvk, _type_of(*gvk, schemas)) for gvk in types_to_check(policy, registry, schemas)]
    typed = [(gvk, t) for gvk, t in kinds if t is not None]
    if not typed:
        return []
    param_kind = spec.get("paramKind")
    params = isinstance(param_kind, dict)
    params_type: cel_types.Type | None = None
    if isinstance(param_kind, dict):
        group, _, version = str(param_kind.get("apiVersion") or "").rpartition("/")
        params_type = _type_of(group, version, str(param_kind.get("kind") or ""), schemas)

    def checker_for(object_type: cel_types.Type) -> admission_cel.Checker:
        checker = admission_cel.Checker()
        for variable in spec.get("variables") or []:
            env = admission_cel.environment(
                params=params,
                variables=checker.types or None,
                object_type=object_type,
                params_type=params_type,
            )
            compiled = admission_cel.compile_expression(
                str(variable.get("expression") or ""), admission_cel.VARIABLE, env
            )
            checker.types[str(variable.get("name") or "")] = (
                compiled.program.result_type if compiled.program is not None else cel.DYN
            )
        return checker

    checkers = [(gvk, t, checker_for(t)) for gvk, t in typed]

    def problems(expression: str, what: str) -> str:
        lines = []
        for gvk, object_type, checker in checkers:
            env = admission_cel.environment(
                params=params,
                variables=checker.types or None,
                object_type=object_type,
                params_type=params_type,
            )
            compiled = admission_cel.compile_expression(expression, what, env)
            if compiled.error:
                lines.append(f"{gvk_string(*gvk)}: {compiled.error}\n")
        return "\n".join(lines)

    warnings: list[dict[str, str]] = []
    for i, validation in enumerate(spec.get("validations") or []):
        found = problems(str(validation.get("expression") or ""), admission_cel.CONDITION)
        if found:
            warnings.append({"fieldRef": f"spec.validations[{i}].expression", "warning": found})
        message = validation.get("messageExpression")
        if message:
            found = problems(str(message), admission_cel.MESSAGE)
            if found:
                warnings.append(
                    {"fieldRef": f"spec.validations[{i}].messageExpression", "warning": found}
                )
    return warnings
