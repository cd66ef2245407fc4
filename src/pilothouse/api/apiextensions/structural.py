"""Structural schemas: the shape rules upstream's ``ValidateStructural`` checks.

Every field has a ``type`` (``must not be empty for specified object fields``), arrays
have ``items``, the root is an object without ``additionalProperties``, value
validations (``allOf``/``anyOf``/``oneOf``/``not``) only restrict what the structure
already specifies (``because it is defined in …``) and carry no types, defaults,
descriptions or extensions of their own, ``x-kubernetes-int-or-string`` appears in its
two allowed spellings, and root ``metadata`` restricts at most ``name`` and
``generateName``. Upstream sorts these errors by their message; so does :func:`errors_of`.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pilothouse.api import errors

FieldError = errors.FieldError

_JUNCTORS = ("allOf", "anyOf", "oneOf")
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _prop(path: str, name: str) -> str:
    return f"{path}.properties[{name}]"


class _Structure:
    def __init__(self) -> None:
        self.structural: list[FieldError] = []

    def invariants(self, s: Mapping[str, Any], level: str, path: str) -> None:
        e = self.structural
        kind = s.get("type") or ""
        if kind == "array" and not isinstance(s.get("items"), dict):
            e.append(errors.required(f"{path}.items", "must be specified"))
        if isinstance(s.get("items"), dict):
            self.invariants(s["items"], "item", f"{path}.items")
        raw_props = s.get("properties")
        props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
        for name, sub in props.items():
            if isinstance(sub, dict):
                self.invariants(sub, "field", _prop(path, name))
        extra = s.get("additionalProperties")
        if extra is not None and extra is not False:
            if level == "root":
                e.append(
                    errors.field_forbidden(
                        f"{path}.additionalProperties", "must not be used at the root"
                    )
                )
            if isinstance(extra, dict):
                self.invariants(extra, "field", f"{path}.additionalProperties")
        int_or_string = bool(s.get("x-kubernetes-int-or-string"))
        preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(s.get("x-kubernetes-embedded-resource"))
        if int_or_string and preserve:
            e.append(
                errors.invalid_value(
                    f"{path}.x-kubernetes-preserve-unknown-fields",
                    True,
                    "must be false if x-kubernetes-int-or-string is true",
                )
            )
        if int_or_string and embedded:
            e.append(
                errors.invalid_value(
                    f"{path}.x-kubernetes-embedded-resource",
                    True,
                    "must be false if x-kubernetes-int-or-string is true",
                )
            )
        self._value_validation(s, level, path, skip_any_of=s.get("anyOf") == _INT_OR_STRING_ANY_OF)
        if embedded and kind != "object":
            if not kind:
                e.append(
                    errors.required(
                        f"{path}.type", "must be object if x-kubernetes-embedded-resource is true"
                    )
                )
            else:
                e.append(
                    errors.invalid_value(
                        f"{path}.type",
                        kind,
                        "must be object if x-kubernetes-embedded-resource is true",
                    )
                )
        elif not kind and not int_or_string and not preserve:
            detail = {
                "root": "must not be empty at the root",
                "item": "must not be empty for specified array items",
                "field": "must not be empty for specified object fields",
            }[level]
            e.append(errors.required(f"{path}.type", detail))
        if embedded and extra is not None:
            e.append(
                errors.field_forbidden(
                    f"{path}.additionalProperties",
                    "must not be used if x-kubernetes-embedded-resource is set",
                )
            )
        if level == "root" and kind and kind != "object":
            e.append(errors.invalid_value(f"{path}.type", kind, "must be object at the root"))
        check_meta = level == "root" or embedded
        for name in ("kind", "apiVersion"):
            sub = props.get(name)
            if check_meta and isinstance(sub, dict) and sub.get("type") != "string":
                e.append(
                    errors.invalid_value(
                        f"{path}.properties[{name}].type", sub.get("type") or "", "must be string"
                    )
                )
        metadata = props.get("metadata")
        if isinstance(metadata, dict):
            meta_path = _prop(path, "metadata")
            if check_meta and metadata.get("type") != "object":
                e.append(
                    errors.invalid_value(
                        f"{meta_path}.type", metadata.get("type") or "", "must be object"
                    )
                )
            if level == "root":
                rest = {k: v for k, v in metadata.items() if k not in ("type", "default")}
                meta_props = rest.pop("properties", None)
                if isinstance(meta_props, dict) and set(meta_props) <= {"name", "generateName"}:
                    meta_props = None
                if rest or meta_props:
                    e.append(
                        errors.field_forbidden(
                            meta_path,
                            "must not specify anything other than name and generateName, but metadata is implicitly specified",
                        )
                    )
        if embedded and not preserve and not props:
            e.append(
                errors.required(
                    f"{path}.properties",
                    "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
                )
            )

    def _value_validation(
        self, s: Mapping[str, Any], level: str, path: str, *, skip_any_of: bool
    ) -> None:
        if not skip_any_of:
            for i, sub in enumerate(s.get("anyOf") or ()):
                self._nested(sub, level, f"{path}.anyOf[{i}]", skip_any_of=False)
        all_of = s.get("allOf") or []
        for i, sub in enumerate(all_of):
            skip = i == 0 and isinstance(sub, dict) and sub.get("anyOf") == _INT_OR_STRING_ANY_OF
            self._nested(sub, level, f"{path}.allOf[{i}]", skip_any_of=skip)
        for i, sub in enumerate(s.get("oneOf") or ()):
            self._nested(sub, level, f"{path}.oneOf[{i}]", skip_any_of=False)
        if isinstance(s.get("not"), dict):
            self._nested(s["not"], level, f"{path}.not", skip_any_of=False)
        pattern = s.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                self.structural.append(
                    errors.invalid_value(
                        f"{path}.pattern",
                        pattern,
                        f"must be a valid regular expression, but isn't: {exc}",
                    )
                )

    def _nested(self, v: Any, level: str, path: str, *, skip_any_of: bool) -> None:
        if not isinstance(v, dict):
            return
        e = self.structural
        self._value_validation(v, level, path, skip_any_of=skip_any_of)
        if isinstance(v.get("items"), dict):
            self._nested(v["items"], level, f"{path}.items", skip_any_of=False)
        for name, sub in (v.get("properties") or {}).items():
            self._nested(sub, "field", _prop(path, name), skip_any_of=False)
        if v.get("type"):
            e.append(errors.field_forbidden(f"{path}.type", "must be empty to be structural"))
        if "additionalProperties" in v:
            e.append(
                errors.field_forbidden(
                    f"{path}.additionalProperties", "must be undefined to be structural"
                )
            )
        for key, detail in (
            ("default", "must be undefined to be structural"),
            ("title", "must be empty to be structural"),
            ("description", "must be empty to be structural"),
            ("nullable", "must be false to be structural"),
            ("externalDocs", "must be undefined to be structural"),
            ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
            ("x-kubernetes-embedded-resource", "must be false to be structural"),
            ("x-kubernetes-int-or-string", "must be false to be structural"),
            ("x-kubernetes-list-map-keys", "must be empty to be structural"),
            ("x-kubernetes-list-type", "must be undefined to be structural"),
            ("x-kubernetes-map-type", "must be undefined to be structural"),
            ("x-kubernetes-validations", "must be empty to be structural"),
        ):
            if v.get(key) not in (None, False, "", []):
                e.append(errors.field_forbidden(f"{path}.{key}", detail))
        if "metadata" in (v.get("properties") or {}):
            e.append(
                errors.field_forbidden(
                    _prop(path, "metadata"), "must not be specified in a nested context"
                )
            )

    def completeness(self, s: Mapping[str, Any], path: str) -> None:
        for junctor in _JUNCTORS:
            for i, sub in enumerate(s.get(junctor) or ()):
                self._complete(sub, s, path, f"{path}.{junctor}[{i}]")
        if isinstance(s.get("not"), dict):
            self._complete(s["not"], s, path, f"{path}.not")
        if isinstance(s.get("items"), dict):
            self.completeness(s["items"], f"{path}.items")
        for name, sub in (s.get("properties") or {}).items():
            if isinstance(sub, dict):
                self.completeness(sub, _prop(path, name))
        if isinstance(s.get("additionalProperties"), dict):
            self.completeness(s["additionalProperties"], f"{path}.additionalProperties")

    def _complete(self, v: Any, s: Mapping[str, Any] | None, s_path: str, v_path: str) -> None:
        if not isinstance(v, dict):
            return
        if s is None:
            self.structural.append(errors.required(s_path, f"because it is defined in {v_path}"))
            return
        for junctor in _JUNCTORS:
            for i, sub in enumerate(v.get(junctor) or ()):
                self._complete(sub, s, s_path, f"{v_path}.{junctor}[{i}]")
        if isinstance(v.get("not"), dict):
            self._complete(v["not"], s, s_path, f"{v_path}.not")
        if isinstance(v.get("items"), dict):
            raw_items = s.get("items")
            items = raw_items if isinstance(raw_items, dict) else None
            self._complete(v["items"], items, f"{s_path}.items", f"{v_path}.items")
        s_props = s.get("properties") or {}
        for name, sub in (v.get("properties") or {}).items():
            self._complete(sub, s_props.get(name), _prop(s_path, name), _prop(v_path, name))

    # --- defaults ---------------------------------------------------------------------


def errors_of(schema: Mapping[str, Any], path: str) -> list[FieldError]:
    """Why ``schema`` (at ``path``) is not structural, sorted as upstream sorts them."""
    checker = _Structure()
    checker.invariants(schema, "root", path)
    checker.completeness(schema, path)
    return sorted(checker.structural, key=lambda err: err.message())


def is_structural(schema: Mapping[str, Any] | None) -> bool:
    return schema is None or not errors_of(schema, "")
