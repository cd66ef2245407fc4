"""Field sets and their FieldsV1 encoding (structured-merge-diff's fieldpath package)."""

from __future__ import annotations

import json

import pytest

from pilothouse.api.fieldmanager import fieldpath, gotext
from pilothouse.api.fieldmanager.fieldpath import Set

# structured-merge-diff fieldpath/serialize_test.go, TestSerializeV1GoldenData.
GOLDEN = [
    r'{"f:aaa":{},"f:aab":{},"f:aac":{},"f:aad":{},"f:aae":{},"f:aaf":{},"k:{\"name\":\"first\"}":{},"k:{\"name\":\"second\"}":{},"k:{\"port\":443,\"protocol\":\"tcp\"}":{},"k:{\"port\":443,\"protocol\":\"udp\"}":{},"v:1":{},"v:2":{},"v:3":{},"v:\"aa\"":{},"v:\"ab\"":{},"v:true":{},"i:1":{},"i:2":{},"i:3":{},"i:4":{}}',
    r'{"f:aaa":{"k:{\"name\":\"second\"}":{"v:3":{"f:aab":{}}},"v:3":{},"v:true":{}},"f:aab":{"f:aaa":{},"f:aaf":{"k:{\"port\":443,\"protocol\":\"udp\"}":{"k:{\"port\":443,\"protocol\":\"tcp\"}":{}}},"k:{\"name\":\"first\"}":{}},"f:aac":{"f:aaa":{"v:1":{}},"f:aac":{},"v:3":{"k:{\"name\":\"second\"}":{}}},"f:aad":{"f:aac":{"v:1":{}},"f:aaf":{"k:{\"name\":\"first\"}":{"k:{\"name\":\"first\"}":{}}},"i:1":{"i:1":{},"i:3":{"v:true":{}}}},"f:aae":{"f:aae":{},"k:{\"port\":443,\"protocol\":\"tcp\"}":{"k:{\"port\":443,\"protocol\":\"udp\"}":{}},"i:4":{"f:aaf":{}}},"f:aaf":{"i:1":{"f:aac":{}},"i:2":{},"i:3":{}},"k:{\"name\":\"first\"}":{"f:aad":{"f:aaf":{}}},"k:{\"port\":443,\"protocol\":\"tcp\"}":{"f:aaa":{"f:aad":{}}},"k:{\"port\":443,\"protocol\":\"udp\"}":{"f:aac":{},"k:{\"name\":\"first\"}":{"i:3":{}},"k:{\"port\":443,\"protocol\":\"udp\"}":{"i:4":{}}},"v:1":{"f:aac":{"i:4":{}},"f:aaf":{},"k:{\"port\":443,\"protocol\":\"tcp\"}":{}},"v:2":{"f:aad":{"f:aaf":{}},"i:1":{}},"v:3":{"f:aaa":{},"k:{\"name\":\"first\"}":{},"i:2":{}},"v:\"aa\"":{"f:aab":{"f:aaf":{}},"f:aae":{},"k:{\"name\":\"first\"}":{"f:aad":{}},"i:2":{}},"v:\"ab\"":{"f:aaf":{"i:4":{}},"k:{\"port\":443,\"protocol\":\"tcp\"}":{},"k:{\"port\":443,\"protocol\":\"udp\"}":{},"v:1":{"k:{\"port\":443,\"protocol\":\"udp\"}":{}},"i:1":{"f:aae":{"i:4":{}}}},"v:true":{"k:{\"name\":\"second\"}":{"f:aaa":{}},"i:2":{"k:{\"port\":443,\"protocol\":\"tcp\"}":{}}},"i:1":{"i:3":{"f:aaf":{}}},"i:2":{"f:aae":{},"k:{\"port\":443,\"protocol\":\"tcp\"}":{"v:1":{}}},"i:3":{"f:aab":{"v:true":{"v:\"aa\"":{}}},"f:aaf":{},"i:1":{}},"i:4":{"v:\"aa\"":{"f:aab":{"k:{\"name\":\"second\"}":{}}}}}',
]


def _dumps(fields: dict[str, object]) -> str:
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("golden", GOLDEN)
def test_golden_round_trip(golden: str) -> None:
    decoded = Set.from_fields(json.loads(golden))
    assert _dumps(decoded.to_fields()) == golden


@pytest.mark.parametrize("golden", GOLDEN)
def test_shuffled_input_is_sorted_on_output(golden: str) -> None:
    def reverse(node: dict[str, object]) -> dict[str, object]:
        return {k: reverse(v) for k, v in reversed(node.items())}  # type: ignore[arg-type]

    decoded = Set.from_fields(reverse(json.loads(golden)))
    assert _dumps(decoded.to_fields()) == golden


def test_unknown_path_elements_are_dropped() -> None:
    assert Set.from_fields({"f:aaa": {}, "r:aab": {}}).to_fields() == {"f:aaa": {}}


@pytest.mark.parametrize(
    "element",
    [
        "i:0",
        "i:1234",
        "f:",
        "f:spec",
        "f:more-complicated-string",
        'k:{"name":"my-container"}',
        'k:{"port":"8080","protocol":"TCP"}',
        'k:{"optionalField":null}',
        'k:{"jsonField":{"A":1,"B":null,"C":"D","E":{"F":"G"}}}',
        'k:{"listField":["1","2","3"]}',
        "v:null",
        'v:"some-string"',
        "v:1234",
        'v:{"some":"json"}',
    ],
)
def test_path_element_round_trip(element: str) -> None:
    assert fieldpath.canonical(element) == element


@pytest.mark.parametrize(
    "element",
    ["", "no-colon", "i:index is not a number", "i:1.23", "i:", "v:invalid json", "v:", "k:x"],
)
def test_malformed_path_elements_fail(element: str) -> None:
    with pytest.raises(ValueError):
        fieldpath.canonical(element)


def test_key_elements_are_canonicalised() -> None:
    # Key order, spacing and 80.0 vs 80 do not make another item.
    assert (
        fieldpath.canonical('k:{"protocol": "TCP", "containerPort": 80.0}')
        == 'k:{"containerPort":80,"protocol":"TCP"}'
    )
    decoded = Set.from_fields({'k:{"b":1, "a":2}': {}})
    assert decoded.to_fields() == {'k:{"a":2,"b":1}': {}}


def test_json_of_values_escapes_like_go() -> None:
    assert fieldpath.value("<a&b>") == 'v:"\\u003ca\\u0026b\\u003e"'
    assert fieldpath.value("é\u2028") == 'v:"é\\u2028"'
    assert fieldpath.value("tab\tline\n") == 'v:"tab\\tline\\n"'
    assert gotext.json_string("\b") == '"\\u0008"'
    assert gotext.json_string("\b", short_control=True) == '"\\b"'
    assert gotext.go_float(1e-7) == "1e-7"
    assert gotext.go_float(1e21) == "1e+21"
    assert gotext.go_float(2.0) == "2"
    assert gotext.go_float(0.000001) == "0.000001"


def test_paths_print_like_upstream() -> None:
    path = (
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        'k:{"name":"nginx"}',
        "f:ports",
        'k:{"containerPort":80,"protocol":"TCP"}',
        "f:name",
    )
    assert fieldpath.path_string(path) == (
        '.spec.template.spec.containers[name="nginx"].ports[containerPort=80,protocol="TCP"].name'
    )
    assert fieldpath.path_string(("f:metadata", "f:finalizers", 'v:"a"')) == (
        '.metadata.finalizers[="a"]'
    )
    assert fieldpath.path_string(("f:args", "i:2")) == ".args[2]"
    assert fieldpath.element_string("v:1.5") == "[=1.5]"
    assert fieldpath.element_string("v:1000000.5") == "[=1.0000005e+06]"


# structured-merge-diff fieldpath/set_test.go, TestSetIntersectionDifference.
FIRST = 'k:{"name":"first"}'
S1 = Set.of(
    ("f:a0",),
    ("f:a1",),
    ("f:foo", "i:0"),
    ("f:foo", "i:1"),
    ("f:b0", FIRST),
    ("f:b1", FIRST),
    ("f:bar", "f:c0"),
    ("f:cp", FIRST, "f:child"),
)
S2 = Set.of(
    ("f:a1",),
    ("f:a2",),
    ("f:foo", "i:1"),
    ("f:foo", "i:2"),
    ("f:b1", FIRST),
    ("f:b2", FIRST),
    ("f:bar", "f:c2"),
    ("f:cp", FIRST),
)


def test_intersection() -> None:
    assert Set.of(("f:a1",), ("f:foo", "i:1"), ("f:b1", FIRST)) == S1 & S2


def test_difference() -> None:
    assert (
        Set.of(
            ("f:a0",),
            ("f:foo", "i:0"),
            ("f:b0", FIRST),
            ("f:bar", "f:c0"),
            ("f:cp", FIRST, "f:child"),
        )
        == S1 - S2
    )
    assert (
        Set.of(("f:a2",), ("f:foo", "i:2"), ("f:b2", FIRST), ("f:bar", "f:c2"), ("f:cp", FIRST))
        == S2 - S1
    )


def test_intersection_the_hard_way() -> None:
    assert (S1 | S2) - (S1 - S2) - (S2 - S1) == S1 & S2


def test_union_keeps_membership_of_both() -> None:
    joined = Set.of(("f:a",)) | Set.of(("f:a", "f:b"))
    assert joined.to_fields() == {"f:a": {".": {}, "f:b": {}}}
    assert joined.has(("f:a",)) and joined.has(("f:a", "f:b"))


# structured-merge-diff fieldpath/set_test.go, TestSetDifference.
@pytest.mark.parametrize(
    ("a", "b", "difference", "recursive"),
    [
        ([("f:a",)], [("f:a",)], [], []),
        ([("f:a", "f:b", "f:c")], [("f:a", "f:b", "f:c")], [], []),
        (
            [("f:a", "f:b", "f:c"), ("f:b", "f:b", "f:c")],
            [("f:a", "f:b", "f:c")],
            [("f:b", "f:b", "f:c")],
            [("f:b", "f:b", "f:c")],
        ),
        ([("f:a",)], [("f:a", "f:aa")], [("f:a",)], [("f:a",)]),
        ([("f:a", "f:b", "f:c")], [("f:a",)], [("f:a", "f:b", "f:c")], []),
        (
            [("f:a", "f:aa", "f:aab"), ("f:a", "f:ab", "f:aba")],
            [("f:a", "f:aa")],
            [("f:a", "f:aa", "f:aab"), ("f:a", "f:ab", "f:aba")],
            [("f:a", "f:ab", "f:aba")],
        ),
        (
            [("f:a", "f:aa", "f:aab"), ("f:a", "f:ab", "f:aba")],
            [("f:a",)],
            [("f:a", "f:aa", "f:aab"), ("f:a", "f:ab", "f:aba")],
            [],
        ),
    ],
)
def test_difference_table(
    a: list[tuple[str, ...]],
    b: list[tuple[str, ...]],
    difference: list[tuple[str, ...]],
    recursive: list[tuple[str, ...]],
) -> None:
    assert Set.of(*a) - Set.of(*b) == Set.of(*difference)
    assert Set.of(*a).recursive_difference(Set.of(*b)) == Set.of(*recursive)


def test_paths_iterate_members_then_children_in_order() -> None:
    fields = Set.from_fields(
        {
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:x": {}}}},
            "f:metadata": {"f:labels": {".": {}, "f:b": {}, "f:a": {}}},
            "f:apiVersion": {},
        }
    )
    assert [fieldpath.path_string(p) for p in fields.paths()] == [
        ".apiVersion",
        ".metadata.labels",
        ".metadata.labels.a",
        ".metadata.labels.b",
        ".spec.replicas",
        ".spec.template.spec.x",
    ]
    assert len(fields) == 6


def test_has_and_with_prefix() -> None:
    fields = Set.of(("f:spec", "f:replicas"), ("f:spec", "f:template", "f:spec"))
    assert fields.has(("f:spec", "f:replicas"))
    assert not fields.has(("f:spec",))
    assert not fields.has(("f:spec", "f:template"))
    assert not fields.has(())
    assert fields.with_prefix("f:spec") == Set.of(("f:replicas",), ("f:template", "f:spec"))
    assert not fields.with_prefix("f:status")


def test_canonical_input_is_reused_and_other_input_rebuilt() -> None:
    canonical = {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}}
    assert Set.from_fields(canonical).to_fields() is canonical
    unordered = {"f:spec": {"f:replicas": {}}, "f:metadata": {"f:labels": {"f:app": {}, ".": {}}}}
    rebuilt = Set.from_fields(unordered).to_fields()
    assert rebuilt is not unordered
    assert list(rebuilt) == ["f:metadata", "f:spec"]
    assert list(rebuilt["f:metadata"]["f:labels"]) == [".", "f:app"]


def test_an_entry_with_only_self_or_unknown_children_is_a_member() -> None:
    assert Set.from_fields({"f:a": {".": {}}}) == Set.of(("f:a",))
    assert Set.from_fields({"f:a": {"x:b": {}}}) == Set.of(("f:a",))


@pytest.mark.parametrize("bad", [[], {"f:a": []}, {"f:a": {"f:b": "x"}}])
def test_malformed_fields_fail(bad: object) -> None:
    with pytest.raises(ValueError):
        Set.from_fields(bad)


def test_unix_seconds() -> None:
    assert fieldpath.unix_seconds("1970-01-01T00:01:00Z") == 60
    assert fieldpath.unix_seconds(None) == 0
    assert fieldpath.unix_seconds("not a time") == 0
