"""JSON merge patch (RFC 7386) as the API server applies it (evanphx/json-patch v4 MergePatch)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pilothouse.api import patch

# RFC 7386, Appendix A, for the rows whose target is an object (API objects always are).
RFC_7386: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "body", "expected"), RFC_7386)
def test_rfc_7386_examples(
    original: dict[str, Any], body: dict[str, Any], expected: dict[str, Any]
) -> None:
    before = copy.deepcopy((original, body))
    assert patch.apply_merge_patch(original, body) == expected
    assert (original, body) == before


def test_lists_are_replaced_whole() -> None:
    # The docs' merge-patch example: the containers list is replaced, not merged.
    original = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "patch-demo-ctr", "image": "nginx"},
                        {"name": "patch-demo-ctr-2", "image": "redis"},
                    ]
                }
            }
        }
    }
    body = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "patch-demo-ctr-3", "image": "gcr.io/google-samples/hello-app:2.0"}
                    ]
                }
            }
        }
    }
    assert patch.apply_merge_patch(original, body) == body


def test_nulls_inside_added_arrays_are_pruned() -> None:
    # Upstream prunes nulls in objects inside a new array (the RFC would keep them)...
    assert patch.apply_merge_patch({}, {"a": [{"b": None, "c": 1}, None]}) == {
        "a": [{"c": 1}, None]
    }
    # ...but not where an array replaces an object.
    assert patch.apply_merge_patch({"a": {"x": 1}}, {"a": [{"b": None}]}) == {"a": [{"b": None}]}


def test_a_null_member_counts_as_absent() -> None:
    assert patch.apply_merge_patch({"a": None}, {"a": {"b": None, "c": 1}}) == {"a": {"c": 1}}


@pytest.mark.parametrize(
    ("body", "validation", "message"),
    [
        (None, "Warn", "Invalid JSON Patch"),
        (None, "Ignore", "Invalid JSON Patch"),
        ("bar", "Ignore", "Invalid JSON Patch"),
        (
            "bar",
            "Strict",
            "error decoding patch: json: cannot unmarshal string into Go value of type "
            "map[string]interface {}",
        ),
        (
            ["c"],
            "Warn",
            "error decoding patch: json: cannot unmarshal array into Go value of type "
            "map[string]interface {}",
        ),
    ],
)
def test_patches_that_are_not_objects(body: Any, validation: str, message: str) -> None:
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_merge_patch({"a": "foo"}, body, field_validation=validation)
    assert (raised.value.code, raised.value.message) == (400, message)
    assert raised.value.status_error().reason == "BadRequest"


def test_an_array_patch_without_strict_decoding_fails_as_the_result_is_no_object() -> None:
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_merge_patch({"a": "foo"}, ["c"], field_validation="Ignore")
    status = raised.value.status_error().status()
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"].startswith(' "" is invalid: patch: Invalid value: "[\\"c\\"]": ')


def test_the_result_copies_only_what_the_patch_names() -> None:
    original = {
        "metadata": {"name": "p", "labels": {"a": "1"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "Ready"}]},
    }
    before = copy.deepcopy(original)
    body = {"status": {"phase": "Running", "podIP": None, "hostIP": {"x": None}}}
    body_before = copy.deepcopy(body)
    out = patch.apply_merge_patch(original, body)
    assert out == {
        "metadata": {"name": "p", "labels": {"a": "1"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready"}], "hostIP": {}},
    }
    assert original == before and body == body_before  # neither argument changed
    # What the patch leaves alone is shared; every dict on its paths is new.
    assert out["spec"] is original["spec"] and out["metadata"] is original["metadata"]
    assert out["status"]["conditions"] is original["status"]["conditions"]
    assert out is not original and out["status"] is not original["status"]
    # Nothing is shared with the patch: applying it again (a retried write) is the same.
    out["status"]["hostIP"]["y"] = 1
    assert body == body_before
    assert list(out) == ["metadata", "spec", "status"]
    assert list(out["status"]) == ["phase", "conditions", "hostIP"]
