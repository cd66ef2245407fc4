"""The DaemonSet controller's sync, step by step, against an in-memory API and a fake
clock: which nodes get pods, how a rollout proceeds, what the history and status say."""

from __future__ import annotations

import asyncio
from typing import Any

from pilothouse.api import meta
from pilothouse.controllers.daemonset import util
from pilothouse.controllers.deployment import hash as template_hash
from pilothouse.controllers.history import revisions

from .conftest import PODS, REVISIONS, SETS, Harness


async def ready(h: Harness, ds: dict[str, Any], nodes: int = 3) -> None:
    for i in range(nodes):
        h.node(f"n{i}")
    await h.create(ds)
    await h.step()
    h.schedule_and_run()
    await h.step()


async def test_one_pod_per_node_pinned_by_name_for_the_scheduler(h: Harness, ds_obj: Any) -> None:
    for i in range(3):
        h.node(f"n{i}")
    ds = await h.create(ds_obj())
    await h.step()
    assert h.created_nodes() == ["n0", "n1", "n2"]
    pod = next(p for p in h.pods() if util.target_node_name(p) == "n1")
    pod_hash = template_hash.compute_hash(ds["spec"]["template"], None)
    assert pod["metadata"]["generateName"] == "agent-"
    assert pod["metadata"]["labels"] == {
        "app": "agent",
        "pod-template-generation": "1",
        "controller-revision-hash": pod_hash,
    }
    assert "nodeName" not in pod["spec"]  # the scheduler places it
    assert pod["spec"]["affinity"] == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
                ]
            }
        }
    }
    assert [(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]] == [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    (rev,) = h.client.objects_of(REVISIONS)
    assert rev["metadata"]["name"] == f"agent-{pod_hash}" and rev["revision"] == 1
    assert rev["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": pod_hash}
    assert rev["data"] == revisions.template_patch(ds)
    assert ("Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}") in h.events

    h.schedule_and_run()
    await h.step()
    assert h.client.verbs("create", "pods") == []
    assert h.status() == {
        "observedGeneration": 1,
        "currentNumberScheduled": 3,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 3,
        "numberReady": 3,
        "updatedNumberScheduled": 3,
        "numberAvailable": 3,
    }


async def test_expectations_stop_double_creation_on_a_stale_cache(h: Harness, ds_obj: Any) -> None:
    h.node("n0")
    await h.create(ds_obj())
    await h.step(refresh=False)
    assert h.created_nodes() == ["n0"]
    await h.step(refresh=False)  # the cache does not show the pod yet
    assert h.client.verbs("create", "pods") == []
    assert [v for v, _p, _o in h.client.writes] == ["status"]  # only the status
    h.refresh()  # the pod arrives: the expectation is met, the status counts it
    await h.step()
    assert h.client.verbs("create", "pods") == []
    assert h.status()["currentNumberScheduled"] == 1


async def test_node_selector_affinity_and_nodes_joining(h: Harness, ds_obj: Any) -> None:
    h.node("gpu-0", labels={"gpu": "yes"})
    h.node("cpu-0")
    ds = ds_obj()
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"gpu": "yes"}
    await h.create(ds)
    await h.step()
    assert h.created_nodes() == ["gpu-0"]
    h.schedule_and_run()
    # A node joining, and one relabelled, get pods.
    h.node("gpu-1", labels={"gpu": "yes"})
    h.node("cpu-0", labels={"gpu": "yes"})
    await h.step()
    assert h.created_nodes() == ["cpu-0", "gpu-1"]
    # Labels removed: its pod goes.
    h.schedule_and_run()
    h.node("gpu-1")
    await h.step()
    assert [util.target_node_name(p) for p in h.client.objects_of(PODS)].count("gpu-1") == 0


async def test_taints_tolerations_and_misscheduled(h: Harness, ds_obj: Any) -> None:
    await ready(h, ds_obj())
    # NoSchedule: no new pod there, but the one running may stay (misscheduled).
    h.node("n0", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    await h.step()
    assert h.deleted() == []
    st = h.status()
    assert (st["desiredNumberScheduled"], st["numberMisscheduled"]) == (2, 1)
    # A new tainted node gets nothing.
    h.node("n9", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    await h.step()
    assert h.created_nodes() == []
    # NoExecute: the pod goes.
    h.node("n1", taints=[{"key": "evict", "effect": "NoExecute"}])
    await h.step()
    assert len(h.deleted()) == 1 and "n1" not in h.pods_by_node()
    # Tolerating the taints brings pods to all of them.
    await h.edit_spec(
        template={
            "metadata": {"labels": {"app": "agent"}},
            "spec": {
                "containers": [{"name": "c", "image": "v1"}],
                "tolerations": [{"operator": "Exists"}],
            },
        }
    )
    await h.step()
    assert h.created_nodes() == ["n1", "n9"]
    # The automatic tolerations are still added beside the user's.
    pod = next(p for p in h.client.objects_of(PODS) if util.target_node_name(p) == "n9")
    assert (
        pod["spec"]["tolerations"][0] == {"operator": "Exists"}
        and len(pod["spec"]["tolerations"]) == 7
    )


async def test_cordoned_and_not_ready_nodes_keep_their_daemons(h: Harness, ds_obj: Any) -> None:
    await ready(h, ds_obj(), nodes=2)
    h.node("n0", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    h.node("n1", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
    await h.step()
    assert h.deleted() == [] and h.status()["desiredNumberScheduled"] == 2


async def test_node_leaving(h: Harness, ds_obj: Any) -> None:
    for name in ("n0", "n1"):
        h.node(name)
    await h.create(ds_obj())
    await h.step()
    # n1 goes before its pod was scheduled: the controller removes the pod itself.
    h.remove_node("n1")
    await h.step()
    assert h.pods_by_node().keys() == {"n0"}
    assert h.status()["desiredNumberScheduled"] == 1
    # A scheduled pod of a node that left is the pod garbage collector's.
    h.schedule_and_run()
    h.remove_node("n0")
    await h.step()
    assert h.deleted() == [] and h.status()["desiredNumberScheduled"] == 0


async def test_failed_pods_are_replaced_with_back_off(h: Harness, ds_obj: Any) -> None:
    await ready(h, ds_obj(), nodes=1)
    (pod,) = h.pods()
    h.set_phase(pod["metadata"]["name"], "Failed")
    await h.step()
    assert h.deleted() == [pod["metadata"]["name"]]
    assert (
        "Warning",
        "FailedDaemonPod",
        f"Found failed daemon pod default/{pod['metadata']['name']} on node n0, will try to kill it",
    ) in h.events
    await h.step()
    (second,) = h.pods()
    h.set_phase(second["metadata"]["name"], "Failed")
    await h.step()
    assert h.deleted() == []  # within the back-off (1 s)
    h.ctrl.queue.forget("default/agent")
    h.clock.advance(1.5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(h.ctrl.queue) == 1  # requeued after the back-off
    await h.step()
    assert h.deleted() == [second["metadata"]["name"]]


async def test_extra_pods_on_a_node_keep_only_the_oldest(h: Harness, ds_obj: Any) -> None:
    await ready(h, ds_obj(), nodes=1)
    (pod,) = h.pods()
    extra = meta.deep_copy(pod)
    extra["metadata"]["name"] = "agent-extra"
    extra["metadata"]["creationTimestamp"] = meta.format_time(h.clock.now() + 60)
    h.client.put(PODS, extra)
    await h.step()
    assert h.deleted() == ["agent-extra"]


async def _roll(h: Harness, steps: int = 40) -> list[tuple[str, ...]]:
    """Step until the rollout settles; the pods deleted at each step."""
    waves: list[tuple[str, ...]] = []
    for _ in range(steps):
        await h.step()
        gone = tuple(h.deleted())
        if gone:
            waves.append(gone)
        h.schedule_and_run()
    return waves


async def test_rolling_update_one_node_at_a_time(h: Harness, ds_obj: Any) -> None:
    await ready(h, ds_obj(), nodes=4)
    await h.update_template(image="v2")
    await h.step()
    assert len(h.deleted()) == 1
    await h.step()  # the replacement is made; the old pod is gone, nothing else goes
    assert len(h.deleted()) == 0 and len(h.client.verbs("create", "pods")) == 1
    await h.step()  # the new pod is not running yet: still nothing
    assert h.deleted() == []
    waves = await _roll(h)
    assert len(waves) == 3 and all(len(w) == 1 for w in waves)
    assert {p["spec"]["containers"][0]["image"] for p in h.pods()} == {"v2"}
    st = h.status()
    assert st["updatedNumberScheduled"] == 4 and st["numberAvailable"] == 4
    assert st["observedGeneration"] == 2


async def test_rolling_update_with_a_percentage(h: Harness, ds_obj: Any) -> None:
    ds = ds_obj(
        updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}
    )
    await ready(h, ds, nodes=4)
    await h.update_template(image="v2")
    await h.step()
    assert len(h.deleted()) == 2


async def test_surge_starts_new_pods_before_removing_old_ones(h: Harness, ds_obj: Any) -> None:
    ds = ds_obj(
        updateStrategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        }
    )
    await ready(h, ds, nodes=3)
    await h.update_template(image="v2")
    await h.step()
    assert h.deleted() == [] and len(h.client.verbs("create", "pods")) == 1
    surged = util.target_node_name(h.client.verbs("create", "pods")[0])
    assert len(h.pods_by_node()[surged or ""]) == 2
    h.schedule_and_run()
    await h.step()  # the new pod is available: the old one on that node goes
    assert len(h.deleted()) == 1
    waves = await _roll(h)
    assert len(waves) == 2
    assert all(len(v) == 1 for v in h.pods_by_node().values())
    assert {p["spec"]["containers"][0]["image"] for p in h.pods()} == {"v2"}


async def test_on_delete_waits(h: Harness, ds_obj: Any) -> None:
    await ready(h, ds_obj(updateStrategy={"type": "OnDelete"}), nodes=2)
    await h.update_template(image="v2")
    await h.step()
    assert h.deleted() == []
    assert h.status().get("updatedNumberScheduled", 0) == 0


async def test_history_rollback_and_limit(h: Harness, ds_obj: Any) -> None:
    await ready(h, ds_obj(revisionHistoryLimit=1), nodes=1)
    first = {r["metadata"]["name"] for r in h.client.objects_of(REVISIONS)}
    await h.update_template(image="v2")
    await _roll(h, 6)
    await h.update_template(image="v1")  # `kubectl rollout undo`: the first template again
    await _roll(h, 6)
    by_name = {r["metadata"]["name"]: r["revision"] for r in h.client.objects_of(REVISIONS)}
    (first_name,) = first
    assert by_name[first_name] == 3 and len(by_name) == 2
    await h.update_template(image="v3")
    await _roll(h, 6)
    numbers = sorted(r["revision"] for r in h.client.objects_of(REVISIONS))
    assert numbers == [3, 4]  # revision 2 went: one old revision is kept


async def test_selecting_everything_is_refused_with_an_event(h: Harness, ds_obj: Any) -> None:
    h.node("n0")
    ds = ds_obj()
    ds["spec"]["selector"] = {}
    h.client.put(SETS, {**ds, "metadata": {**ds["metadata"], "uid": "u"}})
    h.refresh()
    await h.step()
    assert h.client.objects_of(PODS) == []
    assert h.events == [
        (
            "Warning",
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.",
        )
    ]


async def test_min_ready_seconds_counts_available_later(h: Harness, ds_obj: Any) -> None:
    h.node("n0")
    await h.create(ds_obj(minReadySeconds=30))
    await h.step()
    h.schedule_and_run(ready_for=0)
    await h.step()
    st = h.status()
    assert st["numberReady"] == 1 and "numberAvailable" not in st and st["numberUnavailable"] == 1
    h.clock.advance(31)
    await h.step()
    assert h.status()["numberAvailable"] == 1 and "numberUnavailable" not in h.status()


def test_node_handlers_enqueue_only_sets_concerned(h: Harness) -> None:
    node = {"metadata": {"name": "n", "labels": {}}, "spec": {}}
    sel = {
        "metadata": {"name": "sel", "namespace": "default", "uid": "u1"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"nodeSelector": {"role": "x"}}},
        },
    }
    h.ctrl.sets.indexer.upsert("default/sel", sel)
    h.ctrl._node_added(node)
    assert len(h.ctrl.queue) == 0
    labelled = {"metadata": {"name": "n", "labels": {"role": "x"}}, "spec": {}}
    h.ctrl._node_updated(node, labelled)
    assert len(h.ctrl.queue) == 1
