"""What a custom resource goes through: validation messages, pruning, defaulting, rules."""

from __future__ import annotations

from pilothouse.api.apiextensions import defaulting, jsonpath, naming, prune, rules, schemavalidate

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "maxLength": 10},
                "cron": {"type": "string", "pattern": "^a+$"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "items": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "when": {"type": "string", "format": "date-time"},
                "port": {"x-kubernetes-int-or-string": True},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "mode": {"type": "string", "default": "fast"},
                "nested": {
                    "type": "object",
                    "default": {},
                    "properties": {"level": {"type": "integer", "default": 3}},
                },
            },
        }
    },
}


def messages(value: dict) -> list[str]:
    return [e.message() for e in schemavalidate.validate(value, SCHEMA)]


def test_kube_openapi_messages() -> None:
    found = messages(
        {
            "spec": {
                "image": "much-too-long-image",
                "cron": "b",
                "replicas": 20,
                "color": "pink",
                "items": ["a", "b", "c"],
                "when": "yesterday",
                "port": 1.5,
            }
        }
    )
    assert found == [
        "spec.image: Too long: may not be more than 10 bytes",
        "spec.cron: Invalid value: \"b\": spec.cron in body should match '^a+$'",
        "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10",
        'spec.color: Unsupported value: "pink": supported values: "red", "blue"',
        "spec.items: Too many: 3: must have at most 2 items",
        'spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"',
        'spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number"',
    ]
    assert messages({"spec": {}}) == ["spec.image: Required value"]
    assert messages({"spec": {"image": 5}}) == [
        'spec.image: Invalid value: "integer": spec.image in body must be of type string: "integer"'
    ]


def test_pruning_keeps_what_the_schema_preserves() -> None:
    obj = {
        "apiVersion": "x/v1",
        "kind": "X",
        "metadata": {"name": "a", "bogus": 1},
        "spec": {
            "image": "i",
            "nope": 1,
            "extra": {"anything": {"goes": True}},
            "labels": {"a": "b"},
        },
        "status": {"x": 1},
    }
    pruned = prune.prune(obj, SCHEMA)
    assert sorted(pruned) == ["metadata.bogus", "spec.nope", "status"]
    assert obj["spec"] == {
        "image": "i",
        "extra": {"anything": {"goes": True}},
        "labels": {"a": "b"},
    }
    assert obj["metadata"] == {"name": "a"}


def test_defaulting_applies_nested_defaults_and_a_plan_finds_missing_ones() -> None:
    obj = {"spec": {"image": "i"}}
    plan = defaulting.Plan(SCHEMA)
    assert plan.missing(obj)
    plan.apply(obj)
    assert obj["spec"]["mode"] == "fast"
    assert obj["spec"]["nested"] == {"level": 3}
    assert not plan.missing(obj)


def test_cel_rules_with_messages_reasons_field_paths_and_transitions() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {
                        "rule": "self.min <= self.max",
                        "messageExpression": "'min ' + string(self.min) + ' is over max'",
                    },
                    {
                        "rule": "self.name == oldSelf.name",
                        "message": "name is immutable",
                        "reason": "FieldValueForbidden",
                        "fieldPath": ".name",
                    },
                    {"rule": "self.name.size() > 1"},
                ],
                "properties": {
                    "min": {"type": "integer"},
                    "max": {"type": "integer"},
                    "name": {"type": "string"},
                },
            }
        },
    }
    v = rules.Validator(schema)
    created = [e.message() for e in v.validate({"spec": {"min": 5, "max": 1, "name": "x"}})]
    assert created == [
        'spec: Invalid value: "object": min 5 is over max',
        'spec: Invalid value: "object": failed rule: self.name.size() > 1',
    ]
    updated = [
        e.message()
        for e in v.validate(
            {"spec": {"min": 1, "max": 2, "name": "yy"}},
            {"spec": {"min": 1, "max": 2, "name": "xx"}},
        )
    ]
    assert updated == ["spec.name: Forbidden: name is immutable"]
    assert [e.message() for e in v.validate({"spec": {"max": 2, "name": "yy"}})] == [
        'spec: Invalid value: "object": no such key: min evaluating rule: self.min <= self.max'
    ]


def test_naming_conflicts() -> None:
    def crd(name: str, plural: str, kind: str, accepted: bool = True) -> dict:
        names = {"plural": plural, "singular": plural[:-1], "kind": kind, "listKind": kind + "List"}
        return {
            "metadata": {"name": name},
            "spec": {
                "group": "example.com",
                "names": names,
                "versions": [{"name": "v1", "storage": True}],
            },
            "status": {"acceptedNames": names if accepted else {}},
        }

    first = crd("widgets.example.com", "widgets", "Widget")
    clash = crd("gadgets.example.com", "gadgets", "Widget", accepted=False)
    naming.reconcile(clash, [first])
    cond = {c["type"]: c for c in clash["status"]["conditions"]}
    assert cond["NamesAccepted"]["status"] == "False"
    assert cond["NamesAccepted"]["reason"] == "ListKindConflict"  # the last conflict found
    assert cond["NamesAccepted"]["message"] == '"WidgetList" is already in use'
    assert cond["Established"]["status"] == "False"
    fine = crd("gizmos.example.com", "gizmos", "Gizmo", accepted=False)
    naming.reconcile(fine, [first])
    assert {c["type"]: c["status"] for c in fine["status"]["conditions"]} == {
        "NamesAccepted": "True",
        "Established": "True",
    }


def test_jsonpath_of_printer_columns() -> None:
    obj = {
        "spec": {"replicas": 3, "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Done", "status": "False"}]
        },
    }
    assert jsonpath.find(jsonpath.parse(".spec.replicas"), obj) == [3]
    assert jsonpath.find(jsonpath.parse('.status.conditions[?(@.type=="Ready")].status'), obj) == [
        "True"
    ]
    assert jsonpath.find(jsonpath.parse(".spec.ports[*].name"), obj) == ["a", "b"]
    assert jsonpath.find(jsonpath.parse(".spec.ports[-1].port"), obj) == [2]
    assert jsonpath.find(jsonpath.parse("..port"), obj) == [1, 2]
    assert jsonpath.find(jsonpath.parse(".spec.missing"), obj) == []
    assert jsonpath.text({"a": 1}) == '{"a":1}'
    assert jsonpath.text(2.0) == "2"
