"""The Deployment controller against an in-process API server, with the ReplicaSet
controller, the garbage collector and a hollow node running the pods."""

from __future__ import annotations

import asyncio
import types
from typing import Any

from pilothouse.client import rest
from pilothouse.controllers.deployment import hash as template_hash
from pilothouse.testing import eventually

Obj = dict[str, Any]


async def test_create_scale_and_status(
    client: rest.Client, ns: str, node_name: str, dh: types.ModuleType
) -> None:
    async with dh.controllers(client):
        created = await client.create(dh.DEPLOYMENTS, dh.deployment_obj("web", 3, node_name), ns)
        d = await eventually(lambda: dh.rollout_done(client, ns, "web"))
        st = d["status"]
        assert (
            st["replicas"]
            == st["updatedReplicas"]
            == st["readyReplicas"]
            == st["availableReplicas"]
            == 3
        )
        assert "unavailableReplicas" not in st and st["observedGeneration"] == 1
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        (rs,) = await dh.owned_sets(client, ns, d)
        pod_hash = template_hash.compute_hash(created["spec"]["template"], None)
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        assert rs["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
        assert rs["spec"]["selector"] == {
            "matchLabels": {"app": "web", "pod-template-hash": pod_hash}
        }
        assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
        ann = rs["metadata"]["annotations"]
        assert ann["deployment.kubernetes.io/revision"] == "1"
        assert ann["deployment.kubernetes.io/desired-replicas"] == "3"
        assert ann["deployment.kubernetes.io/max-replicas"] == "4"  # 3 + 25% rounded up
        ref = rs["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("Deployment", "web", True)
        available = dh.condition(d, "Available")
        progressing = dh.condition(d, "Progressing")
        assert available is not None and progressing is not None
        assert (available["status"], available["reason"], available["message"]) == (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
        assert (progressing["status"], progressing["reason"], progressing["message"]) == (
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "web-{pod_hash}" has successfully progressed.',
        )
        pods = (await client.list(dh.PODS, ns, label_selector="app=web"))["items"]
        assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {pod_hash}

        # Scale through /scale, as `kubectl scale` does.
        await client.patch(
            dh.DEPLOYMENTS, "web", {"spec": {"replicas": 5}}, ns, subresource="scale"
        )

        async def five() -> Obj | None:
            done = await dh.rollout_done(client, ns, "web")
            return done if done and done["spec"]["replicas"] == 5 else None

        await eventually(five)
        (rs,) = await dh.owned_sets(client, ns, d)
        assert rs["spec"]["replicas"] == 5
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
        messages = [e["message"] for e in await dh.events_of(client, ns, "web")]
        assert f"Scaled up replica set web-{pod_hash} from 0 to 3" in messages
        assert f"Scaled up replica set web-{pod_hash} from 3 to 5" in messages


async def test_rollout_invariants_undo_and_revisions(
    client: rest.Client, ns: str, node_name: str, dh: types.ModuleType
) -> None:
    """10 replicas, maxSurge 2, maxUnavailable 1: at every watch event at most 12
    live pods (and ReplicaSet replicas summing to at most 12) and at least 9
    available; then `rollout undo` brings back the first ReplicaSet as revision 3."""
    watcher = dh.Watcher(client, ns, "web")
    await watcher.start()
    try:
        async with dh.controllers(client):
            obj = dh.deployment_obj("web", 10, node_name, max_surge=2, max_unavailable=1)
            await client.create(dh.DEPLOYMENTS, obj, ns)
            d = await eventually(lambda: dh.rollout_done(client, ns, "web"))
            (first,) = await dh.owned_sets(client, ns, d)
            watcher.armed = True

            patch = {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "web", "image": "nginx:2.0"}]}}
                }
            }
            await client.patch(dh.DEPLOYMENTS, "web", patch, ns, patch_type=rest.STRATEGIC_PATCH)
            d = await eventually(lambda: dh.rollout_done(client, ns, "web"), timeout=30)
            assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
            sets = {rs["metadata"]["name"]: rs for rs in await dh.owned_sets(client, ns, d)}
            assert len(sets) == 2
            assert sets[first["metadata"]["name"]]["spec"]["replicas"] == 0
            second = next(rs for n, rs in sets.items() if n != first["metadata"]["name"])
            assert second["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
            assert second["spec"]["replicas"] == 10

            # `kubectl rollout undo`: copy the old set's template (without its hash label) back.
            template = first["spec"]["template"]
            labels = {
                k: v for k, v in template["metadata"]["labels"].items() if k != "pod-template-hash"
            }
            template = {**template, "metadata": {**template["metadata"], "labels": labels}}
            undo = [{"op": "replace", "path": "/spec/template", "value": template}]
            await client.patch(dh.DEPLOYMENTS, "web", undo, ns, patch_type=rest.JSON_PATCH)

            async def undone() -> Obj | None:
                done: Obj | None = await dh.rollout_done(client, ns, "web")
                if (
                    done
                    and done["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.0"
                ):
                    return done
                return None

            d = await eventually(undone, timeout=30)
            sets = {rs["metadata"]["name"]: rs for rs in await dh.owned_sets(client, ns, d)}
            assert len(sets) == 2, "the old ReplicaSet is reused, not a new one made"
            reused = sets[first["metadata"]["name"]]
            ann = reused["metadata"]["annotations"]
            assert ann["deployment.kubernetes.io/revision"] == "3"
            assert ann["deployment.kubernetes.io/revision-history"] == "1"
            assert reused["spec"]["replicas"] == 10
            assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
            await asyncio.sleep(0.2)  # let the last events reach the watcher
    finally:
        await watcher.stop()
    assert watcher.max_spec_sum <= 12, watcher.max_spec_sum
    assert watcher.max_live <= 12, watcher.max_live
    assert watcher.min_available is not None and watcher.min_available >= 9, watcher.min_available
    assert watcher.events > 40


async def _set_image(
    client: rest.Client, ns: str, dh: types.ModuleType, name: str, image: str
) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}}
    await client.patch(dh.DEPLOYMENTS, name, patch, ns, patch_type=rest.STRATEGIC_PATCH)


async def test_recreate_never_runs_old_and_new_pods_together(
    client: rest.Client, ns: str, node_name: str, dh: types.ModuleType
) -> None:
    watcher = dh.Watcher(client, ns, "app")
    overlap: list[tuple[str, ...]] = []
    original = watcher._observe

    def observe() -> None:
        original()
        hashes = {p["metadata"]["labels"].get("pod-template-hash") for p in watcher.pods.values()}
        if len(hashes) > 1:  # any pod of another template, even one still terminating
            overlap.append(tuple(sorted(h or "" for h in hashes)))

    watcher._observe = observe
    await watcher.start()
    try:
        async with dh.controllers(client):
            await client.create(
                dh.DEPLOYMENTS, dh.deployment_obj("app", 4, node_name, strategy="Recreate"), ns
            )
            await eventually(lambda: dh.rollout_done(client, ns, "app"))
            await _set_image(client, ns, dh, "app", "nginx:2.0")

            async def rolled() -> Obj | None:
                d = await dh.rollout_done(client, ns, "app")
                return (
                    d
                    if d
                    and d["metadata"]["annotations"].get("deployment.kubernetes.io/revision") == "2"
                    else None
                )

            await eventually(rolled)
    finally:
        await watcher.stop()
    assert overlap == []
    assert watcher.events > 10


async def test_paused_scaling_is_proportional_and_deadline_is_reported(
    client: rest.Client, ns: str, node_name: str, dh: types.ModuleType
) -> None:
    async with dh.controllers(client):
        obj = dh.deployment_obj("web", 10, node_name, max_surge=3, max_unavailable=2)
        obj["spec"]["progressDeadlineSeconds"] = 2
        await client.create(dh.DEPLOYMENTS, obj, ns)
        await eventually(lambda: dh.rollout_done(client, ns, "web"))
        # The new template's pods go to a node that does not exist: they never get ready.
        patch = {"spec": {"template": {"spec": {"nodeName": "nowhere"}}}}
        await client.patch(dh.DEPLOYMENTS, "web", patch, ns, patch_type=rest.STRATEGIC_PATCH)

        async def stuck() -> list[int] | None:
            d = await dh.get_deployment(client, ns, "web")
            sizes = sorted(rs["spec"]["replicas"] for rs in await dh.owned_sets(client, ns, d))
            return sizes if sizes == [5, 8] else None

        await eventually(stuck)  # upstream's example: old 8, new 5 (13 = 10 + 3)

        async def timed_out() -> Obj | None:
            d = await dh.get_deployment(client, ns, "web")
            cond = dh.condition(d, "Progressing")
            return cond if cond and cond["reason"] == "ProgressDeadlineExceeded" else None

        cond = await eventually(timed_out, timeout=10)
        assert cond["status"] == "False" and cond["message"].endswith("has timed out progressing.")

        await client.patch(dh.DEPLOYMENTS, "web", {"spec": {"paused": True, "replicas": 20}}, ns)

        async def scaled() -> list[int] | None:
            d = await dh.get_deployment(client, ns, "web")
            sizes = sorted(rs["spec"]["replicas"] for rs in await dh.owned_sets(client, ns, d))
            return sizes if sum(sizes) == 23 else None

        # 23 = 20 + 3 shared in proportion to 8:5 → 14 and 9.
        assert await eventually(scaled) == [9, 14]
        d = await dh.get_deployment(client, ns, "web")
        # A timed-out rollout keeps its condition while paused (upstream does not overwrite it).
        assert dh.condition(d, "Progressing")["reason"] == "ProgressDeadlineExceeded"
        # 14 available old pods are fewer than 20 - 2: not minimally available.
        available = dh.condition(d, "Available")
        assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")


async def test_history_limit_restart_self_healing_and_gc(
    client: rest.Client, ns: str, node_name: str, dh: types.ModuleType
) -> None:
    async with dh.controllers(client):
        obj = dh.deployment_obj("web", 3, node_name)
        obj["spec"]["revisionHistoryLimit"] = 1
        await client.create(dh.DEPLOYMENTS, obj, ns)
        await eventually(lambda: dh.rollout_done(client, ns, "web"))
        for image in ("nginx:2", "nginx:3"):
            await _set_image(client, ns, dh, "web", image)

            async def rolled(image: str = image) -> Obj | None:
                d = await dh.rollout_done(client, ns, "web")
                return (
                    d
                    if d and d["spec"]["template"]["spec"]["containers"][0]["image"] == image
                    else None
                )

            await eventually(rolled)

        async def history_of_one() -> list[Obj] | None:
            d = await dh.get_deployment(client, ns, "web")
            sets = await dh.owned_sets(client, ns, d)
            return sets if len(sets) == 2 else None

        sets = await eventually(history_of_one)
        revisions = sorted(
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in sets
        )
        assert revisions == ["2", "3"]

        # `kubectl rollout restart`: a template annotation makes a new ReplicaSet.
        restart = {
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}
                    }
                }
            }
        }
        await client.patch(dh.DEPLOYMENTS, "web", restart, ns, patch_type=rest.STRATEGIC_PATCH)

        async def restarted() -> Obj | None:
            d = await dh.rollout_done(client, ns, "web")
            return (
                d
                if d and d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
                else None
            )

        await eventually(restarted)

        # Self-healing: a deleted pod is replaced by the ReplicaSet controller.
        pods = [
            p
            for p in (await client.list(dh.PODS, ns, label_selector="app=web"))["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]
        victim = pods[0]["metadata"]["name"]
        await client.delete(dh.PODS, victim, ns)

        async def healed() -> bool:
            live = [
                p
                for p in (await client.list(dh.PODS, ns, label_selector="app=web"))["items"]
                if not p["metadata"].get("deletionTimestamp")
            ]
            names = {p["metadata"]["name"] for p in live}
            return (
                len(names) == 3
                and victim not in names
                and bool(await dh.rollout_done(client, ns, "web"))
            )

        await eventually(healed)

        # Deleting the deployment takes its ReplicaSets and pods with it (garbage collector).
        await client.delete(dh.DEPLOYMENTS, "web", ns, propagation_policy="Background")

        async def collected() -> bool:
            left = (await client.list(dh.RS, ns))["items"]
            pods = (await client.list(dh.PODS, ns, label_selector="app=web"))["items"]
            return not left and not pods

        await eventually(collected)


async def test_controller_manager_restart_mid_rollout(
    client: rest.Client, ns: str, node_name: str, dh: types.ModuleType
) -> None:
    """Kill the controllers right after a rollout starts, start fresh ones: the
    rollout finishes, and the invariants hold across the gap."""
    watcher = dh.Watcher(client, ns, "web")
    await watcher.start()
    try:
        async with dh.controllers(client):
            obj = dh.deployment_obj("web", 10, node_name, max_surge=2, max_unavailable=1)
            await client.create(dh.DEPLOYMENTS, obj, ns)
            await eventually(lambda: dh.rollout_done(client, ns, "web"))
            watcher.armed = True
            await _set_image(client, ns, dh, "web", "nginx:2.0")

            async def started() -> bool:
                d = await dh.get_deployment(client, ns, "web")
                return len(await dh.owned_sets(client, ns, d)) == 2

            await eventually(started, interval=0.005)
        # The manager is gone mid-rollout.
        d = await dh.get_deployment(client, ns, "web")
        sizes = sorted(rs["spec"]["replicas"] for rs in await dh.owned_sets(client, ns, d))
        assert sizes != [0, 10], "the rollout was already over; nothing was tested"
        await asyncio.sleep(0.3)
        async with dh.controllers(client):

            async def finished() -> Obj | None:
                done = await dh.rollout_done(client, ns, "web")
                image = done and done["spec"]["template"]["spec"]["containers"][0]["image"]
                return done if image == "nginx:2.0" else None

            d = await eventually(finished, timeout=30)
            sets = await dh.owned_sets(client, ns, d)
            assert sorted(rs["spec"]["replicas"] for rs in sets) == [0, 10]
            await asyncio.sleep(0.2)
    finally:
        await watcher.stop()
    assert watcher.max_spec_sum <= 12, watcher.trajectory
    assert watcher.max_live <= 12, watcher.trajectory
    assert watcher.min_available is not None and watcher.min_available >= 9, watcher.trajectory


async def test_min_ready_seconds_delays_availability(
    client: rest.Client, ns: str, node_name: str, dh: types.ModuleType
) -> None:
    async with dh.controllers(client):
        obj = dh.deployment_obj("slow", 2, node_name)
        obj["spec"]["minReadySeconds"] = 2
        await client.create(dh.DEPLOYMENTS, obj, ns)

        async def ready_not_available() -> Obj | None:
            d = await dh.get_deployment(client, ns, "slow")
            st = d.get("status") or {}
            return d if st.get("readyReplicas") == 2 and not st.get("availableReplicas") else None

        d = await eventually(ready_not_available)
        assert dh.condition(d, "Available")["reason"] == "MinimumReplicasUnavailable"
        (rs,) = await dh.owned_sets(client, ns, d)
        assert rs["spec"]["minReadySeconds"] == 2
        d = await eventually(lambda: dh.rollout_done(client, ns, "slow"), timeout=10)
        assert dh.condition(d, "Available")["status"] == "True"
