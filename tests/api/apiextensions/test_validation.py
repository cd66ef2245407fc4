"""CRD validation: upstream's messages for names, versions, schemas and conversion."""

from __future__ import annotations

import copy
from typing import Any

from pilothouse.api.apiextensions import defaults, validation

BASE: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                        },
                    }
                },
            }
        ],
    },
}


def crd(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = out
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node[key]
        last = keys[-1]
        if value is None:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    defaults.apply(out)
    out.setdefault("status", {"storedVersions": ["v1"]})
    return out


def messages(obj: dict[str, Any]) -> list[str]:
    return [e.message() for e in validation.validate_create(obj)]


def schema(node: dict[str, Any]) -> dict[str, Any]:
    return crd(spec__versions__0__schema={"openAPIV3Schema": node})


def test_a_good_crd_is_valid_and_defaulted() -> None:
    obj = crd()
    assert messages(obj) == []
    assert obj["spec"]["names"]["singular"] == "widget"
    assert obj["spec"]["names"]["listKind"] == "WidgetList"
    assert obj["spec"]["conversion"] == {"strategy": "None"}


def test_names_and_group() -> None:
    assert messages(crd(metadata={"name": "widgets.other.com"})) == [
        'metadata.name: Invalid value: "widgets.other.com": must be spec.names.plural+"."+spec.group'
    ]
    assert (
        'spec.group: Invalid value: "example": should be a domain with at least one dot'
        in messages(crd(spec__group="example", metadata={"name": "widgets.example"}))
    )
    bad_plural = messages(
        crd(spec__names__plural="Widgets", metadata={"name": "Widgets.example.com"})
    )
    assert any(
        m.startswith(
            'spec.names.plural: Invalid value: "Widgets": a DNS-1035 label must consist of lower case'
        )
        for m in bad_plural
    )
    assert (
        'spec.names.listKind: Invalid value: "Widget": kind and listKind may not be the same'
        in messages(crd(spec__names__listKind="Widget"))
    )
    assert (
        'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"'
        in messages(crd(spec__scope="Global"))
    )


def test_versions() -> None:
    two = crd()
    two["spec"]["versions"].append({**two["spec"]["versions"][0], "name": "v2"})
    assert any(
        m.endswith("must have exactly one version marked as storage version") for m in messages(two)
    )
    no_schema = crd(spec__versions__0__schema=None)
    assert (
        "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"
        in messages(no_schema)
    )


def test_non_structural_schemas() -> None:
    untyped = schema(
        {"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}
    )
    assert messages(untyped) == [
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"
    ]
    assert (
        'spec.versions[0].schema.openAPIV3Schema.type: Invalid value: "array": must be object at the root'
        in messages(schema({"type": "array", "items": {"type": "string"}}))
    )
    assert (
        "spec.versions[0].schema.openAPIV3Schema.properties[l].items: Required value: must be specified"
        in messages(schema({"type": "object", "properties": {"l": {"type": "array"}}}))
    )
    nested = messages(
        schema(
            {
                "type": "object",
                "properties": {
                    "a": {"type": "string", "anyOf": [{"type": "string"}, {"type": "integer"}]}
                },
            }
        )
    )
    assert (
        "spec.versions[0].schema.openAPIV3Schema.properties[a].anyOf[0].type: Forbidden: must be empty to be structural"
        in nested
    )
    incomplete = messages(
        schema(
            {
                "type": "object",
                "properties": {"a": {"type": "object", "allOf": [{"properties": {"b": {}}}]}},
            }
        )
    )
    assert (
        "spec.versions[0].schema.openAPIV3Schema.properties[a].properties[b]: Required value: "
        "because it is defined in spec.versions[0].schema.openAPIV3Schema.properties[a].allOf[0].properties[b]"
    ) in incomplete
    assert (
        "spec.versions[0].schema.openAPIV3Schema.properties[a].$ref: Forbidden: $ref is not supported"
        in messages(
            schema(
                {
                    "type": "object",
                    "properties": {"a": {"$ref": "#/definitions/x", "type": "string"}},
                }
            )
        )
    )
    assert (
        "spec.versions[0].schema.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        in messages(
            schema(
                {
                    "type": "object",
                    "properties": {
                        "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
                    },
                }
            )
        )
    )


def test_list_types_defaults_and_rules() -> None:
    list_map = messages(
        schema(
            {
                "type": "object",
                "properties": {
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    }
                },
            }
        )
    )
    assert (
        "spec.versions[0].schema.openAPIV3Schema.properties[ports].items.properties[name].default: Required value: "
        "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
    ) in list_map
    bad_default = messages(
        schema({"type": "object", "properties": {"n": {"type": "integer", "default": "x"}}})
    )
    assert bad_default == [
        'spec.versions[0].schema.openAPIV3Schema.properties[n].default: Invalid value: "string": '
        'spec.versions[0].schema.openAPIV3Schema.properties[n].default in body must be of type integer: "string"'
    ]
    rule = messages(
        schema(
            {
                "type": "object",
                "x-kubernetes-validations": [{"rule": "self.nope > 1"}],
                "properties": {"n": {"type": "integer"}},
            }
        )
    )
    assert len(rule) == 1
    assert rule[0].startswith(
        "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: "
        'apiextensions.ValidationRule{Rule:"self.nope > 1", Message:""'
    )
    assert "compilation failed: ERROR: <input>:1:5: undefined field 'nope'" in rule[0]
    not_bool = messages(schema({"type": "object", "x-kubernetes-validations": [{"rule": "1 + 1"}]}))
    assert not_bool[0].endswith("cel expression must evaluate to a bool")
    costly = messages(
        schema(
            {
                "type": "object",
                "properties": {
                    "l": {
                        "type": "array",
                        "items": {"type": "string"},
                        "x-kubernetes-validations": [
                            {"rule": "self.all(x, self.all(y, x != y || true))"}
                        ],
                    }
                },
            }
        )
    )
    assert (
        costly
        and "Forbidden: estimated rule cost exceeds budget by factor of more than 100x" in costly[0]
    )


def test_conversion_and_update_rules() -> None:
    webhook = crd(spec__conversion={"strategy": "Webhook"})
    assert (
        "spec.conversion.webhook: Required value: required when strategy is set to Webhook"
        in messages(webhook)
    )
    both = crd(
        spec__conversion={
            "strategy": "Webhook",
            "webhook": {
                "clientConfig": {"url": "http://x.example.com/c"},
                "conversionReviewVersions": ["v9"],
            },
        }
    )
    found = messages(both)
    assert (
        "spec.conversion.webhook.clientConfig.url: Invalid value: \"http://x.example.com/c\": 'https' is the only allowed URL scheme"
        in found
    )
    assert (
        'spec.conversion.webhook.conversionReviewVersions: Invalid value: []string{"v9"}: must include at least one of v1, v1beta1'
        in found
    )
    old = crd()
    old["status"]["conditions"] = [{"type": "Established", "status": "True"}]
    new = crd(
        spec__names__kind="Gadget",
        spec__scope="Cluster",
        spec__group="other.com",
        metadata={"name": "widgets.other.com"},
    )
    errs = [e.message() for e in validation.validate_update(new, old)]
    assert 'spec.names.kind: Invalid value: "Gadget": field is immutable' in errs
    assert 'spec.scope: Invalid value: "Cluster": field is immutable' in errs
    assert 'spec.group: Invalid value: "other.com": field is immutable' in errs


def test_protected_groups_need_approval() -> None:
    obj = crd(spec__group="things.k8s.io", metadata={"name": "widgets.things.k8s.io"})
    assert any(
        m.startswith(
            "metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation"
        )
        for m in messages(obj)
    )
    obj["metadata"]["annotations"] = {"api-approved.kubernetes.io": "unapproved, experimental"}
    assert messages(obj) == []
