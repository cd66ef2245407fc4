"""The Recreate strategy (upstream's recreate.go).

Scale every old ReplicaSet to zero, wait until none of their pods is left
running (a deleted pod's handler re-queues the deployment when the last one
goes), then create or scale up the new ReplicaSet to the full count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.controllers.deployment import progress, util
from pilothouse.controllers.deployment import sync as dsync

if TYPE_CHECKING:
    from pilothouse.controllers.deployment.controller import DeploymentController

Obj = dict[str, Any]


async def rollout_recreate(
    dc: DeploymentController, d: Obj, rs_list: list[Obj], pod_map: dict[str, list[Obj]]
) -> None:
    # No new set yet: creating it before the old pods are gone would run both.
    new_rs, old_rss = await dsync.get_all_replica_sets_and_sync_revision(
        dc, d, rs_list, create=False
    )
    all_rss: list[Obj | None] = [*old_rss, new_rs]
    scaled_down = False
    for rs in util.filter_active(old_rss):
        scaled, _ = await dsync.scale_replica_set_and_record_event(dc, rs, 0, d)
        scaled_down = scaled_down or scaled
    if scaled_down:
        await progress.sync_rollout_status(dc, all_rss, new_rs, d)
        return
    if old_pods_running(new_rs, old_rss, pod_map):
        await progress.sync_rollout_status(dc, all_rss, new_rs, d)
        return
    if new_rs is None:
        new_rs, old_rss = await dsync.get_all_replica_sets_and_sync_revision(
            dc, d, rs_list, create=True
        )
        all_rss = [*old_rss, new_rs]
    assert new_rs is not None
    await dsync.scale_replica_set_and_record_event(dc, new_rs, util.replicas(d), d)
    if util.deployment_complete(d, util.status(d)):
        await dsync.cleanup_deployment(dc, old_rss, d)
    await progress.sync_rollout_status(dc, all_rss, new_rs, d)


def old_pods_running(new_rs: Obj | None, old_rss: list[Obj], pod_map: dict[str, list[Obj]]) -> bool:
    """Whether any old set still reports pods, or any old pod is not finished."""
    if util.actual_replica_count(old_rss) > 0:
        return True
    new_uid = util.uid(new_rs) if new_rs is not None else None
    for rs_uid, pods in pod_map.items():
        if rs_uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
                return True
    return False
