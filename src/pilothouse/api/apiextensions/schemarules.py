"""The rules a CRD's ``openAPIV3Schema`` must follow, with upstream's messages.

What ``ValidateCustomResourceDefinitionOpenAPISchema`` and ``ValidateStructural``
check, in one walk per version schema:

* the OpenAPI v3 subset CRDs accept: known ``type`` values, no ``$ref``,
  ``definitions``, ``dependencies``, ``patternProperties``, ``additionalItems``, ``id``
  or ``uniqueItems: true``; ``properties`` and ``additionalProperties`` not together;
  no defaults in metadata;
* structurality (:mod:`.structural`);
* the Kubernetes extensions: ``x-kubernetes-preserve-unknown-fields`` only true,
  ``x-kubernetes-int-or-string``, ``x-kubernetes-embedded-resource``, list types
  and map keys (keys required or defaulted, scalar, not nullable), map types;
* defaults validate against their own schema and need no pruning;
* ``x-kubernetes-validations`` compile (:mod:`.rules`).

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from pilothouse.api import errors
from pilothouse.api.apiextensions import prune, rules, schemavalidate, structural

FieldError = errors.FieldError

OPENAPI_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_META_FIELDS = ("apiVersion", "kind", "metadata")
_ROOT_WITH_STATUS = frozenset(
    {
        "description",
        "type",
        "format",
        "title",
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
        "multipleOf",
        "required",
        "items",
        "properties",
        "externalDocs",
        "example",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
    }
)
_GO_FIELD_NAMES = [
    "Description",
    "Type",
    "Format",
    "Title",
    "Maximum",
    "ExclusiveMaximum",
    "Minimum",
    "ExclusiveMinimum",
    "MaxLength",
    "MinLength",
    "Pattern",
    "MaxItems",
    "MinItems",
    "UniqueItems",
    "MultipleOf",
    "Required",
    "Items",
    "Properties",
    "ExternalDocs",
    "Example",
    "XPreserveUnknownFields",
    "XValidations",
]
_JUNCTORS = ("allOf", "anyOf", "oneOf")


def _prop(path: str, name: str) -> str:
    return f"{path}.properties[{name}]"


class _Checker:
    def __init__(self) -> None:
        self.errs: list[FieldError] = []

    def openapi(
        self,
        schema: Mapping[str, Any],
        path: str,
        *,
        root: bool,
        defaults_forbidden: str | None,
        inside_meta: bool,
    ) -> None:
        e = self.errs
        kind = schema.get("type")
        if kind not in (None, "") and kind not in OPENAPI_TYPES:
            e.append(errors.not_supported(f"{path}.type", kind, OPENAPI_TYPES))
        if "default" in schema and defaults_forbidden is not None:
            detail = "must not be set" + (f" {defaults_forbidden}" if defaults_forbidden else "")
            e.append(errors.field_forbidden(f"{path}.default", detail))
        for key, message in (
            ("id", "id is not supported"),
            ("additionalItems", "additionalItems is not supported"),
            ("patternProperties", "patternProperties is not supported"),
            ("definitions", "definitions is not supported"),
            ("dependencies", "dependencies is not supported"),
            ("$ref", "$ref is not supported"),
        ):
            if schema.get(key):
                e.append(errors.field_forbidden(f"{path}.{key}", message))
        if kind == "null":
            e.append(
                errors.field_forbidden(
                    f"{path}.type", "type cannot be set to null, use nullable as an alternative"
                )
            )
        if isinstance(schema.get("items"), list):
            e.append(
                errors.field_forbidden(
                    f"{path}.items", "items must be a schema object and not an array"
                )
            )
        if inside_meta and schema.get("x-kubernetes-embedded-resource"):
            e.append(
                errors.field_forbidden(
                    f"{path}.x-kubernetes-embedded-resource",
                    "must not be used inside of resource meta",
                )
            )
        if schema.get("uniqueItems") is True:
            e.append(
                errors.field_forbidden(
                    f"{path}.uniqueItems",
                    "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                )
            )
        raw_props = schema.get("properties")
        props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
        extra = schema.get("additionalProperties")
        if extra is not None:
            if props and (extra is False or isinstance(extra, dict)):
                e.append(
                    errors.field_forbidden(
                        f"{path}.additionalProperties",
                        "additionalProperties and properties are mutual exclusive",
                    )
                )
            if isinstance(extra, dict):
                self.openapi(
                    extra,
                    f"{path}.additionalProperties",
                    root=False,
                    defaults_forbidden="inside additionalProperties applying to object metadata"
                    if inside_meta
                    else defaults_forbidden,
                    inside_meta=inside_meta,
                )
        for name, sub in props.items():
            if not isinstance(sub, dict):
                continue
            forbidden, meta = defaults_forbidden, inside_meta
            if (root or schema.get("x-kubernetes-embedded-resource")) and name in _META_FIELDS:
                meta = True
                if root:
                    forbidden = f"in top-level {name}"
            self.openapi(
                sub, _prop(path, name), root=False, defaults_forbidden=forbidden, inside_meta=meta
            )
        if isinstance(schema.get("not"), dict):
            self.openapi(
                schema["not"],
                f"{path}.not",
                root=False,
                defaults_forbidden=defaults_forbidden,
                inside_meta=inside_meta,
            )
        for junctor in _JUNCTORS:
            for i, sub in enumerate(schema.get(junctor) or ()):
                if isinstance(sub, dict):
                    self.openapi(
                        sub,
                        f"{path}.{junctor}[{i}]",
                        root=False,
                        defaults_forbidden=defaults_forbidden,
                        inside_meta=inside_meta,
                    )
        items = schema.get("items")
        if isinstance(items, dict):
            self.openapi(
                items,
                f"{path}.items",
                root=False,
                defaults_forbidden=defaults_forbidden,
                inside_meta=inside_meta,
            )
        if schema.get("x-kubernetes-preserve-unknown-fields") is False:
            e.append(
                errors.invalid_value(
                    f"{path}.x-kubernetes-preserve-unknown-fields",
                    False,
                    "must be true or undefined",
                )
            )
        self._list_and_map_types(schema, path)
        e.extend(
            rules.compile_errors(
                schema,
                path,
                resource_root=root or bool(schema.get("x-kubernetes-embedded-resource")),
            )
        )
        self._rule_texts(schema, path)
        self._map_list_keys(schema, path)

    def _list_and_map_types(self, schema: Mapping[str, Any], path: str) -> None:
        e = self.errs
        kind = schema.get("type") or ""
        map_type = schema.get("x-kubernetes-map-type")
        if map_type is not None and kind != "object":
            if not kind:
                e.append(
                    errors.required(
                        f"{path}.type", "must be object if x-kubernetes-map-type is specified"
                    )
                )
            else:
                e.append(
                    errors.invalid_value(
                        f"{path}.type", kind, "must be object if x-kubernetes-map-type is specified"
                    )
                )
        if map_type is not None and map_type not in ("atomic", "granular"):
            e.append(
                errors.not_supported(
                    f"{path}.x-kubernetes-map-type", map_type, ["atomic", "granular"]
                )
            )
        list_type = schema.get("x-kubernetes-list-type")
        raw_items = schema.get("items")
        items: dict[str, Any] | None = raw_items if isinstance(raw_items, dict) else None
        if list_type is not None and kind != "array":
            if not kind:
                e.append(
                    errors.required(
                        f"{path}.type", "must be array if x-kubernetes-list-type is specified"
                    )
                )
            else:
                e.append(
                    errors.invalid_value(
                        f"{path}.type", kind, "must be array if x-kubernetes-list-type is specified"
                    )
                )
        elif list_type == "set" and items is not None:
            if items.get("type") == "array" and items.get("x-kubernetes-list-type") not in (
                None,
                "atomic",
            ):
                e.append(
                    errors.invalid_value(
                        f"{path}.items.x-kubernetes-list-type",
                        items.get("x-kubernetes-list-type"),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    )
                )
            if items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
                e.append(
                    errors.invalid_value(
                        f"{path}.items.x-kubernetes-map-type",
                        items.get("x-kubernetes-list-type"),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    )
                )
        if list_type is not None and list_type not in ("atomic", "set", "map"):
            e.append(
                errors.not_supported(
                    f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"]
                )
            )
        keys = schema.get("x-kubernetes-list-map-keys")
        keys = keys if isinstance(keys, list) else []
        if keys:
            if list_type is None:
                e.append(
                    errors.required(
                        f"{path}.x-kubernetes-list-type",
                        "must be map if x-kubernetes-list-map-keys is non-empty",
                    )
                )
            elif list_type != "map":
                e.append(
                    errors.invalid_value(
                        f"{path}.x-kubernetes-list-type",
                        list_type,
                        "must be map if x-kubernetes-list-map-keys is non-empty",
                    )
                )
        if list_type == "map":
            if not keys:
                e.append(
                    errors.required(
                        f"{path}.x-kubernetes-list-map-keys",
                        "must not be empty if x-kubernetes-list-type is map",
                    )
                )
            if schema.get("items") is None:
                e.append(
                    errors.required(
                        f"{path}.items", "must have a schema if x-kubernetes-list-type is map"
                    )
                )
            elif items is not None and items.get("type") != "object":
                e.append(
                    errors.invalid_value(
                        f"{path}.items.type",
                        items.get("type"),
                        "must be object if parent array's x-kubernetes-list-type is map",
                    )
                )
            elif items is not None:
                seen: set[str] = set()
                item_props = items.get("properties") or {}
                for key in keys:
                    if key in item_props:
                        if (item_props[key] or {}).get("type") in ("array", "object"):
                            e.append(
                                errors.invalid_value(
                                    f"{path}.items.properties[{key}].type",
                                    items.get("type"),
                                    "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                )
                            )
                    else:
                        e.append(
                            errors.invalid_value(
                                f"{path}.x-kubernetes-list-map-keys",
                                errors.go_string_list(keys),
                                "entries must all be names of item properties",
                            )
                        )
                    if key in seen:
                        e.append(
                            errors.invalid_value(
                                f"{path}.x-kubernetes-list-map-keys",
                                errors.go_string_list(keys),
                                "must not contain duplicate entries",
                            )
                        )
                    seen.add(key)

    def _rule_texts(self, schema: Mapping[str, Any], path: str) -> None:
        for i, rule in enumerate(schema.get("x-kubernetes-validations") or ()):
            if not isinstance(rule, dict):
                continue
            here = f"{path}.x-kubernetes-validations[{i}]"
            text = str(rule.get("rule") or "").strip()
            message = rule.get("message") or ""
            trimmed = message.strip()
            if not text:
                continue  # reported by the compiler as "rule is not specified"
            if message and not trimmed:
                self.errs.append(
                    errors.invalid_value(
                        f"{here}.message", message, "message must be non-empty if specified"
                    )
                )
            elif re.search(r"[\n\r]", trimmed):
                self.errs.append(
                    errors.invalid_value(
                        f"{here}.message", message, "message must not contain line breaks"
                    )
                )
            elif re.search(r"[\n\r]", text) and not trimmed:
                self.errs.append(
                    errors.required(
                        f"{here}.message", "message must be specified if rule contains line breaks"
                    )
                )

    def _map_list_keys(self, schema: Mapping[str, Any], path: str) -> None:
        items = schema.get("items")
        list_type = schema.get("x-kubernetes-list-type")
        if not isinstance(items, dict) or list_type not in ("set", "map"):
            return
        if items.get("nullable"):
            self.errs.append(
                errors.field_forbidden(
                    f"{path}.items.nullable",
                    f"cannot be nullable when x-kubernetes-list-type is {list_type}",
                )
            )
        if list_type != "map":
            return
        required = set(items.get("required") or ())
        props = items.get("properties") or {}
        for key in schema.get("x-kubernetes-list-map-keys") or ():
            sub = props.get(key)
            if not isinstance(sub, dict):
                continue
            if key not in required and "default" not in sub:
                self.errs.append(
                    errors.required(
                        f"{path}.items.properties[{key}].default",
                        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                    )
                )
            if sub.get("nullable"):
                self.errs.append(
                    errors.field_forbidden(
                        f"{path}.items.properties[{key}].nullable",
                        "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                    )
                )

    # --- structurality (ValidateStructural) ---------------------------------------------
    def defaults(self, s: Mapping[str, Any], path: str, *, root: bool) -> None:
        if "default" in s and not root:
            value = copy.deepcopy(s["default"])
            problems = schemavalidate.validate(value, s, f"{path}.default")
            self.errs.extend(problems)
            if not problems and isinstance(value, dict | list):
                pruned = copy.deepcopy(value)
                if prune.prune(
                    {"x": pruned}, {"type": "object", "properties": {"x": s}}, resource=False
                ):
                    self.errs.append(
                        errors.invalid_value(
                            f"{path}.default", s["default"], "must not have unknown fields"
                        )
                    )
        for name, sub in (s.get("properties") or {}).items():
            if isinstance(sub, dict):
                self.defaults(sub, _prop(path, name), root=False)
        if isinstance(s.get("items"), dict):
            self.defaults(s["items"], f"{path}.items", root=False)
        if isinstance(s.get("additionalProperties"), dict):
            self.defaults(s["additionalProperties"], f"{path}.additionalProperties", root=False)


def root_with_status(schema: Mapping[str, Any], path: str) -> list[FieldError]:
    """With a status subresource, the root may only use fields that survive extracting
    ``properties[status]``."""
    kind = schema.get("type")
    if kind not in (None, "", "object"):
        return [
            errors.invalid_value(
                f"{path}.type",
                kind,
                'only "object" is allowed as the type at the root of the schema if the status subresource is enabled',
            )
        ]
    for key, value in schema.items():
        if key not in _ROOT_WITH_STATUS and value not in (None, False, "", [], {}):
            return [
                errors.invalid_value(
                    path,
                    errors.GoValue("apiextensions.JSONSchemaProps{…}"),
                    f"only [{' '.join(_GO_FIELD_NAMES)}] fields are allowed at the root of the schema if the status subresource is enabled",
                )
            ]
    return []


def validate(schema: Mapping[str, Any], path: str, *, status_enabled: bool) -> list[FieldError]:
    """Every problem with one version's ``openAPIV3Schema`` at ``path``."""
    out: list[FieldError] = []
    if status_enabled:
        out.extend(root_with_status(schema, path))
    if schema.get("nullable"):
        out.append(
            errors.field_forbidden(f"{path}.nullable", "nullable cannot be true at the root")
        )
    checker = _Checker()
    checker.openapi(schema, path, root=True, defaults_forbidden=None, inside_meta=False)
    out.extend(checker.errs)
    shape = structural.errors_of(schema, path)
    if shape:
        out.extend(shape)
        return out
    defaults = _Checker()
    defaults.defaults(schema, path, root=True)
    out.extend(defaults.errs)
    return out
