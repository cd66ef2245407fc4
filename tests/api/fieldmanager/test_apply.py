"""Server-side apply: ownership, conflicts, force, removal, errors."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from pilothouse.api import fieldmanager as fm

Obj = dict[str, Any]
T0 = "2024-05-01T12:00:00Z"
T1 = "2024-05-01T12:00:01Z"
T2 = "2024-05-01T12:00:02Z"


def _apply(
    live: Obj | None, config: Obj, manager: str, *, force: bool = False, now: str = T0, **kw: Any
) -> Obj:
    out = fm.apply(
        live=live,
        config=config,
        manager=manager,
        api_version=config.get("apiVersion", "apps/v1"),
        force=force,
        now=now,
        **kw,
    )
    out = copy.deepcopy(out)
    out["metadata"].setdefault("uid", "uid-1")
    return out


def _entries(obj: Obj) -> dict[str, Obj]:
    return {e["manager"]: e for e in obj["metadata"].get("managedFields", [])}


def _config(replicas: int | None = 3, **spec: Any) -> Obj:
    body: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
            },
            **spec,
        },
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def _patch(name: str = "web", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def test_apply_creates_and_owns_what_it_applied() -> None:
    created = _apply(None, _config(), "team-a")
    assert created["spec"]["replicas"] == 3
    assert created["metadata"]["managedFields"] == [
        {
            "manager": "team-a",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {
                            "f:containers": {
                                'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}}
                            }
                        },
                    },
                },
            },
        }
    ]


def test_applying_the_same_config_twice_is_a_no_op() -> None:
    created = _apply(None, _config(), "team-a")
    again = _apply(created, _config(), "team-a", now=T2)
    assert again == created


def test_same_value_is_shared_without_conflict() -> None:
    created = _apply(None, _config(), "team-a")
    shared = _apply(created, _patch(replicas=3), "team-b", now=T1)
    entries = _entries(shared)
    assert entries["team-b"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert entries["team-a"]["fieldsV1"]["f:spec"]["f:replicas"] == {}
    # Nothing changed in the object, so the new entry has no time (as upstream).
    assert "time" not in entries["team-b"]


def test_different_value_conflicts_unless_forced() -> None:
    created = _apply(None, _config(), "team-a")
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(created, _patch(replicas=5), "team-b", now=T1)
    assert caught.value.conflicts == [("team-a", ".spec.replicas")]
    status = caught.value.status(kind="Deployment", group="apps", name="web").status()
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "team-a": .spec.replicas',
        "reason": "Conflict",
        "code": 409,
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "team-a"',
                    "field": ".spec.replicas",
                }
            ]
        },
    }
    forced = _apply(created, _patch(replicas=5), "team-b", force=True, now=T1)
    assert forced["spec"]["replicas"] == 5
    entries = _entries(forced)
    assert entries["team-b"]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert entries["team-b"]["time"] == T1
    assert "f:replicas" not in entries["team-a"]["fieldsV1"]["f:spec"]
    assert entries["team-a"]["time"] == T0


def test_an_update_makes_a_later_apply_conflict() -> None:
    created = _apply(None, _config(), "apply_test")
    edited = copy.deepcopy(created)
    edited["spec"]["replicas"] = 5
    edited = fm.update_managed_fields(
        live=created, new=edited, manager="kubectl-edit", api_version="apps/v1", now=T1
    )
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(edited, _config(), "apply_test", now=T2)
    assert str(caught.value) == (
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas'
    )


def test_several_conflicts_are_grouped_by_manager() -> None:
    created = _apply(None, _config(), "team-a")
    also = _apply(created, _patch(paused=False), "team-c", now=T1)
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(also, _patch(replicas=9, paused=True, minReadySeconds=3), "team-b", now=T2)
    assert caught.value.message() == (
        "Apply failed with 2 conflicts: "
        'conflicts with "team-a":\n- .spec.replicas\n'
        'conflicts with "team-c":\n- .spec.paused'
    )
    assert [c["field"] for c in caught.value.status().details["causes"]] == [  # type: ignore[index]
        ".spec.replicas",
        ".spec.paused",
    ]


def test_omitted_fields_are_removed_unless_someone_else_owns_them() -> None:
    created = _apply(None, _config(), "solo")
    solo = _apply(created, _config(replicas=None), "solo", now=T1)
    assert "replicas" not in solo["spec"]

    shared = _apply(None, _config(), "shared_owner_1")
    shared = _apply(shared, _config(), "shared_owner_2", now=T1)
    kept = _apply(shared, _config(replicas=None), "shared_owner_1", now=T2)
    assert kept["spec"]["replicas"] == 3
    assert "f:replicas" not in _entries(kept)["shared_owner_1"]["fieldsV1"]["f:spec"]


def test_a_field_taken_by_an_updater_survives_the_appliers_omission() -> None:
    created = _apply(None, _config(), "test_applier")
    taken = copy.deepcopy(created)
    taken["spec"]["replicas"] = 4
    taken = fm.update_managed_fields(
        live=created, new=taken, manager="test_updater", api_version="apps/v1", now=T1
    )
    after = _apply(taken, _config(replicas=None), "test_applier", now=T2)
    assert after["spec"]["replicas"] == 4


def test_removing_an_item_a_controller_added_to_removes_the_item() -> None:
    created = _apply(None, _config(replicas=None), "test_applier")
    touched = copy.deepcopy(created)
    touched["spec"]["template"]["spec"]["containers"][0]["workingDir"] = "/home/replacement"
    touched = fm.update_managed_fields(
        live=created, new=touched, manager="test_updater", api_version="apps/v1", now=T1
    )
    config = _config()
    config["spec"]["template"]["spec"]["containers"] = [{"name": "other", "image": "nginx"}]
    after = _apply(touched, config, "test_applier", now=T2)
    assert [c["name"] for c in after["spec"]["template"]["spec"]["containers"]] == ["other"]


def test_removing_a_container_port() -> None:
    with_port = _config()
    with_port["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": 80, "protocol": "TCP"}
    ]
    created = _apply(None, with_port, "apply_test")
    after = _apply(created, _config(), "apply_test", now=T1)
    assert "ports" not in after["spec"]["template"]["spec"]["containers"][0]


def test_empty_apply_leaves_no_entry() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "test-cm", "namespace": "default"},
    }
    created = _apply(None, cm, "apply_test")
    again = _apply(created, cm, "apply_test", now=T1)
    assert "managedFields" not in created["metadata"]
    assert "managedFields" not in again["metadata"]


def test_apply_then_merge_patch_records_like_upstream() -> None:
    # test/integration/apiserver/apply TestApplyManagedFields.
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "test-cm", "namespace": "default", "labels": {"test-label": "test"}},
        "data": {"key": "value"},
    }
    created = _apply(None, cm, "apply_test")
    patched = copy.deepcopy(created)
    patched["data"]["new-key"] = "value"
    patched = fm.update_managed_fields(
        live=created, new=patched, manager="updater", api_version="v1", now=T1
    )
    patched = copy.deepcopy(patched)
    newer = copy.deepcopy(patched)
    newer["data"]["key"] = "new value"
    newer = fm.update_managed_fields(
        live=patched, new=newer, manager="updater", api_version="v1", now=T2
    )
    assert json.dumps(newer["metadata"]["managedFields"], separators=(",", ":")) == json.dumps(
        [
            {
                "manager": "apply_test",
                "operation": "Apply",
                "apiVersion": "v1",
                "time": T0,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:test-label": {}}}},
            },
            {
                "manager": "updater",
                "operation": "Update",
                "apiVersion": "v1",
                "time": T2,
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:key": {}, "f:new-key": {}}},
            },
        ],
        separators=(",", ":"),
    )


def test_existing_fields_go_to_before_first_apply(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    untracked = stored(deployment("web"))
    applied = _apply(untracked, _patch(replicas=1), "newcomer", now=T1)
    entries = applied["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"]) for e in entries] == [
        ("newcomer", "Apply"),
        ("before-first-apply", "Update"),
    ]
    assert entries[1]["time"] == T1
    with pytest.raises(fm.ApplyConflict) as caught:
        _apply(untracked, _patch(replicas=2), "newcomer", now=T1)
    assert caught.value.conflicts == [("before-first-apply", ".spec.replicas")]


def test_status_and_metadata_are_never_owned_through_the_main_resource() -> None:
    config = _config()
    config["metadata"]["namespace"] = "default"
    config["status"] = {"replicas": 3}
    fields = _entries(_apply(None, config, "a"))["a"]["fieldsV1"]
    assert "f:status" not in fields
    assert "f:apiVersion" not in fields and "f:kind" not in fields
    assert set(fields["f:metadata"]) == {"f:labels"}


def test_apply_through_status_owns_only_status(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_apply(None, _config(), "a"))
    status_config = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"b": "1"}},
        "spec": {"replicas": 7},
        "status": {"replicas": 3},
    }
    after = _apply(live, status_config, "status-writer", subresource="status", now=T1)
    entry = next(e for e in after["metadata"]["managedFields"] if e["manager"] == "status-writer")
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_managed_fields_are_never_reported_as_owned() -> None:
    created = _apply(None, _config(), "a")
    again = _apply(created, _patch(paused=True), "b", now=T1)
    for entry in again["metadata"]["managedFields"]:
        assert "f:managedFields" not in entry["fieldsV1"].get("f:metadata", {})


@pytest.mark.parametrize(
    ("config", "message", "code"),
    [
        (
            {"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "web"}},
            "invalid object type: apps/v1beta1, Kind=Deployment",
            400,
        ),
        (
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"}},
            "invalid object type: apps/v1, Kind=StatefulSet",
            400,
        ),
        ({}, "invalid object type: /, Kind=", 400),
        (
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "managedFields": [{"manager": "test"}]},
            },
            "metadata.managedFields must be nil",
            400,
        ),
        (
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"foo": 1},
            },
            "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
            ".spec.foo: field not declared in schema",
            500,
        ),
        (
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"replicas": "3", "paused": 1},
            },
            "failed to create typed patch object (/web; apps/v1, Kind=Deployment): errors:\n"
            "  .spec.replicas: expected numeric (int or float), got string\n"
            "  .spec.paused: expected boolean, got &{1}",
            500,
        ),
    ],
)
def test_refused_configurations(config: Obj, message: str, code: int) -> None:
    with pytest.raises(fm.ApplyError) as caught:
        fm.apply(
            live=None,
            config=config,
            manager="m",
            api_version="apps/v1",
            force=False,
            now=T0,
            kind="Deployment",
        )
    assert caught.value.message == message
    status = caught.value.status()
    assert status.code == code
    assert status.message == message


def test_inputs_are_not_changed() -> None:
    created = _apply(None, _config(), "a")
    config = _patch(replicas=9)
    before = json.dumps([created, config])
    _apply(created, config, "b", force=True, now=T1)
    _apply(created, _config(replicas=None), "a", now=T1)
    assert json.dumps([created, config]) == before
