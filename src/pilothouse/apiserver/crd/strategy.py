"""How custom resources are created, updated and validated: one strategy per served version.

Upstream's ``customResourceStrategy`` (``registry/customresource/strategy.go``) and
its codec, for objects described by a CRD version's structural schema:

* request bodies are *pruned* of unspecified fields (reported under
  ``fieldValidation=Strict`` as ``unknown field "spec.foo"``) and *defaulted*;
* validation is ObjectMeta's, then the schema's (kube-openapi's messages), then
  ``x-kubernetes-list-type`` set/map uniqueness, then the CEL rules, which are skipped
  when the object already has type errors (``some validation rules were not
  checked because the object was invalid; correct the existing errors to complete
  validation``);
* with a ``status`` subresource the main resource keeps status and ``/status``
  keeps everything else; ``metadata.generation`` counts changes outside metadata
  (and outside status, when status has its own endpoint);
* ``scale`` reads and writes the replicas at the CRD's JSON paths;
* field selectors accept ``metadata.name``, ``metadata.namespace`` and the version's
  ``selectableFields``; patches accept JSON, merge and apply patches (a strategic
  merge patch is 415, as upstream: there is no patch metadata for custom kinds);
* a terminating CRD's resource refuses creates (405).

A strategy is built from one CRD snapshot and never changes; the serving layer
builds new ones when the CRD changes. Strategies are shared by concurrent requests
and keep no per-request state.
"""

from __future__ import annotations

import functools
from typing import Any

from pilothouse.api import errors, resources, schema, selectors
from pilothouse.api import validation as builtin_validation
from pilothouse.api.apiextensions import crd as crds
from pilothouse.api.apiextensions import defaulting, jsonpath, prune, rules, schemavalidate
from pilothouse.api.fieldmanager import types as field_types
from pilothouse.api.meta import Obj
from pilothouse.api.validation import meta as meta_validation
from pilothouse.api.validation import names as name_rules
from pilothouse.apiserver import negotiation
from pilothouse.apiserver.crd import table as crd_table
from pilothouse.apiserver.registry.strategy import Strategy
from pilothouse.apiserver.table.model import Printer

PATCH_TYPES = (negotiation.JSON_PATCH, negotiation.MERGE_PATCH, negotiation.APPLY_PATCH)
BLOCKING = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


class CustomResourceStrategy(Strategy):
    tracks_generation = True
    patch_types = PATCH_TYPES

    def __init__(self, resource: resources.Resource, crd: Obj, version: str) -> None:
        super().__init__(resource)
        self.crd = crd
        self.version = version
        self.schema = crds.schema(crd, version)
        self.has_status = crds.has_status(crd, version)
        self.scale_paths = crds.scale(crd, version)
        self.selectable = crds.selectable_fields(crd, version)
        self.terminating = crds.is_true(crd, crds.TERMINATING)
        self.cel = rules.Validator(self.schema)
        self.defaults = (
            defaulting.Plan(self.schema)
            if self.schema and defaulting.has_defaults(self.schema)
            else None
        )
        self._printer = crd_table.printer(crd, version)
        served = crds.version(crd, version) or {}
        if served.get("deprecated"):
            self.deprecation_warning = served.get("deprecationWarning") or (
                f"{resource.group}/{version} {resource.kind} is deprecated"
            )

    # --- decoding -----------------------------------------------------------
    def body_problems(self, obj: Obj) -> schema.FieldProblems:
        return schema.FieldProblems(unknown=prune.prune(obj, self.schema))

    @functools.cached_property
    def _field_type(self) -> field_types.Type:
        return field_types.for_custom_resource(self.schema)

    def field_type(self) -> field_types.Type:
        return self._field_type

    def status_subresource(self) -> bool:
        return self.has_status

    def printer(self) -> Printer:
        return self._printer

    # --- create and update ----------------------------------------------------
    def check_create(self) -> None:
        if self.terminating:
            raise errors.StatusError(
                405,
                errors.METHOD_NOT_ALLOWED,
                "create not allowed while custom resource definition is terminating",
                details={"group": self.resource.group, "kind": self.resource.plural},
            )

    def default(self, obj: Obj) -> None:
        if self.defaults is not None:
            self.defaults.apply(obj)

    def validate(self, obj: Obj) -> list[errors.FieldError]:
        errs = meta_validation.validate_object_meta(
            obj,
            namespaced=self.resource.namespaced,
            name_fn=name_rules.name_is_path_segment,
            kube_finalizers=False,
        )
        return errs + self._validate_body(obj, None)

    def validate_update(self, new: Obj, old: Obj) -> list[errors.FieldError]:
        errs = builtin_validation.generic_update(new, old, namespaced=self.resource.namespaced)
        return errs + self._validate_body(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[errors.FieldError]:
        errs = builtin_validation.generic_update(new, old, namespaced=self.resource.namespaced)
        return errs + self._validate_body(new, old)

    def _validate_body(self, obj: Obj, old: Obj | None) -> list[errors.FieldError]:
        body = {k: v for k, v in obj.items() if k != "metadata"}
        errs = schemavalidate.validate(body, self.schema)
        errs += self._scale_checks(obj)
        errs += _list_uniqueness(obj, self.schema, "")
        if not self.cel.empty:
            if any(e.type == errors.TYPE_INVALID for e in errs):
                errs.append(errors.invalid_value("<nil>", errors.GoValue("null"), BLOCKING))
            else:
                errs += self.cel.validate(obj, old)
        return errs

    def _scale_checks(self, obj: Obj) -> list[errors.FieldError]:
        if self.scale_paths is None:
            return []
        errs: list[errors.FieldError] = []
        for key in ("specReplicasPath", "statusReplicasPath"):
            path = str(self.scale_paths.get(key) or "")
            value, found = jsonpath.get_simple(obj, path)
            if not found or value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                errs.append(errors.invalid_value(path.lstrip("."), value, "should be an integer"))
            elif value < 0:
                errs.append(
                    errors.invalid_value(
                        path.lstrip("."), value, "should be a non-negative integer"
                    )
                )
        return errs

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        ignored = {"apiVersion", "kind", "metadata"} | ({"status"} if self.has_status else set())
        keys = (set(new) | set(old)) - ignored
        return any(new.get(k) != old.get(k) for k in keys)

    # --- field selectors --------------------------------------------------------
    def convert_field_selector(
        self, fields: selectors.FieldSelector, requested: resources.Resource
    ) -> selectors.FieldSelector:
        if not self.selectable:
            return super().convert_field_selector(fields, requested)
        allowed = {"metadata.name", "metadata.namespace", *(p.lstrip(".") for p in self.selectable)}

        def convert(label: str, value: str) -> tuple[str, str]:
            if label not in allowed:
                raise selectors.SelectorError(f"field label not supported: {label}")
            return label, value

        return fields.transform(convert)

    def object_fields(self, obj: Obj, requested: resources.Resource) -> dict[str, str]:
        md = obj.get("metadata") or {}
        out = {
            "metadata.name": str(md.get("name") or ""),
            "metadata.namespace": str(md.get("namespace") or ""),
        }
        for path in self.selectable:
            value, found = jsonpath.get_simple(obj, path)
            if found and value is not None:
                out[path.lstrip(".")] = (
                    "true" if value is True else "false" if value is False else str(value)
                )
        return out

    # --- scale ---------------------------------------------------------------
    def to_scale(self, obj: Obj) -> Obj | None:
        if self.scale_paths is None:
            return None
        md = obj.get("metadata") or {}
        spec_replicas, _ = jsonpath.get_simple(
            obj, str(self.scale_paths.get("specReplicasPath") or "")
        )
        status_replicas, _ = jsonpath.get_simple(
            obj, str(self.scale_paths.get("statusReplicasPath") or "")
        )
        selector_path = self.scale_paths.get("labelSelectorPath")
        selector = jsonpath.get_simple(obj, str(selector_path))[0] if selector_path else None
        status: dict[str, Any] = {
            "replicas": status_replicas if isinstance(status_replicas, int) else 0
        }
        if isinstance(selector, str) and selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: md[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in md
            },
            "spec": {"replicas": spec_replicas if isinstance(spec_replicas, int) else 0},
            "status": status,
        }

    def apply_scale(self, obj: Obj, scale: Obj) -> Obj | None:
        if self.scale_paths is None:
            return None
        spec = scale.get("spec")
        replicas = spec.get("replicas", 0) if isinstance(spec, dict) else 0
        name = (obj.get("metadata") or {}).get("name", "")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise errors.bad_request(
                'Scale in version "v1" cannot be handled as a Scale: spec.replicas must be an integer'
            )
        if replicas < 0:
            raise errors.invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    errors.invalid_value(
                        "spec.replicas", replicas, "must be greater than or equal to 0"
                    )
                ],
            )
        out = _copy_path(obj, str(self.scale_paths.get("specReplicasPath") or ""))
        jsonpath.set_simple(out, str(self.scale_paths.get("specReplicasPath") or ""), replicas)
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        out["metadata"] = {**obj["metadata"]}
        if rv:
            out["metadata"]["resourceVersion"] = rv
        return out


def _copy_path(obj: Obj, path: str) -> Obj:
    """A copy of ``obj`` whose maps along ``path`` are copies (the rest is shared)."""
    out = dict(obj)
    node = out
    for name in jsonpath.simple_steps(path)[:-1]:
        child = node.get(name)
        node[name] = dict(child) if isinstance(child, dict) else {}
        node = node[name]
    return out


def _list_uniqueness(value: Any, schema_node: Any, path: str) -> list[errors.FieldError]:
    """``x-kubernetes-list-type: set`` items and ``map`` keys must be unique (upstream's
    ``listtype.ValidateListSetsAndMaps``)."""
    if not isinstance(schema_node, dict):
        return []
    out: list[errors.FieldError] = []
    if isinstance(value, dict):
        props = schema_node.get("properties") or {}
        extra = schema_node.get("additionalProperties")
        for key, sub in value.items():
            child = props.get(key) if key in props else (extra if isinstance(extra, dict) else None)
            if child is not None:
                out += _list_uniqueness(sub, child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        list_type = schema_node.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: list[Any] = []
            for i, item in enumerate(value):
                if item in seen:
                    out.append(errors.duplicate(f"{path}[{i}]", item))
                seen.append(item)
        elif list_type == "map":
            keys = schema_node.get("x-kubernetes-list-map-keys") or []
            seen_keys: list[Any] = []
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = {k: item[k] for k in keys if k in item}
                if key in seen_keys:
                    out.append(errors.duplicate(f"{path}[{i}]", key))
                seen_keys.append(key)
        items = schema_node.get("items")
        for i, item in enumerate(value):
            out += _list_uniqueness(item, items, f"{path}[{i}]")
    return out
