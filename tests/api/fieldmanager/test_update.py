"""managedFields on create, update and non-apply patches (operation Update)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from pilothouse.api import fieldmanager as fm

Obj = dict[str, Any]
T0 = "2024-05-01T12:00:00Z"
T1 = "2024-05-01T12:00:01Z"
T2 = "2024-05-01T12:00:02Z"


def _entries(obj: Obj) -> list[Obj]:
    return obj["metadata"].get("managedFields", [])


def _by_manager(obj: Obj) -> dict[str, Obj]:
    return {(e["manager"], e.get("subresource", "")): e for e in _entries(obj)}  # type: ignore[misc]


def _update(live: Obj | None, new: Obj, manager: str, **kw: Any) -> Obj:
    return fm.update_managed_fields(
        live=live,
        new=new,
        manager=manager,
        api_version=new["apiVersion"],
        now=kw.pop("now", T0),
        **kw,
    )


CREATED_BY_CLIENT_SIDE_APPLY = {
    "f:metadata": {
        "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
        "f:labels": {".": {}, "f:app": {}},
    },
    "f:spec": {
        "f:progressDeadlineSeconds": {},
        "f:replicas": {},
        "f:revisionHistoryLimit": {},
        "f:selector": {},
        "f:strategy": {
            "f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
            "f:type": {},
        },
        "f:template": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:containers": {
                    'k:{"name":"nginx"}': {
                        ".": {},
                        "f:image": {},
                        "f:imagePullPolicy": {},
                        "f:name": {},
                        "f:resources": {},
                        "f:terminationMessagePath": {},
                        "f:terminationMessagePolicy": {},
                    }
                },
                "f:dnsPolicy": {},
                "f:restartPolicy": {},
                "f:schedulerName": {},
                "f:securityContext": {},
                "f:terminationGracePeriodSeconds": {},
            },
        },
    },
}


def test_create_owns_every_field_as_upstream_records_it(deployment: Callable[..., Obj]) -> None:
    new = deployment()
    new["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
    created = _update(None, new, "kubectl-client-side-apply")
    assert created["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": CREATED_BY_CLIENT_SIDE_APPLY,
        }
    ]
    # The byte form matches upstream's serialisation (key order included).
    assert json.dumps(
        created["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:strategy"],
        separators=(",", ":"),
    ) == ('{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}}')
    # Nothing else changed, and the input was left alone.
    assert {k: v for k, v in created["metadata"].items() if k != "managedFields"} == new["metadata"]
    assert "managedFields" not in new["metadata"]


def test_create_of_a_pod_and_a_configmap(deployment: Callable[..., Obj]) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"run": "p"}},
        "spec": {
            "containers": [{"name": "p", "image": "busybox", "resources": {}}],
            "restartPolicy": "Always",
            "enableServiceLinks": True,
        },
        "status": {"phase": "Pending"},
    }
    created = _update(None, pod, "kubectl-run")
    assert created["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:run": {}}},
        "f:spec": {
            "f:containers": {
                'k:{"name":"p"}': {".": {}, "f:image": {}, "f:name": {}, "f:resources": {}}
            },
            "f:enableServiceLinks": {},
            "f:restartPolicy": {},
        },
    }
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    assert _update(None, cm, "kubectl-create")["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:data": {".": {}, "f:k": {}}
    }


def test_update_moves_changed_fields_to_the_writer(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "kubectl-create"))
    new = copy.deepcopy(live)
    new["spec"]["replicas"] = 3
    new["metadata"]["labels"]["tier"] = "web"
    updated = _update(live, new, "kubectl-edit", now=T1)
    entries = _by_manager(updated)
    edit = entries[("kubectl-edit", "")]
    assert edit["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:tier": {}}},
        "f:spec": {"f:replicas": {}},
    }
    assert edit["time"] == T1
    creator = entries[("kubectl-create", "")]
    assert "f:replicas" not in creator["fieldsV1"]["f:spec"]
    assert creator["time"] == T0  # taking fields away does not touch the loser's time


def test_no_op_update_changes_nothing(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "kubectl-create"))
    again = _update(live, copy.deepcopy(live), "kubectl-create", now=T2)
    assert again["metadata"]["managedFields"] == live["metadata"]["managedFields"]
    other = _update(live, copy.deepcopy(live), "someone-else", now=T2)
    assert other["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_removed_fields_leave_every_manager(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "kubectl-create"))
    new = copy.deepcopy(live)
    del new["metadata"]["labels"]
    updated = _update(live, new, "kubectl-edit", now=T1)
    assert "f:labels" not in updated["metadata"]["managedFields"][0]["fieldsV1"].get(
        "f:metadata", {}
    )
    # The remover took nothing, so it gets no entry.
    assert [e["manager"] for e in _entries(updated)] == ["kubectl-create"]


def test_same_manager_unions_its_fields_and_moves_its_time(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "kubectl-create"))
    new = copy.deepcopy(live)
    new["metadata"]["labels"]["x"] = "1"
    once = stored(_update(live, new, "editor", now=T1))
    newer = copy.deepcopy(once)
    newer["metadata"]["labels"]["y"] = "2"
    twice = _update(once, newer, "editor", now=T2)
    editor = _by_manager(twice)[("editor", "")]
    assert editor["fieldsV1"] == {"f:metadata": {"f:labels": {"f:x": {}, "f:y": {}}}}
    assert editor["time"] == T2


def test_a_writer_changing_only_its_own_fields_keeps_its_set_and_moves_its_time(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    # A Lease renewal, a node's status report: the set is the one the writer had
    # (the very fieldsV1 object it sent, not a re-encoded copy), only the time moves.
    live = stored(_update(None, deployment(), "kubectl-create"))
    new = copy.deepcopy(live)
    new["metadata"]["labels"]["x"] = "1"
    once = stored(_update(live, new, "editor", now=T1))
    newer = copy.deepcopy(once)
    newer["metadata"]["labels"]["x"] = "2"
    twice = _update(once, newer, "editor", now=T2)
    before, after = _by_manager(newer)[("editor", "")], _by_manager(twice)[("editor", "")]
    assert after["fieldsV1"] == {"f:metadata": {"f:labels": {"f:x": {}}}}
    assert after["fieldsV1"] is before["fieldsV1"]
    assert after["time"] == T2
    assert _by_manager(twice)[("kubectl-create", "")] == _by_manager(once)[("kubectl-create", "")]


def test_status_is_not_owned_through_the_main_resource(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    new = deployment()
    new["status"] = {"replicas": 5}
    created = _update(None, new, "creator")
    assert "f:status" not in created["metadata"]["managedFields"][0]["fieldsV1"]
    live = stored(created)
    status_update = copy.deepcopy(live)
    status_update["status"] = {
        "replicas": 1,
        "conditions": [{"type": "Available", "status": "True"}],
    }
    after = _update(live, status_update, "kube-controller-manager", subresource="status", now=T1)
    kcm = _by_manager(after)[("kube-controller-manager", "status")]
    assert kcm["subresource"] == "status"
    assert kcm["fieldsV1"] == {
        "f:status": {
            "f:conditions": {
                ".": {},
                'k:{"type":"Available"}': {".": {}, "f:status": {}, "f:type": {}},
            },
            "f:replicas": {},
        }
    }


def test_custom_kinds_own_status_unless_they_say_they_have_the_subresource() -> None:
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1, "tags": ["a"]},
        "status": {"ready": True},
    }
    plain = _update(None, widget, "creator")
    # Deduced: every map granular (each key its own "."), lists atomic.
    assert plain["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:spec": {".": {}, "f:size": {}, "f:tags": {}},
        "f:status": {".": {}, "f:ready": {}},
    }
    with_status = _update(None, widget, "creator", status_subresource=True)
    assert "f:status" not in with_status["metadata"]["managedFields"][0]["fieldsV1"]


def test_client_managed_fields_are_kept_on_create(deployment: Callable[..., Obj]) -> None:
    new = deployment()
    new["metadata"]["managedFields"] = [
        {
            "manager": "sidecar",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:sidecar": {}}}},
        }
    ]
    created = _update(None, new, "creator")
    assert [e["manager"] for e in _entries(created)] == ["sidecar", "creator"]


def test_empty_list_stops_tracking_until_the_next_apply(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "creator"))
    for reset in ([], [{}]):
        new = copy.deepcopy(live)
        new["metadata"]["managedFields"] = reset
        new["spec"]["replicas"] = 9
        cleared = _update(live, new, "replacer", now=T1)
        assert "managedFields" not in cleared["metadata"]
        untracked = stored(cleared)
        newer = copy.deepcopy(untracked)
        newer["spec"]["replicas"] = 10
        assert "managedFields" not in _update(untracked, newer, "other", now=T2)["metadata"]


def test_client_may_rewrite_managed_fields(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "creator"))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"][0]["manager"] = "renamed"
    renamed = _update(live, new, "replacer", now=T1)
    assert [e["manager"] for e in _entries(renamed)] == ["renamed"]


def test_subresources_ignore_managed_fields_in_the_request(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "creator"))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = []
    new["status"] = {"replicas": 1}
    after = _update(live, new, "kubelet", subresource="status", now=T1)
    assert [e["manager"] for e in _entries(after)] == ["creator", "kubelet"]


def test_undecodable_managed_fields_fall_back_to_the_live_ones(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "creator"))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = [{"manager": "x", "operation": "Apply", "fieldsType": ""}]
    after = _update(live, new, "replacer", now=T1)
    assert after["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_scale_entries_carry_no_time_of_their_own(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "creator"))
    new = copy.deepcopy(live)
    new["spec"]["replicas"] = 4
    scaled = _update(live, new, "kubectl-scale", subresource="scale", now=T1)
    entry = _by_manager(scaled)[("kubectl-scale", "scale")]
    assert entry == {
        "manager": "kubectl-scale",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
        "subresource": "scale",
    }


def test_update_managers_are_capped_at_ten(stored: Callable[[Obj], Obj]) -> None:
    cm: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {}}}
    live = stored(
        fm.apply(live=None, config=cm, manager="apply_test", api_version="v1", force=False, now=T0)
    )
    for i in range(20):
        new = copy.deepcopy(live)
        new["metadata"].setdefault("labels", {})[f"updater{i}"] = "new"
        live = stored(_update(live, new, f"updater{i}", now=f"2024-05-01T12:01:{i:02d}Z"))
    entries = _entries(live)
    assert len(entries) == 11
    assert entries[0]["manager"] == "apply_test"
    assert entries[1]["manager"] == "ancient-changes"
    assert len(entries[1]["fieldsV1"]["f:metadata"]["f:labels"]) == 11


def test_empty_manager_is_unknown(deployment: Callable[..., Obj]) -> None:
    assert _entries(_update(None, deployment(), ""))[0]["manager"] == "unknown"


def test_default_manager() -> None:
    assert fm.default_manager("kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9") == "kubectl"
    assert fm.default_manager("kube-controller-manager/v1.32.0 (linux/amd64)") == (
        "kube-controller-manager"
    )
    assert fm.default_manager("Python\x07-client") == "Python-client"
    assert fm.default_manager("") == ""
    assert fm.default_manager("x" * 200) == "x" * 128


def test_no_op_sequence_like_upstream(stored: Callable[[Obj], Obj]) -> None:
    # k8s.io/apimachinery managedfields TestNoOpChanges.
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}, "creationTimestamp": None},
    }
    live = stored(
        fm.apply(live=None, config=pod, manager="apply", api_version="v1", force=False, now=T0)
    )
    other = stored(
        fm.apply(
            live=live, config=pod, manager="apply-other", api_version="v1", force=False, now=T1
        )
    )
    assert other != live  # a new entry, without a time
    updated = stored(_update(other, copy.deepcopy(other), "update", now=T2))
    assert updated == other
    again = stored(
        fm.apply(live=updated, config=pod, manager="apply", api_version="v1", force=True, now=T2)
    )
    assert again == updated


def test_an_update_of_an_object_without_uid_still_compares_with_it(
    deployment: Callable[..., Obj],
) -> None:
    live = _update(None, deployment(), "creator")
    new = copy.deepcopy(live)
    new["spec"]["paused"] = True
    after = _update(live, new, "pauser", now=T1)
    assert _by_manager(after)[("pauser", "")]["fieldsV1"] == {"f:spec": {"f:paused": {}}}


def test_objects_without_metadata_get_none() -> None:
    obj: Obj = {"apiVersion": "v1", "kind": "ConfigMap"}
    out = fm.update_managed_fields(
        live={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"uid": "u"}},
        new=obj,
        manager="m",
        api_version="v1",
        now=T0,
    )
    assert out == obj and out is not obj


def test_server_set_metadata_is_never_owned(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "creator"))
    new = copy.deepcopy(live)
    new["metadata"].update(
        resourceVersion="99",
        generation=7,
        creationTimestamp="2024-05-01T00:00:00Z",
        uid="other",
        name="renamed",
        namespace="elsewhere",
        selfLink="/x",
    )
    new["apiVersion"] = "apps/v1"
    after = _update(live, new, "meddler", now=T1)
    assert after["metadata"]["managedFields"] == live["metadata"]["managedFields"]


def test_managers_owning_nothing_are_dropped(
    deployment: Callable[..., Obj], stored: Callable[[Obj], Obj]
) -> None:
    live = stored(_update(None, deployment(), "creator"))
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"].append(
        {
            "manager": "idle",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        }
    )
    after = _update(live, new, "someone", now=T1)
    assert [e["manager"] for e in _entries(after)] == ["creator"]
