"""StatefulSet helpers without I/O: names, ordinals, identity, storage, claim ownership."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.controllers.statefulset import utils

Obj = dict[str, Any]


def sts(when_deleted: str = "Retain", when_scaled: str = "Retain", replicas: int = 2) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "ns", "uid": "set-uid"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "db"}},
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": when_deleted,
                "whenScaled": when_scaled,
            },
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}],
        },
    }


def pod(ordinal: int) -> Obj:
    return {"metadata": {"name": f"db-{ordinal}", "namespace": "ns", "uid": f"pod-{ordinal}"}}


def claim(*refs: Obj) -> Obj:
    return {"metadata": {"name": "data-db-0", "ownerReferences": list(refs)}}


SET_REF = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "name": "db",
    "uid": "set-uid",
    "controller": True,
}


def pod_ref(ordinal: int, uid: str | None = None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": f"db-{ordinal}",
        "uid": uid or f"pod-{ordinal}",
        "controller": True,
    }


def test_names_and_ordinals() -> None:
    assert utils.parent_and_ordinal(pod(12)) == ("db", 12)
    assert utils.parent_and_ordinal({"metadata": {"name": "db-x"}}) == ("", -1)
    assert utils.parent_and_ordinal({"metadata": {"name": "my-db-3"}}) == ("my-db", 3)
    assert utils.parent_and_ordinal({"metadata": {"name": "db-99999999999"}}) == ("db", -1)
    s = sts()
    s["spec"]["ordinals"] = {"start": 3}
    assert (utils.start_ordinal(s), utils.end_ordinal(s)) == (3, 4)
    assert utils.in_ordinal_range(pod(4), s) and not utils.in_ordinal_range(pod(5), s)
    assert utils.claim_name(s, s["spec"]["volumeClaimTemplates"][0], 4) == "data-db-4"
    assert utils.is_member_of(s, pod(9)) and not utils.is_member_of(
        s, {"metadata": {"name": "dbx-1"}}
    )


def test_new_pod_identity_and_storage() -> None:
    s = sts()
    s["spec"]["serviceName"] = "db-headless"
    s["spec"]["template"]["spec"]["volumes"] = [
        {"name": "data", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "c"}},
    ]
    p = utils.new_pod(s, 1)
    assert p["metadata"]["name"] == "db-1"
    assert p["spec"]["hostname"] == "db-1" and p["spec"]["subdomain"] == "db-headless"
    # The claim replaces a same-named volume; other volumes stay.
    assert p["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}},
        {"name": "cfg", "configMap": {"name": "c"}},
    ]
    assert utils.identity_matches(s, p) and utils.storage_matches(s, p)
    p["metadata"]["labels"].pop(utils.POD_NAME_LABEL)
    assert not utils.identity_matches(s, p)
    p["spec"]["volumes"] = []
    assert not utils.storage_matches(s, p)


@pytest.mark.parametrize(
    ("policy", "ordinal", "refs", "up_to_date"),
    [
        (("Retain", "Retain"), 0, [], True),
        (("Retain", "Retain"), 0, [SET_REF], False),
        (("Delete", "Retain"), 0, [SET_REF], True),
        (("Delete", "Retain"), 0, [], False),
        (("Delete", "Retain"), 5, [SET_REF], True),  # scaled down: still the set's
        (("Retain", "Delete"), 0, [], True),
        (("Retain", "Delete"), 5, [], False),
        (("Retain", "Delete"), 5, [pod_ref(5)], True),
        (("Delete", "Delete"), 0, [SET_REF], True),
        (("Delete", "Delete"), 5, [SET_REF], False),
        (("Delete", "Delete"), 5, [pod_ref(5)], True),
        # A reference to an earlier pod of that name: not ours to touch.
        (("Delete", "Delete"), 5, [pod_ref(5, "old")], True),
        # Another controller: leave it, unless we also hold a reference to clean up.
        (("Delete", "Delete"), 0, [{"kind": "Other", "uid": "x", "controller": True}], True),
        # An owner reference without controller: true is rewritten.
        (("Delete", "Retain"), 0, [{**SET_REF, "controller": False}], False),
    ],
)
def test_claim_ownership_follows_the_retention_policy(
    policy: tuple[str, str], ordinal: int, refs: list[Obj], up_to_date: bool
) -> None:
    s = sts(*policy)
    c = claim(*refs)
    assert utils.is_claim_owner_up_to_date(c, s, pod(ordinal)) is up_to_date
    if not up_to_date:
        utils.update_claim_owner_refs(c, s, pod(ordinal))
        assert utils.is_claim_owner_up_to_date(c, s, pod(ordinal))


def test_versioned_pods_respect_the_partition() -> None:
    current, update = sts(replicas=4), sts(replicas=4)
    current["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    current["spec"]["template"]["spec"]["containers"] = [{"name": "c", "image": "old"}]
    update["spec"]["template"]["spec"]["containers"] = [{"name": "c", "image": "new"}]
    made = [utils.new_versioned_pod(current, update, "cur", "upd", i) for i in range(4)]
    assert [utils.pod_revision(p) for p in made] == ["cur", "cur", "upd", "upd"]
    assert [p["spec"]["containers"][0]["image"] for p in made] == ["old", "old", "new", "new"]
    current["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert utils.pod_revision(utils.new_versioned_pod(current, update, "cur", "upd", 0)) == "upd"


def test_max_unavailable_is_at_least_one() -> None:
    s = sts(replicas=10)
    assert utils.max_unavailable(s) == 1
    s["spec"]["updateStrategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%"},
    }
    assert utils.max_unavailable(s) == 2
    s["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "5%"
    assert utils.max_unavailable(s) == 1
    s["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = 3
    assert utils.max_unavailable(s) == 3


def test_status_as_served_and_rolling_update_completion() -> None:
    s = sts(replicas=2)
    new = {
        "observedGeneration": 2,
        "replicas": 2,
        "readyReplicas": 2,
        "currentReplicas": 0,
        "updatedReplicas": 2,
        "currentRevision": "a",
        "updateRevision": "b",
        "collisionCount": 0,
        "availableReplicas": 2,
    }
    utils.complete_rolling_update(s, new)
    assert new["currentRevision"] == "b" and new["currentReplicas"] == 2
    assert utils.inconsistent_status(s, new)
    served = utils.status_for_api({"replicas": 0, "collisionCount": 0}, {})
    assert served == {"replicas": 0, "collisionCount": 0, "availableReplicas": 0}
