"""Strategic merge patches that fail, with upstream's words and the API server's status.

The messages are apimachinery's (``strategicpatch``, ``mergepatch``); the codes are
what ``interpretStrategicMergePatchError`` in the apiserver's PATCH handler makes
of them: 400 for malformed directives, 422 for lists of lists, and 500 (plain
Go errors, reason unknown) for the rest.
"""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import patch

POD = ("", "v1", "Pod")
CONTROLLER_REVISION = ("apps", "v1", "ControllerRevision")


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


TWO = pod(containers=[{"name": "a"}, {"name": "b"}])

# (id, kind, original, patch, code, message)
ERRORS: list[tuple[str, tuple[str, str, str], dict[str, Any], Any, int, str]] = [
    (
        "a merged list item without its merge key",
        POD,
        TWO,
        {"spec": {"containers": [{"image": "x"}]}},
        500,
        "map: map[image:x] does not contain declared merge key: name",
    ),
    (
        "$patch: delete without the merge key",
        POD,
        TWO,
        {"spec": {"containers": [{"$patch": "delete"}]}},
        500,
        "map: map[$patch:delete] does not contain declared merge key: name",
    ),
    (
        "unknown $patch in a map",
        POD,
        pod(hostname="h"),
        {"spec": {"$patch": "foo", "hostname": "x"}},
        500,
        "unknown patch type: foo in map: map[$patch:foo hostname:x]",
    ),
    (
        "$patch: merge is not accepted in a map",
        POD,
        pod(hostname="h"),
        {"spec": {"$patch": "merge"}},
        500,
        "unknown patch type: merge in map: map[$patch:merge]",
    ),
    (
        "$patch: merge is not accepted in a list",
        POD,
        TWO,
        {"spec": {"containers": [{"name": "a", "$patch": "merge"}]}},
        500,
        "merging lists cannot yet be specified in the patch",
    ),
    (
        "unknown $patch in a list item",
        POD,
        TWO,
        {"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}},
        500,
        "unknown patch type: bogus in map: map[$patch:bogus name:a]",
    ),
    (
        "a $patch that is not a string, printed as Go's %s prints it",
        POD,
        TWO,
        {"spec": {"containers": [{"name": "a", "$patch": 5}]}},
        500,
        "unknown patch type: %!s(int64=5) in map: map[$patch:5 name:a]",
    ),
    (
        "$retainKeys that is not a list",
        POD,
        pod(volumes=[{"name": "v", "emptyDir": {}}]),
        {
            "spec": {
                "volumes": [{"name": "v", "hostPath": {"path": "/"}, "$retainKeys": "hostPath"}]
            }
        },
        400,
        "invalid patch format of retainKeys",
    ),
    (
        "$retainKeys not naming a member the patch sets",
        POD,
        pod(volumes=[{"name": "v", "emptyDir": {}}]),
        {"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/"}, "$retainKeys": ["name"]}]}},
        400,
        "invalid patch format of retainKeys",
    ),
    (
        "$setElementOrder without a field",
        POD,
        TWO,
        {"spec": {"$setElementOrder": [{"name": "a"}]}},
        400,
        "invalid patch format of setElementOrder list",
    ),
    (
        "$deleteFromPrimitiveList with a bad prefix",
        POD,
        {"metadata": {"finalizers": ["a"]}},
        {"metadata": {"$deleteFromPrimitiveListX/finalizers": ["a"]}},
        400,
        "invalid patch format of primitive list",
    ),
    (
        "the patch list's order contradicts $setElementOrder",
        POD,
        TWO,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b", "image": "y"}, {"name": "a", "image": "x"}],
            }
        },
        500,
        "The order in patch list:\n[map[image:y name:b] map[image:x name:a]]\n doesn't match "
        "$setElementOrder list:\n[map[name:a] map[name:b]]\n",
    ),
    (
        "a list of lists",
        POD,
        {"metadata": {"finalizers": []}},
        {"metadata": {"finalizers": [["a"]]}},
        422,
        "lists of lists are not supported",
    ),
    (
        "list items of different types",
        POD,
        {"metadata": {"finalizers": ["a"]}},
        {"metadata": {"finalizers": [1]}},
        500,
        "list element types are not identical: [[a] [1]]",
    ),
    (
        "$setElementOrder of a field the kind does not have",
        POD,
        pod(),
        {"spec": {"$setElementOrder/nosuch": ["a"]}},
        500,
        'unable to find api field in struct PodSpec for the json field "nosuch"',
    ),
    (
        "$setElementOrder of a field that is no list",
        POD,
        pod(),
        {"spec": {"$setElementOrder/hostname": ["a"]}},
        500,
        "expected slice or array type, but got: struct",
    ),
    (
        "$setElementOrder whose list is no list",
        POD,
        TWO,
        {"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": {"name": "a"}}},
        500,
        "expected a []interface {}, but received a map[string]interface {}",
    ),
    (
        "$setElementOrder inside a map of strings",
        POD,
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"$setElementOrder/b": ["1"]}}},
        500,
        "merging an object in json but data type is not struct, instead is: map",
    ),
    (
        "merging into a RawExtension, a Go struct without JSON fields",
        CONTROLLER_REVISION,
        {"data": {"spec": {"replicas": 1}}},
        {"data": {"spec": {"replicas": 2}}},
        500,
        'unable to find api field in struct RawExtension for the json field "spec"',
    ),
    (
        "$deleteFromPrimitiveList of a list of objects without merge key",
        POD,
        pod(tolerations=[{"key": "a"}]),
        {"spec": {"$deleteFromPrimitiveList/tolerations": [{"key": "a"}]}},
        500,
        "cannot merge lists without merge key for struct",
    ),
    (
        "a patch body that is not an object",
        POD,
        pod(),
        [{"op": "add"}],
        400,
        "json: cannot unmarshal array into Go value of type map[string]interface {}",
    ),
]


@pytest.mark.parametrize(
    ("kind", "original", "body", "code", "message"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_strategic_merge_patch_errors(
    kind: tuple[str, str, str], original: dict[str, Any], body: Any, code: int, message: str
) -> None:
    group, version, name = kind
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_strategic_merge_patch(original, body, group=group, version=version, kind=name)
    assert raised.value.message == message
    assert raised.value.code == code


def test_status_for_malformed_directives_is_bad_request() -> None:
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_strategic_merge_patch(
            {"metadata": {"finalizers": ["a"]}},
            {"metadata": {"$deleteFromPrimitiveListX/finalizers": ["a"]}},
            group="",
            version="v1",
            kind="Pod",
        )
    status = raised.value.status_error().status()
    assert status["code"] == 400
    assert status["reason"] == "BadRequest"
    assert status["message"] == "invalid patch format of primitive list"


def test_status_for_plain_errors_is_500_without_reason() -> None:
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_strategic_merge_patch(
            TWO, {"spec": {"containers": [{"image": "x"}]}}, group="", version="v1", kind="Pod"
        )
    status = raised.value.status_error().status()
    assert (status["code"], status["reason"]) == (500, "")
    assert status["message"] == "map: map[image:x] does not contain declared merge key: name"


def test_status_for_list_of_lists_hides_the_reason() -> None:
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_strategic_merge_patch(
            {"metadata": {"finalizers": []}},
            {"metadata": {"finalizers": [["a"]]}},
            group="",
            version="v1",
            kind="Pod",
        )
    status = raised.value.status_error().status()
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"] == "the server rejected our request due to an error in our request"


@pytest.mark.parametrize(
    ("original", "body", "crash"),
    [
        (
            pod(containers=[]),
            {"spec": {"containers": [None]}},
            "runtime error: invalid memory address or nil pointer dereference",
        ),
        (
            pod(volumes=[{"name": "v"}]),
            {"spec": {"volumes": [{"name": "v", "$retainKeys": [{"a": 1}]}]}},
            "runtime error: hash of unhashable type map[string]interface {}",
        ),
        (
            pod(tolerations=[{"key": "a"}]),
            {"spec": {"$setElementOrder/tolerations": [{"key": "a"}]}},
            "runtime error: hash of unhashable type map[string]interface {}",
        ),
    ],
    ids=["null first item", "object in $retainKeys", "$setElementOrder of a list without key"],
)
def test_patches_that_crash_upstream(original: dict[str, Any], body: Any, crash: str) -> None:
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_strategic_merge_patch(original, body, group="", version="v1", kind="Pod")
    assert raised.value.message == crash
    status = raised.value.status_error().status()
    assert (status["code"], status["reason"]) == (500, "InternalError")
    assert "This request caused apiserver to panic" in status["message"]
