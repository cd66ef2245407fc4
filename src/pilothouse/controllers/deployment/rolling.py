"""The RollingUpdate strategy (upstream's rolling.go).

Each sync takes one step: scale the new ReplicaSet up as far as maxSurge
allows (the sum of all sets' ``spec.replicas`` never exceeds replicas +
maxSurge), or else scale old ReplicaSets down as far as maxUnavailable allows
(available pods never drop below replicas - maxUnavailable, counting the new
set's unavailable pods against the budget), unhealthy old replicas first.
Status and progress are written after every step; the watch events the step
causes bring the next sync.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pilothouse.controllers.deployment import progress, util
from pilothouse.controllers.deployment import sync as dsync

if TYPE_CHECKING:
    from pilothouse.controllers.deployment.controller import DeploymentController

log = logging.getLogger(__name__)

Obj = dict[str, Any]


async def rollout_rolling(dc: DeploymentController, d: Obj, rs_list: list[Obj]) -> None:
    new_rs, old_rss = await dsync.get_all_replica_sets_and_sync_revision(
        dc, d, rs_list, create=True
    )
    assert new_rs is not None
    all_rss: list[Obj | None] = [*old_rss, new_rs]
    if await reconcile_new_replica_set(dc, all_rss, new_rs, d):
        await progress.sync_rollout_status(dc, all_rss, new_rs, d)
        return
    if await reconcile_old_replica_sets(dc, all_rss, util.filter_active(old_rss), new_rs, d):
        await progress.sync_rollout_status(dc, all_rss, new_rs, d)
        return
    if util.deployment_complete(d, util.status(d)):
        await dsync.cleanup_deployment(dc, old_rss, d)
    await progress.sync_rollout_status(dc, all_rss, new_rs, d)


async def reconcile_new_replica_set(
    dc: DeploymentController, all_rss: list[Obj | None], new_rs: Obj, d: Obj
) -> bool:
    want = util.replicas(d)
    if util.replicas(new_rs) == want:
        return False
    if util.replicas(new_rs) > want:
        scaled, _ = await dsync.scale_replica_set_and_record_event(dc, new_rs, want, d)
        return scaled
    count = util.new_rs_new_replicas(d, [rs for rs in all_rss if rs is not None], new_rs)
    scaled, _ = await dsync.scale_replica_set_and_record_event(dc, new_rs, count, d)
    return scaled


async def reconcile_old_replica_sets(
    dc: DeploymentController, all_rss: list[Obj | None], old_rss: list[Obj], new_rs: Obj, d: Obj
) -> bool:
    if util.replica_count(old_rss) == 0:
        return False
    all_pods = util.replica_count(all_rss)
    max_unavailable = util.max_unavailable(d)
    # Example (10 replicas, maxUnavailable 2, maxSurge 3): with the new set at 5
    # replicas none of which is available, 13 - 8 - 5 = 0 old pods may go, so a
    # crashlooping template never eats into the old set's availability.
    min_available = util.replicas(d) - max_unavailable
    new_unavailable = util.replicas(new_rs) - int(util.status(new_rs).get("availableReplicas") or 0)
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    try:
        old_rss, cleaned = await cleanup_unhealthy_replicas(dc, old_rss, d, max_scaled_down)
        scaled = await scale_down_old_replica_sets_for_rolling_update(
            dc, [*old_rss, new_rs], old_rss, d
        )
    except Exception as exc:
        # Upstream swallows these and reports "nothing scaled": the next sync retries.
        log.debug("scaling down old replica sets of %s: %r", util.key(d), exc)
        return False
    return cleaned + scaled > 0


async def cleanup_unhealthy_replicas(
    dc: DeploymentController, old_rss: list[Obj], d: Obj, max_cleanup: int
) -> tuple[list[Obj], int]:
    """Scale old sets down by their unavailable replicas first: removing those
    costs no availability (the ReplicaSet deletes not-ready pods first)."""
    ordered = util.by_creation(old_rss)
    total = 0
    for i, rs in enumerate(ordered):
        if total >= max_cleanup:
            break
        want = util.replicas(rs)
        available = int(util.status(rs).get("availableReplicas") or 0)
        if want == 0 or want == available:
            continue
        count = min(max_cleanup - total, want - available)
        new_count = want - count
        if new_count > want:
            raise ValueError(
                f"when cleaning up unhealthy replicas, got invalid request to scale down "
                f"{util.key(rs)} {want} -> {new_count}"
            )
        _, ordered[i] = await dsync.scale_replica_set_and_record_event(dc, rs, new_count, d)
        total += count
    return ordered, total


async def scale_down_old_replica_sets_for_rolling_update(
    dc: DeploymentController, all_rss: list[Obj | None], old_rss: list[Obj], d: Obj
) -> int:
    min_available = util.replicas(d) - util.max_unavailable(d)
    available = util.available_replica_count(all_rss)
    if available <= min_available:
        return 0
    total = 0
    budget = available - min_available
    for rs in util.by_creation(old_rss):
        if total >= budget:
            break
        if util.replicas(rs) == 0:
            continue
        count = min(util.replicas(rs), budget - total)
        new_count = util.replicas(rs) - count
        if new_count > util.replicas(rs):
            raise ValueError(
                f"when scaling down old RS, got invalid request to scale down "
                f"{util.key(rs)} {util.replicas(rs)} -> {new_count}"
            )
        await dsync.scale_replica_set_and_record_event(dc, rs, new_count, d)
        total += count
    return total
