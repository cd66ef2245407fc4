"""The StatefulSet controller's sync, step by step, against an in-memory API and a fake
clock: what each sync creates, deletes and records, and when it waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pilothouse.api import errors, meta
from pilothouse.controllers.history import revisions
from pilothouse.controllers.statefulset import podcontrol

from .conftest import CLAIMS, PODS, REVISIONS, SETS, Harness


async def test_ordered_ready_creates_claims_then_pods_one_at_a_time(
    h: Harness, sts_obj: Any
) -> None:
    await h.create(sts_obj())
    await h.step()
    assert h.pods() == ["web-0"] and h.claims() == ["data-web-0"]
    # The claim is created before the pod.
    assert [v for v, p, _ in h.client.writes if v == "create"] == ["create", "create", "create"]
    assert [p for v, p, _ in h.client.writes if v == "create"] == [
        "controllerrevisions",
        "persistentvolumeclaims",
        "pods",
    ]
    pod = h.get(PODS, "web-0")
    md, spec = pod["metadata"], pod["spec"]
    rev_name = h.status()["updateRevision"]
    assert md["labels"] == {
        "app": "web",
        "statefulset.kubernetes.io/pod-name": "web-0",
        "apps.kubernetes.io/pod-index": "0",
        "controller-revision-hash": rev_name,
    }
    assert md["generateName"] == "web-"
    assert md["ownerReferences"][0]["kind"] == "StatefulSet"
    assert spec["hostname"] == "web-0" and spec["subdomain"] == "web"
    assert spec["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}
    ]
    claim = h.get(CLAIMS, "data-web-0")
    assert claim["metadata"]["labels"] == {"tier": "db", "app": "web"}
    assert "ownerReferences" not in claim["metadata"]  # Retain/Retain: nobody owns it
    assert (
        "Normal",
        "SuccessfulCreate",
        "create Claim data-web-0 Pod web-0 in StatefulSet web success",
    ) in h.events
    assert (
        "Normal",
        "SuccessfulCreate",
        "create Pod web-0 in StatefulSet web successful",
    ) in h.events

    # web-0 is Pending: nothing more.
    await h.step()
    assert h.pods() == ["web-0"]
    # Running but not ready: still waiting.
    h.run("web-0", ready=False)
    await h.step()
    assert h.pods() == ["web-0"]
    h.run("web-0")
    await h.step()
    assert h.pods() == ["web-0", "web-1"]
    h.run("web-1")
    await h.step()
    h.run("web-2")
    await h.step()
    assert h.pods() == ["web-0", "web-1", "web-2"]
    st = h.status()
    assert st == {
        "observedGeneration": 1,
        "replicas": 3,
        "readyReplicas": 3,
        "currentReplicas": 3,
        "updatedReplicas": 3,
        "currentRevision": rev_name,
        "updateRevision": rev_name,
        "collisionCount": 0,
        "availableReplicas": 3,
    }
    # Nothing to do: no writes at all.
    await h.step()
    assert h.client.writes == []


async def test_parallel_creates_everything_at_once(h: Harness, sts_obj: Any) -> None:
    await h.create(sts_obj(replicas=5, policy="Parallel"))
    await h.step()
    assert h.pods() == [f"web-{i}" for i in range(5)]
    assert h.claims() == [f"data-web-{i}" for i in range(5)]
    assert h.status()["replicas"] == 0  # counted from the pods the sync saw
    await h.step()
    assert h.status()["replicas"] == 5 and "readyReplicas" not in h.status()


async def test_ordinals_start_and_no_service_name(h: Harness, sts_obj: Any) -> None:
    sts = sts_obj(replicas=2, policy="Parallel", claims=False, ordinals={"start": 5})
    del sts["spec"]["serviceName"]
    await h.create(sts)
    await h.step()
    assert h.pods() == ["web-5", "web-6"]
    pod = h.get(PODS, "web-6")
    assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "6"
    assert "subdomain" not in pod["spec"] and pod["spec"]["hostname"] == "web-6"
    await h.edit(ordinals={"start": 0})
    await h.step()
    # Out of range now: 5 and 6 go, 0 and 1 come (Parallel: in the same pass).
    assert h.pods() == ["web-0", "web-1"]


async def _ready_set(h: Harness, sts: dict[str, Any]) -> None:
    await h.create(sts)
    for _ in range(sts["spec"]["replicas"] + 1):
        await h.step()
        h.run(*h.pods())


async def test_ordered_scale_down_highest_first_waiting_for_each(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj(replicas=4))
    await h.edit(replicas=1)
    await h.step()
    assert h.writes("delete", "pods") == ["web-3"]
    assert h.pods() == ["web-0", "web-1", "web-2"]
    # A terminating pod holds ordered scale-down back.
    h.terminate("web-2")
    await h.step()
    assert h.writes("delete", "pods") == []
    await h.client.delete(PODS, "web-2", "default")
    await h.step()
    assert h.writes("delete", "pods") == ["web-1"]
    assert h.pods() == ["web-0"]
    # Claims outlive the pods (Retain).
    assert h.claims() == [f"data-web-{i}" for i in range(4)]
    # Scaling back up reuses them.
    await h.edit(replicas=3)
    await h.step()
    h.run("web-1")
    await h.step()
    assert h.pods() == ["web-0", "web-1", "web-2"]
    assert h.writes("create", "persistentvolumeclaims") == []


async def test_parallel_scale_down_removes_all_condemned(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj(replicas=4, policy="Parallel"))
    await h.edit(replicas=1)
    await h.step()
    assert sorted(h.writes("delete", "pods")) == ["web-1", "web-2", "web-3"]


async def test_rolling_update_goes_from_the_highest_ordinal(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj())
    first = h.status()["currentRevision"]
    await h.set_image("v2")
    order = []
    for _ in range(12):
        await h.step()
        order += h.writes("delete", "pods")
        for name in h.pods():
            if h.get(PODS, name)["status"].get("phase") == "Pending":
                h.run(name)
    assert order == ["web-2", "web-1", "web-0"]
    st = h.status()
    assert st["currentRevision"] == st["updateRevision"] != first
    assert st["updatedReplicas"] == 3 and st["currentReplicas"] == 3
    assert {h.get(PODS, p)["spec"]["containers"][0]["image"] for p in h.pods()} == {"v2"}
    assert [r["revision"] for r in revisions.sort_revisions(h.client.objects_of(REVISIONS))] == [
        1,
        2,
    ]


async def test_partition_stops_below_it(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj())
    await h.edit(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    await h.set_image("v2")
    deleted = []
    for _ in range(8):
        await h.step()
        deleted += h.writes("delete", "pods")
        h.run(*h.pods())
    assert deleted == ["web-2"]
    st = h.status()
    assert st["updatedReplicas"] == 1 and st["currentReplicas"] == 2
    assert st["currentRevision"] != st["updateRevision"]
    # A pod below the partition that is deleted comes back at the current revision.
    await h.client.delete(PODS, "web-0", "default")
    await h.step()
    pod = h.get(PODS, "web-0")
    assert pod["metadata"]["labels"]["controller-revision-hash"] == st["currentRevision"]
    assert pod["spec"]["containers"][0]["image"] == "v1"


async def test_max_unavailable_replaces_several_at_once(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj(replicas=5))
    await h.edit(
        updateStrategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"partition": 0, "maxUnavailable": 2},
        }
    )
    await h.set_image("v2")
    await h.step()
    assert h.writes("delete", "pods") == ["web-4", "web-3"]
    assert h.status()["currentReplicas"] == 3
    # While both are away, nothing else goes.
    await h.step()
    assert h.writes("delete", "pods") == []


async def test_on_delete_waits_for_users(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj(updateStrategy={"type": "OnDelete"}))
    await h.set_image("v2")
    for _ in range(3):
        await h.step()
        assert h.writes("delete", "pods") == []
    await h.client.delete(PODS, "web-1", "default")
    await h.step()
    assert h.get(PODS, "web-1")["spec"]["containers"][0]["image"] == "v2"
    await h.step()
    assert h.status()["updatedReplicas"] == 1 and h.status()["currentReplicas"] == 2


async def test_min_ready_seconds_holds_the_next_pod_with_a_fake_clock(
    h: Harness, sts_obj: Any
) -> None:
    await h.create(sts_obj(minReadySeconds=10))
    await h.step()
    h.run("web-0", ready_for=0)
    await h.step()
    assert h.pods() == ["web-0"]
    assert h.status()["readyReplicas"] == 1 and h.status()["availableReplicas"] == 0
    # The controller looks again after minReadySeconds.
    h.ctrl.queue.forget("default/web")
    h.clock.advance(10.5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(h.ctrl.queue) == 1
    await h.step()
    assert h.pods() == ["web-0", "web-1"]
    assert h.status()["availableReplicas"] == 1


async def test_failed_pod_is_replaced(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj())
    h.set_phase("web-1", "Failed")
    await h.step()
    assert h.writes("delete", "pods") == ["web-1"]
    await h.step()
    assert h.get(PODS, "web-1")["status"]["phase"] == "Pending"


async def test_retention_delete_on_scale_down_and_deletion(h: Harness, sts_obj: Any) -> None:
    sts = sts_obj(
        replicas=2,
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Delete"},
    )
    await _ready_set(h, sts)
    set_uid = h.get(SETS, "web")["metadata"]["uid"]
    for i in range(2):
        refs = h.get(CLAIMS, f"data-web-{i}")["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r["controller"]) for r in refs] == [
            ("StatefulSet", set_uid, True)
        ]
    pod_uid = h.get(PODS, "web-1")["metadata"]["uid"]
    await h.edit(replicas=1)
    await h.step()
    # The condemned pod's claim now belongs to the pod (the GC removes it after the pod),
    # and the pod goes; the claim of the pod that stays still belongs to the set.
    refs = h.get(CLAIMS, "data-web-1")["metadata"]["ownerReferences"]
    assert [(r["kind"], r["name"], r["uid"]) for r in refs] == [("Pod", "web-1", pod_uid)]
    assert h.writes("delete", "pods") == ["web-1"]
    refs = h.get(CLAIMS, "data-web-0")["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == [set_uid]


async def test_retention_retain_on_scale_down_delete_on_deletion(h: Harness, sts_obj: Any) -> None:
    sts = sts_obj(
        replicas=2,
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Retain"},
    )
    await _ready_set(h, sts)
    await h.edit(replicas=1)
    await h.step()
    refs = h.get(CLAIMS, "data-web-1")["metadata"]["ownerReferences"]
    assert [r["kind"] for r in refs] == ["StatefulSet"]  # kept until the set goes


async def test_stale_claim_blocks_the_new_pod(h: Harness, sts_obj: Any) -> None:
    sts = sts_obj(
        replicas=1,
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Delete"},
    )
    await h.create(sts)
    claim = {
        "metadata": {
            "name": "data-web-0",
            "namespace": "default",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": "web-0",
                    "uid": "old-pod",
                    "controller": True,
                }
            ],
        },
        "spec": {},
    }
    h.client.put(CLAIMS, claim)
    await h.step()
    assert h.pods() == []  # the garbage collector must remove the old pod's claim first


async def test_claim_being_deleted_blocks_the_pod(h: Harness, sts_obj: Any) -> None:
    await h.create(sts_obj(replicas=1))
    h.client.put(
        CLAIMS,
        {
            "metadata": {
                "name": "data-web-0",
                "namespace": "default",
                "deletionTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {},
        },
    )
    with pytest.raises(podcontrol.VolumeClaimError, match="pvc data-web-0 is being deleted"):
        await h.step()
    assert h.pods() == []
    assert (
        "Warning",
        "FailedCreate",
        "create Pod web-0 in StatefulSet web failed error: pvc data-web-0 is being deleted",
    ) in h.events


async def test_rollback_reuses_the_old_revision(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj())
    first = h.status()["currentRevision"]
    await h.set_image("v2")
    await h.step()
    await h.set_image("v1")  # what `kubectl rollout undo` does: the old template again
    await h.step()
    revs = {r["metadata"]["name"]: r["revision"] for r in h.client.objects_of(REVISIONS)}
    assert len(revs) == 2 and revs[first] == 3
    assert h.status()["updateRevision"] == first


async def test_history_is_trimmed_to_the_limit(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj(replicas=1, revisionHistoryLimit=1))
    for image in ("v2", "v3", "v4"):
        await h.set_image(image)
        for _ in range(4):
            await h.step()
            h.run(*h.pods())
    live = {h.status()["currentRevision"], h.status()["updateRevision"]}
    names = {r["metadata"]["name"] for r in h.client.objects_of(REVISIONS)}
    assert live <= names and len(names) == 2  # the live one and one more


async def test_name_collision_is_counted_and_renamed(h: Harness, sts_obj: Any) -> None:
    sts = await h.create(sts_obj(replicas=1))
    expected = revisions.new_hashed_revision(
        sts, revision=1, collision_count=0, template_labels={"app": "web"}
    )
    squatter = meta.deep_copy(expected)
    squatter["data"] = {"spec": {"template": {"$patch": "replace"}}}
    squatter["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "name": "other",
            "uid": "x",
            "controller": True,
        }
    ]
    h.client.put(REVISIONS, squatter)
    await h.step()
    st = h.status()
    assert st["collisionCount"] == 1
    assert st["updateRevision"] != expected["metadata"]["name"]
    assert (
        st["updateRevision"]
        == revisions.rename_for_collisions(expected, "web", 1)["metadata"]["name"]
    )


async def test_orphans_are_adopted_and_strays_released(h: Harness, sts_obj: Any) -> None:
    await h.create(sts_obj(replicas=1, claims=False))
    # An orphan member with the right labels is adopted; a non-member is not.
    h.client.put(
        PODS,
        {
            "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "v1"}]},
            "status": {"phase": "Pending"},
        },
    )
    h.client.put(
        PODS,
        {
            "metadata": {"name": "other", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending"},
        },
    )
    await h.step()
    web0 = h.get(PODS, "web-0")
    assert web0["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    assert "ownerReferences" not in h.get(PODS, "other")["metadata"]
    # Once it runs, its identity is fixed; having no revision, it is then replaced.
    h.run("web-0")
    await h.step()
    (updated,) = h.client.verbs("update", "pods")
    assert updated["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert h.writes("delete", "pods") == ["web-0"]

    # An owned pod whose labels no longer match is released.
    await h.step()
    h.run("web-0")
    pod = meta.deep_copy(h.get(PODS, "web-0"))
    pod["metadata"]["labels"]["app"] = "debug"
    h.client.put(PODS, pod)
    with pytest.raises(errors.StatusError, match='pods "web-0" already exists'):
        await h.step()  # released, and its name is still taken: the sync retries later
    assert not h.get(PODS, "web-0")["metadata"].get("ownerReferences")


async def test_deleted_set_only_reports(h: Harness, sts_obj: Any) -> None:
    await _ready_set(h, sts_obj(replicas=2))
    sts = meta.deep_copy(h.get(SETS, "web"))
    sts["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    sts["spec"]["replicas"] = 0
    h.client.put(SETS, sts)
    await h.step()
    assert h.writes("delete", "pods") == []


async def test_status_write_conflict_is_retried(h: Harness, sts_obj: Any) -> None:
    await h.create(sts_obj(replicas=1))
    calls = []

    def fail_once(verb: str, resource: Any, body: Any) -> errors.StatusError | None:
        if verb == "status" and not calls:
            calls.append(1)
            return errors.stale_update("statefulsets", "apps", "web")
        return None

    h.client.fail = fail_once
    await h.step()
    assert calls and h.status()["observedGeneration"] == 1
    assert h.writes("status", "statefulsets") == ["web"]


async def test_orphaned_revisions_are_adopted(h: Harness, sts_obj: Any) -> None:
    sts = await h.create(sts_obj(replicas=1, claims=False))
    orphan = revisions.new_hashed_revision(
        sts, revision=1, collision_count=0, template_labels={"app": "web"}
    )
    del orphan["metadata"]["ownerReferences"]
    orphan["metadata"]["namespace"] = "default"
    h.client.put(REVISIONS, orphan)
    await h.step()
    (rev,) = h.client.objects_of(REVISIONS)
    assert rev["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
    # It records the template now, so it is the update revision: no second one is made.
    assert h.status()["updateRevision"] == rev["metadata"]["name"]
