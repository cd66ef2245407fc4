"""Field order on the wire: Status bodies and objects as upstream's Go structs
declare them (clients compare Status bodies as strings)."""

from __future__ import annotations

import orjson

from pilothouse.api import errors, meta


def test_status_fields_in_upstreams_order() -> None:
    body = orjson.dumps(errors.already_exists("services", "", "mock-2").status())
    assert body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"services \\"mock-2\\" already exists","reason":"AlreadyExists",'
        b'"details":{"name":"mock-2","kind":"services"},"code":409}'
    )
    grouped = orjson.dumps(errors.already_exists("deployments", "apps", "triple-nginx").status())
    assert grouped.endswith(
        b'"details":{"name":"triple-nginx","group":"apps","kind":"deployments"},"code":409}'
    )
    # No details: code follows reason directly.
    assert orjson.dumps(errors.bad_request("nope").status()).endswith(
        b'"message":"nope","reason":"BadRequest","code":400}'
    )


def test_status_details_keep_struct_order_whatever_order_they_were_built_in() -> None:
    err = errors.StatusError(
        429,
        errors.TOO_MANY_REQUESTS,
        "slow down",
        details={"retryAfterSeconds": 1, "causes": [], "kind": "pods", "name": "x"},
    )
    assert list(err.status()["details"]) == ["name", "kind", "causes", "retryAfterSeconds"]
    invalid = errors.invalid("Pod", "", "p", [errors.required("spec.containers")]).status()
    assert list(invalid) == [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "message",
        "reason",
        "details",
        "code",
    ]
    assert list(invalid["details"]) == ["name", "kind", "causes"]
    assert list(invalid["details"]["causes"][0]) == ["reason", "message", "field"]


def test_objects_come_out_in_struct_order() -> None:
    written = {
        "spec": {"containers": []},
        "status": {"phase": "Pending"},
        "metadata": {
            "managedFields": [],
            "labels": {"a": "b"},
            "uid": "u",
            "name": "p",
            "resourceVersion": "7",
            "namespace": "ns",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "x-unknown": 1,
        },
        "apiVersion": "v1",
        "kind": "Pod",
    }
    out = meta.wire_order(written)
    assert list(out) == ["kind", "apiVersion", "metadata", "spec", "status"]
    assert list(out["metadata"]) == [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "labels",
        "managedFields",
        "x-unknown",
    ]
    assert out["spec"] is written["spec"]  # shallow: nested values are shared
    assert list(written) == ["spec", "status", "metadata", "apiVersion", "kind"]  # untouched
    assert meta.wire_order(out) is out  # already in order: no copy


def test_kinds_with_several_top_level_fields() -> None:
    secret = {
        "type": "Opaque",
        "data": {"k": "dg=="},
        "metadata": {"name": "s"},
        "kind": "Secret",
        "apiVersion": "v1",
        "immutable": True,
    }
    assert list(meta.wire_order(secret)) == [
        "kind",
        "apiVersion",
        "metadata",
        "immutable",
        "data",
        "type",
    ]
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "note": "n",
        "reason": "R",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "metadata": {"name": "e"},
    }
    assert list(meta.wire_order(event)) == [
        "kind",
        "apiVersion",
        "metadata",
        "eventTime",
        "reason",
        "note",
    ]
