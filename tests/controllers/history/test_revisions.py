"""ControllerRevision helpers: upstream's names and bytes, equality, order, limits."""

from __future__ import annotations

from typing import Any

from pilothouse.controllers.history import gojson, revisions

Obj = dict[str, Any]

# Upstream's own compatibility fixture (pkg/controller/statefulset/testdata, 1.33): this
# StatefulSet's first revision is named test-c77f6d978 and holds exactly these bytes.
UPSTREAM_DATA = (
    b'{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"test":"value"},'
    b'"creationTimestamp":null,"labels":{"app":"foo"}},"spec":{"containers":[{"image":"test",'
    b'"imagePullPolicy":"Always","name":"test","resources":{},"terminationMessagePath":'
    b'"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst",'
    b'"restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},'
    b'"terminationGracePeriodSeconds":30}}}}'
)


def upstream_set() -> Obj:
    """The fixture's set as the API serves it (no ``resources: {}``, no ``creationTimestamp``)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": "test",
            "namespace": "test",
            "uid": "ssuid",
            "annotations": {"team": "a"},
        },
        "spec": {
            "template": {
                "metadata": {"annotations": {"test": "value"}, "labels": {"app": "foo"}},
                "spec": {
                    "containers": [
                        {
                            "name": "test",
                            "image": "test",
                            "imagePullPolicy": "Always",
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }
                    ],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "securityContext": {},
                    "schedulerName": "default-scheduler",
                },
            }
        },
    }


def test_hash_of_upstream_bytes_is_upstreams_name() -> None:
    assert revisions.hash_revision(UPSTREAM_DATA, 0) == "c77f6d978"
    assert revisions.hash_revision(UPSTREAM_DATA, 1) != "c77f6d978"


def test_patch_from_served_template_is_byte_for_byte_upstreams() -> None:
    data = revisions.template_patch(upstream_set())
    assert gojson.marshal(data) == UPSTREAM_DATA
    # Keys are stored in encoding/json's order, so a server that keeps order serves the same.
    assert list(data["spec"]["template"]) == ["$patch", "metadata", "spec"]


def test_new_hashed_revision_is_named_labelled_owned_and_annotated() -> None:
    sts = upstream_set()
    rev = revisions.new_hashed_revision(
        sts, revision=1, collision_count=0, template_labels={"app": "foo"}
    )
    md = rev["metadata"]
    assert md["name"] == "test-c77f6d978"
    assert md["labels"] == {"app": "foo", "controller.kubernetes.io/hash": "c77f6d978"}
    assert md["annotations"] == {"team": "a"}
    assert md["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "name": "test",
            "uid": "ssuid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rev["revision"] == 1
    renamed = revisions.rename_for_collisions(rev, "test", 1)
    assert renamed["metadata"]["name"] == "test-" + revisions.hash_revision(UPSTREAM_DATA, 1)
    assert renamed["metadata"]["labels"]["controller.kubernetes.io/hash"] != "c77f6d978"
    assert renamed["data"] == rev["data"]


def test_go_encoding_escapes_and_numbers_as_encoding_json() -> None:
    value = {"b": 'a && b <c> \u2028\x01\n"\\', "a": [1, 2.5, 1e21, 1e-7, 30.0, True, None]}
    assert gojson.marshal(value) == (
        b'{"a":[1,2.5,1e+21,1e-7,30,true,null],'
        b'"b":"a \\u0026\\u0026 b \\u003cc\\u003e \\u2028\\u0001\\n\\"\\\\"}'
    )
    assert gojson.marshal({"ü": "ü"}) == '{"ü":"ü"}'.encode()


def test_struct_fields_are_filled_where_encoding_json_never_omits_them() -> None:
    template = {
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "env": [
                        {
                            "name": "X",
                            "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}},
                        }
                    ],
                }
            ],
            "affinity": {
                "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1}]}
            },
        }
    }
    filled = gojson.with_struct_fields(gojson.POD_TEMPLATE_SPEC, template)
    container = filled["spec"]["containers"][0]
    assert filled["metadata"] == {"creationTimestamp": None}
    assert container["resources"] == {}
    assert container["env"][0]["valueFrom"]["resourceFieldRef"]["divisor"] == "0"
    preferred = filled["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ][0]
    assert preferred["preference"] == {}
    assert "resources" not in template["spec"]["containers"][0]  # the input is not changed


def rev(name: str, number: int, image: str, created: str = "2026-01-01T00:00:00Z") -> Obj:
    owner = {
        "kind": "StatefulSet",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "uid": "u"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    }
    out = revisions.new_hashed_revision(
        owner, revision=number, collision_count=0, template_labels={}
    )
    out["metadata"]["name"] = name
    out["metadata"]["creationTimestamp"] = created
    return out


def test_equality_ordering_and_next_revision() -> None:
    a1, b2, a3 = rev("a1", 1, "a"), rev("b2", 2, "b"), rev("a3", 3, "a")
    assert revisions.equal_revision(a1, a3) and not revisions.equal_revision(a1, b2)
    assert revisions.equal_revision(None, None) and not revisions.equal_revision(a1, None)
    assert revisions.find_equal_revisions([a1, b2, a3], rev("x", 9, "a")) == [a1, a3]
    tie_early = rev("z", 2, "c", "2025-01-01T00:00:00Z")
    ordered = revisions.sort_revisions([a3, b2, a1, tie_early])
    assert [r["metadata"]["name"] for r in ordered] == ["a1", "z", "b2", "a3"]
    assert revisions.next_revision(ordered) == 4 and revisions.next_revision([]) == 1
    assert revisions.max_revision(ordered) == 3 and revisions.max_revision([]) == 0


def test_history_limits_statefulset_and_daemonset_ways() -> None:
    history = [rev(f"r{i}", i, f"i{i}") for i in range(1, 6)]
    # StatefulSet: keep `limit` revisions besides the live ones.
    gone = revisions.history_to_delete(history, live={"r1", "r5"}, limit=2)
    assert [r["metadata"]["name"] for r in gone] == ["r2"]
    assert revisions.history_to_delete(history, live=set(), limit=5) == []
    assert revisions.history_to_delete(history, live=set(), limit=None) == []
    # DaemonSet: live old revisions count against the limit but are never deleted.
    gone = revisions.history_to_delete(history, live={"r1"}, limit=2, live_counts=True)
    assert [r["metadata"]["name"] for r in gone] == ["r2", "r3", "r4"]


def test_apply_revision_puts_the_recorded_template_back() -> None:
    old = rev("old", 1, "v1")
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web", "uid": "u"},
        "spec": {
            "replicas": 3,
            "template": {
                "metadata": {"labels": {"extra": "x"}},
                "spec": {"containers": [{"name": "c", "image": "v2"}, {"name": "d"}]},
            },
        },
    }
    restored = revisions.apply_revision(sts, old)
    template = restored["spec"]["template"]
    assert [c["image"] for c in template["spec"]["containers"]] == ["v1"]
    assert "extra" not in (template.get("metadata") or {}).get("labels", {})
    assert restored["spec"]["replicas"] == 3
    assert revisions.template_of(old)["spec"]["containers"][0]["image"] == "v1"
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "v2"
