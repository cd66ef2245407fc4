"""JSON patch (RFC 6902) as the API server applies it (evanphx/json-patch v4.12.0).

Every expected result and message below is what the upstream library gives
for the same document and operations.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pilothouse.api import patch

DOC: dict[str, Any] = {
    "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": None},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {"name": "a", "image": "nginx", "args": ["x", "y"]},
                    {"name": "b", "image": "redis"},
                ]
            }
        },
    },
}
CONTAINERS = "/spec/template/spec/containers"


def changed(**edits: Any) -> dict[str, Any]:
    """DOC with ``path=value`` edits (path segments joined by ``__``)."""
    out = copy.deepcopy(DOC)
    for path, value in edits.items():
        *parents, last = path.split("__")
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return out


_DELETE = object()

# (id, operations, expected document)
APPLIES: list[tuple[str, list[Any], dict[str, Any]]] = [
    (
        "add a member",
        [{"op": "add", "path": "/metadata/labels/tier", "value": "fe"}],
        changed(metadata__labels={"app": "web", "tier": "fe"}),
    ),
    (
        "add replaces an existing member",
        [{"op": "add", "path": "/spec/replicas", "value": 3}],
        changed(spec__replicas=3),
    ),
    (
        "add inserts into an array",
        [{"op": "add", "path": f"{CONTAINERS}/0/args/1", "value": "new"}],
        changed(spec__template__spec__containers__0__args=["x", "new", "y"]),
    ),
    (
        "add with - appends",
        [{"op": "add", "path": f"{CONTAINERS}/0/args/-", "value": "z"}],
        changed(spec__template__spec__containers__0__args=["x", "y", "z"]),
    ),
    (
        "add at the array's length appends",
        [{"op": "add", "path": f"{CONTAINERS}/0/args/2", "value": "z"}],
        changed(spec__template__spec__containers__0__args=["x", "y", "z"]),
    ),
    (
        "a negative index counts from the end (-1 in add appends)",
        [{"op": "add", "path": f"{CONTAINERS}/0/args/-1", "value": "z"}],
        changed(spec__template__spec__containers__0__args=["x", "y", "z"]),
    ),
    (
        "an index is read like strconv.Atoi (+1, 01)",
        [
            {"op": "replace", "path": f"{CONTAINERS}/+1/image", "value": "redis:7"},
            {"op": "remove", "path": f"{CONTAINERS}/0/args/01"},
        ],
        changed(
            spec__template__spec__containers__1__image="redis:7",
            spec__template__spec__containers__0__args=["x"],
        ),
    ),
    (
        "add without a value adds null",
        [{"op": "add", "path": "/spec/paused"}],
        changed(spec__paused=None),
    ),
    (
        "remove a member and an element",
        [
            {"op": "remove", "path": "/metadata/labels/app"},
            {"op": "remove", "path": f"{CONTAINERS}/0"},
        ],
        changed(
            metadata__labels={}, spec__template__spec__containers=[{"name": "b", "image": "redis"}]
        ),
    ),
    (
        "remove a member whose value is null",
        [{"op": "remove", "path": "/metadata/annotations"}],
        changed(metadata__annotations=_DELETE),
    ),
    (
        "replace a value",
        [{"op": "replace", "path": f"{CONTAINERS}/1/image", "value": "redis:7"}],
        changed(spec__template__spec__containers__1__image="redis:7"),
    ),
    (
        "replace of a missing member adds it",
        [{"op": "replace", "path": "/spec/paused", "value": True}],
        changed(spec__paused=True),
    ),
    (
        "replace of the whole document with a non-object does nothing",
        [{"op": "replace", "path": "", "value": "x"}],
        DOC,
    ),
    (
        "replace of the whole document with an object",
        [{"op": "replace", "path": "", "value": {"kind": "Pod"}}],
        {"kind": "Pod"},
    ),
    (
        "move a member",
        [{"op": "move", "from": "/metadata/labels", "path": "/spec/selector"}],
        changed(metadata__labels=_DELETE, spec__selector={"app": "web"}),
    ),
    (
        "move an array element",
        [{"op": "move", "from": f"{CONTAINERS}/1", "path": f"{CONTAINERS}/0"}],
        changed(
            spec__template__spec__containers=[
                {"name": "b", "image": "redis"},
                {"name": "a", "image": "nginx", "args": ["x", "y"]},
            ]
        ),
    ),
    (
        "copy a value",
        [{"op": "copy", "from": f"{CONTAINERS}/1/image", "path": f"{CONTAINERS}/0/image"}],
        changed(spec__template__spec__containers__0__image="redis"),
    ),
    (
        "copy of a missing member copies null",
        [{"op": "copy", "from": "/spec/nothing", "path": "/spec/copied"}],
        changed(spec__copied=None),
    ),
    (
        "test passes, then the next operation applies",
        [
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "test", "path": f"{CONTAINERS}/0/args", "value": ["x", "y"]},
            {"op": "test", "path": "/metadata/labels", "value": {"app": "web"}},
            {"op": "replace", "path": "/spec/replicas", "value": 5},
        ],
        changed(spec__replicas=5),
    ),
    (
        "test of a missing or null member against null passes",
        [
            {"op": "test", "path": "/spec/nothing", "value": None},
            {"op": "test", "path": "/metadata/annotations", "value": None},
        ],
        DOC,
    ),
    (
        "~1 and ~0 escape / and ~ in member names",
        [{"op": "add", "path": "/metadata/labels/example.com~1a~0b", "value": "1"}],
        changed(metadata__labels={"app": "web", "example.com/a~b": "1"}),
    ),
    (
        "the first segment of a path is never read",
        [{"op": "add", "path": "whatever/tier", "value": "x"}],
        changed(tier="x"),
    ),
    (
        "no operations",
        [],
        DOC,
    ),
]


@pytest.mark.parametrize(
    ("operations", "expected"), [c[1:] for c in APPLIES], ids=[c[0] for c in APPLIES]
)
def test_json_patch_applies(operations: list[Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy((DOC, operations))
    assert patch.apply_json_patch(DOC, operations) == expected
    assert (DOC, operations) == before


# (id, operations, upstream's message)
FAILURES: list[tuple[str, list[Any], str]] = [
    (
        "test of a different value",
        [{"op": "test", "path": "/spec/replicas", "value": 3}],
        "testing value /spec/replicas failed: test failed",
    ),
    (
        "test compares numbers as written",
        [{"op": "test", "path": "/spec/replicas", "value": 2.0}],
        "testing value /spec/replicas failed: test failed",
    ),
    (
        "test of a missing member against a value",
        [{"op": "test", "path": "/spec/nothing", "value": 1}],
        "testing value /spec/nothing failed: test failed",
    ),
    (
        "test of a path that does not exist",
        [{"op": "test", "path": "/nothing/here", "value": 1}],
        "test operation does not apply: is missing path: /nothing/here: missing value",
    ),
    (
        "add under a missing parent",
        [{"op": "add", "path": "/spec/strategy/type", "value": "Recreate"}],
        'add operation does not apply: doc is missing path: "/spec/strategy/type": missing value',
    ),
    (
        "add through a null member",
        [{"op": "add", "path": "/metadata/annotations/a", "value": "1"}],
        'add operation does not apply: doc is missing path: "/metadata/annotations/a": missing value',
    ),
    (
        "add past the end of an array",
        [{"op": "add", "path": f"{CONTAINERS}/5", "value": {}}],
        f"error in add for path: '{CONTAINERS}/5': Unable to access invalid index: 5: invalid index referenced",
    ),
    (
        "add at a non-numeric array index",
        [{"op": "add", "path": f"{CONTAINERS}/x", "value": {}}],
        f"error in add for path: '{CONTAINERS}/x': value was not a proper array index: 'x': "
        'strconv.Atoi: parsing "x": invalid syntax',
    ),
    (
        "remove of a missing member",
        [{"op": "remove", "path": "/spec/paused"}],
        "error in remove for path: '/spec/paused': Unable to remove nonexistent key: paused: missing value",
    ),
    (
        "remove past the end of an array",
        [{"op": "remove", "path": f"{CONTAINERS}/2"}],
        f"error in remove for path: '{CONTAINERS}/2': Unable to access invalid index: 2: invalid index referenced",
    ),
    (
        "remove with - (no element)",
        [{"op": "remove", "path": f"{CONTAINERS}/-"}],
        f"error in remove for path: '{CONTAINERS}/-': strconv.Atoi: parsing \"-\": invalid syntax",
    ),
    (
        "replace of a missing array element",
        [{"op": "replace", "path": f"{CONTAINERS}/7", "value": {}}],
        f"replace operation does not apply: doc is missing key: {CONTAINERS}/7: missing value",
    ),
    (
        "replace under a missing parent",
        [{"op": "replace", "path": "/status/phase", "value": "x"}],
        "replace operation does not apply: doc is missing path: /status/phase: missing value",
    ),
    (
        "move from a missing member",
        [{"op": "move", "from": "/spec/nothing", "path": "/spec/x"}],
        "error in move for path: 'nothing': Unable to remove nonexistent key: nothing: missing value",
    ),
    (
        "copy to a missing parent",
        [{"op": "copy", "from": "/spec/replicas", "path": "/status/replicas"}],
        "copy operation does not apply: doc is missing destination path: /status/replicas: missing value",
    ),
    (
        "an operation without path",
        [{"op": "replace", "value": 1}],
        "replace operation failed to decode path: operation missing path field: missing value",
    ),
    (
        "move without from",
        [{"op": "move", "path": "/a"}],
        "move operation failed to decode from: operation, missing from field: missing value",
    ),
    (
        "an unknown operation",
        [{"op": "merge", "path": "/a", "value": 1}],
        "Unexpected kind: merge",
    ),
    (
        "an operation without op",
        [{"path": "/a", "value": 1}],
        "Unexpected kind: unknown",
    ),
    (
        "a failure stops the patch: nothing of it applies",
        [
            {"op": "replace", "path": "/spec/replicas", "value": 9},
            {"op": "test", "path": "/metadata/name", "value": "other"},
        ],
        "testing value /metadata/name failed: test failed",
    ),
]


@pytest.mark.parametrize(
    ("operations", "message"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_json_patch_failures(operations: list[Any], message: str) -> None:
    before = copy.deepcopy(DOC)
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_json_patch(DOC, operations)
    assert raised.value.message == message
    assert raised.value.code == 422
    assert before == DOC


def test_failure_status_hides_the_reason_like_upstream() -> None:
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_json_patch(DOC, [{"op": "test", "path": "/spec/replicas", "value": 3}])
    status = raised.value.status_error().status()
    assert status["code"] == 422
    assert status["reason"] == "Invalid"
    assert status["message"] == "the server rejected our request due to an error in our request"


@pytest.mark.parametrize(
    ("body", "validation", "message"),
    [
        (
            {"op": "add"},
            "Strict",
            "error decoding patch: json: cannot unmarshal object into Go value of type "
            "[]handlers.jsonPatchOp",
        ),
        (
            [1],
            "Warn",
            "error decoding patch: json: cannot unmarshal number into Go value of type "
            "handlers.jsonPatchOp",
        ),
        (
            [{"op": "add", "path": 5}],
            "Strict",
            "error decoding patch: json: cannot unmarshal number into Go struct field "
            "jsonPatchOp.path of type string",
        ),
        (
            {"op": "add"},
            "Ignore",
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
        ),
        (
            ["x"],
            "Ignore",
            "json: cannot unmarshal string into Go value of type jsonpatch.Operation",
        ),
    ],
)
def test_undecodable_patches_are_bad_requests(body: Any, validation: str, message: str) -> None:
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_json_patch(DOC, body, field_validation=validation)
    assert (raised.value.code, raised.value.message) == (400, message)
    assert raised.value.status_error().reason == "BadRequest"


def test_a_null_body_is_no_operations() -> None:
    assert patch.apply_json_patch(DOC, None) == DOC


def test_too_many_operations() -> None:
    operations = [{"op": "test", "path": "/spec/replicas", "value": 2}] * 10001
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_json_patch(DOC, operations)
    status = raised.value.status_error().status()
    assert (status["code"], status["reason"]) == (413, "RequestEntityTooLarge")
    assert status["message"] == (
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
    )


def test_copies_are_limited_to_3_mib() -> None:
    big = {"data": {"blob": "x" * (1024 * 1024)}}
    operations = [{"op": "copy", "from": "/data/blob", "path": f"/data/c{i}"} for i in range(4)]
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_json_patch(big, operations)
    assert raised.value.message.startswith(
        "Unable to complete the copy, the accumulated size increase of copy is 3145734, "
        "exceeding the limit 3145728"
    )


def test_a_result_that_is_no_object_fails_decoding() -> None:
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_json_patch(DOC, [{"op": "replace", "path": "", "value": [1]}])
    status = raised.value.status_error().status()
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"].startswith(' "" is invalid: patch: Invalid value: "[1]": ')


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "test", "path": "/a", "value": [None, 1]}],
        [{"op": "test", "path": "/b", "value": [1]}],
        [{"op": "test", "path": "/nothing"}],
        [
            {"op": "replace", "path": "/spec", "value": None},
            {"op": "add", "path": "/spec/x", "value": 1},
        ],
    ],
    ids=["null in an array", "null against a value in an array", "no value", "walk an op's null"],
)
def test_patches_that_crash_upstream(operations: list[Any]) -> None:
    document = {"a": [None, 1], "b": [None], "spec": {}}
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_json_patch(document, operations)
    assert (
        raised.value.message == "runtime error: invalid memory address or nil pointer dereference"
    )
    assert raised.value.status_error().reason == "InternalError"


def test_nulls_set_and_copied_by_operations() -> None:
    document: dict[str, Any] = {"a": 1}
    result = patch.apply_json_patch(
        document,
        [
            {"op": "replace", "path": "/a", "value": None},
            {"op": "copy", "from": "/a", "path": "/b"},
            # upstream reads a copied null as an empty object...
            {"op": "test", "path": "/b", "value": {}},
        ],
    )
    assert result == {"a": None, "b": None}
    # ...that cannot be written to.
    with pytest.raises(patch.PatchError) as raised:
        patch.apply_json_patch(
            document,
            [
                {"op": "replace", "path": "/a", "value": None},
                {"op": "copy", "from": "/a", "path": "/b"},
                {"op": "add", "path": "/b/c", "value": 1},
            ],
        )
    assert raised.value.message == "assignment to entry in nil map"


def test_strict_problems_name_unknown_fields() -> None:
    body = [{"op": "add", "path": "/a", "value": 1, "extra": True}, {"op": "remove", "path": "/b"}]
    assert patch.json_patch_strict_problems(body) == ['json patch unknown field "extra"']
