"""New and old ReplicaSets, revisions, scaling, history cleanup and status
(upstream's deployment/sync.go).

Every function takes the controller and a Deployment ``d`` that is the sync's
own deep copy: like upstream, functions update ``d``'s status and annotations in
place and write them with ``/status``. ReplicaSets come from the informer's
cache and are copied before they are changed.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pilothouse.api import errors, meta
from pilothouse.client import events
from pilothouse.controllers import podcontrol
from pilothouse.controllers.deployment import hash as template_hash
from pilothouse.controllers.deployment import util

if TYPE_CHECKING:
    from pilothouse.controllers.deployment.controller import DeploymentController

Obj = dict[str, Any]


async def update_status(dc: DeploymentController, d: Obj) -> None:
    """Write ``d`` through ``/status`` and keep its resourceVersion current, so a
    second write in the same sync is not refused as stale."""
    updated = await dc.client.update_status(dc.d_resource, d)
    d["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]


async def sync_status_only(dc: DeploymentController, d: Obj, rs_list: list[Obj]) -> None:
    new_rs, old_rss = await get_all_replica_sets_and_sync_revision(dc, d, rs_list, create=False)
    await sync_deployment_status(dc, [*old_rss, new_rs], new_rs, d)


async def sync(dc: DeploymentController, d: Obj, rs_list: list[Obj]) -> None:
    """Reconcile a scaling event or a paused deployment: no rollout happens here."""
    new_rs, old_rss = await get_all_replica_sets_and_sync_revision(dc, d, rs_list, create=False)
    await scale(dc, d, new_rs, old_rss)
    if util.spec(d).get("paused") and _rollback_to(d) is None:
        await cleanup_deployment(dc, old_rss, d)
    await sync_deployment_status(dc, [*old_rss, new_rs], new_rs, d)


def _rollback_to(d: Obj) -> str | None:
    return util.annotations_of(d).get(util.DEPRECATED_ROLLBACK_TO) or None


async def check_paused_conditions(dc: DeploymentController, d: Obj) -> None:
    """Record pausing and resuming as an Unknown Progressing condition, so time
    spent paused never counts against the progress deadline."""
    if not util.has_progress_deadline(d):
        return
    st = d.setdefault("status", {})
    cond = util.get_condition(st, "Progressing")
    if cond is not None and cond.get("reason") == util.TIMED_OUT:
        return
    paused_recorded = cond is not None and cond.get("reason") == util.PAUSED
    now = dc.clock.now()
    if util.spec(d).get("paused") and not paused_recorded:
        util.set_condition(
            st,
            util.new_condition("Progressing", "Unknown", util.PAUSED, "Deployment is paused", now),
        )
    elif not util.spec(d).get("paused") and paused_recorded:
        util.set_condition(
            st,
            util.new_condition(
                "Progressing", "Unknown", util.RESUMED, "Deployment is resumed", now
            ),
        )
    else:
        return
    await update_status(dc, d)


async def get_all_replica_sets_and_sync_revision(
    dc: DeploymentController, d: Obj, rs_list: list[Obj], *, create: bool
) -> tuple[Obj | None, list[Obj]]:
    """(new ReplicaSet or None, all old ReplicaSets), with revisions brought up to date."""
    _, all_old = util.find_old_replica_sets(d, rs_list)
    new_rs = await get_new_replica_set(dc, d, rs_list, all_old, create=create)
    return new_rs, all_old


async def get_new_replica_set(
    dc: DeploymentController, d: Obj, rs_list: list[Obj], old_rss: list[Obj], *, create: bool
) -> Obj | None:
    existing = util.find_new_replica_set(d, rs_list)
    new_revision = str(util.max_revision(old_rss) + 1)
    now = dc.clock.now()
    st = d.setdefault("status", {})
    if existing is not None:
        rs_copy = meta.deep_copy(existing)
        annotations_updated = util.set_new_replica_set_annotations(
            d, rs_copy, new_revision, exists=True
        )
        min_ready = int(util.spec(d).get("minReadySeconds") or 0)
        if annotations_updated or int(util.spec(rs_copy).get("minReadySeconds") or 0) != min_ready:
            rs_copy["spec"]["minReadySeconds"] = min_ready
            updated: Obj = await dc.client.update(dc.rs_resource, rs_copy)
            return updated
        # The revision on the ReplicaSet is the reliable one: copy it up.
        needs_update = util.set_deployment_revision(
            d, util.annotations_of(rs_copy).get(util.REVISION_ANNOTATION, "")
        )
        if util.has_progress_deadline(d) and util.get_condition(st, "Progressing") is None:
            msg = f'Found new replica set "{util.name(rs_copy)}"'
            util.set_condition(
                st, util.new_condition("Progressing", "True", util.FOUND_NEW_RS, msg, now)
            )
            needs_update = True
        if needs_update:
            await update_status(dc, d)
        return rs_copy
    if not create:
        return None
    return await _create_new_replica_set(dc, d, old_rss, new_revision)


async def _create_new_replica_set(
    dc: DeploymentController, d: Obj, old_rss: list[Obj], new_revision: str
) -> Obj:
    st = d.setdefault("status", {})
    template = meta.deep_copy(util.spec(d).get("template") or {})
    collision_count = st.get("collisionCount")
    pod_hash = template_hash.compute_hash(template, collision_count)
    tmpl_md = template.setdefault("metadata", {})
    tmpl_md["labels"] = {**(tmpl_md.get("labels") or {}), util.UNIQUE_LABEL_KEY: pod_hash}
    selector = meta.deep_copy(util.spec(d).get("selector") or {})
    selector["matchLabels"] = {
        **(selector.get("matchLabels") or {}),
        util.UNIQUE_LABEL_KEY: pod_hash,
    }
    namespace = d["metadata"].get("namespace", "")
    new_rs: Obj = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            # Deterministic, so a retried create finds what an earlier one made.
            "name": f"{util.name(d)}-{pod_hash}",
            "namespace": namespace,
            "ownerReferences": [podcontrol.controller_ref(d)],
            "labels": dict(tmpl_md["labels"]),
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": int(util.spec(d).get("minReadySeconds") or 0),
            "selector": selector,
            "template": template,
        },
    }
    count = util.new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
    new_rs["spec"]["replicas"] = count
    util.set_new_replica_set_annotations(d, new_rs, new_revision, exists=False)
    already_exists = False
    try:
        created: Obj = await dc.client.create(dc.rs_resource, new_rs, namespace)
    except errors.StatusError as exc:
        if errors.is_already_exists(exc):
            already_exists = True
            found = dc.sets.indexer.get(f"{namespace}/{new_rs['metadata']['name']}")
            if found is None:
                raise
            ref = podcontrol.get_controller_of(found)
            if (
                ref is not None
                and ref.get("uid") == util.uid(d)
                and util.equal_ignore_hash(
                    util.spec(d).get("template"), util.spec(found).get("template")
                )
            ):
                created = meta.deep_copy(found)
            else:
                # A different template hashed to the same name: count the
                # collision (it goes into the next hash) and try again.
                st["collisionCount"] = int(collision_count or 0) + 1
                with contextlib.suppress(errors.StatusError):
                    await update_status(dc, d)
                raise
        elif errors.has_cause(exc, errors.NAMESPACE_TERMINATING):
            raise
        else:
            msg = f'Failed to create new replica set "{new_rs["metadata"]["name"]}": {exc.message}'
            if util.has_progress_deadline(d):
                cond = util.new_condition(
                    "Progressing", "False", util.FAILED_RS_CREATE, msg, dc.clock.now()
                )
                util.set_condition(st, cond)
                with contextlib.suppress(errors.StatusError):
                    await update_status(dc, d)
            dc.recorder.event(d, events.WARNING, util.FAILED_RS_CREATE, msg)
            raise
    if not already_exists and count > 0:
        dc.recorder.event(
            d,
            events.NORMAL,
            "ScalingReplicaSet",
            f"Scaled up replica set {util.name(created)} from 0 to {count}",
        )
    needs_update = util.set_deployment_revision(d, new_revision)
    if not already_exists and util.has_progress_deadline(d):
        msg = f'Created new replica set "{util.name(created)}"'
        util.set_condition(
            st,
            util.new_condition(
                "Progressing", "True", util.NEW_REPLICA_SET_CREATED, msg, dc.clock.now()
            ),
        )
        needs_update = True
    if needs_update:
        await update_status(dc, d)
    return created


async def scale(dc: DeploymentController, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
    """Scale proportionally: when replicas change mid-rollout, every active set
    grows or shrinks by its share, so the rollout neither speeds up nor risks more."""
    active_or_latest = util.find_active_or_latest(new_rs, old_rss)
    if active_or_latest is not None:
        if util.replicas(active_or_latest) != util.replicas(d):
            await scale_replica_set_and_record_event(dc, active_or_latest, util.replicas(d), d)
        return
    if util.is_saturated(d, new_rs):
        for old in util.filter_active(old_rss):
            await scale_replica_set_and_record_event(dc, old, 0, d)
        return
    if not util.is_rolling_update(d):
        return
    all_rss = util.filter_active([*old_rss, new_rs])
    allowed = util.replicas(d) + util.max_surge(d) if util.replicas(d) > 0 else 0
    to_add = allowed - util.replica_count(all_rss)
    operation = ""
    if to_add > 0:
        all_rss = util.by_size_newer(all_rss)
        operation = "up"
    elif to_add < 0:
        all_rss = util.by_size_older(all_rss)
        operation = "down"
    added = 0
    sizes: dict[str, int] = {}
    for rs in all_rss:
        if to_add != 0:
            share = util.proportion(rs, d, to_add, added)
            sizes[util.name(rs)] = util.replicas(rs) + share
            added += share
        else:
            sizes[util.name(rs)] = util.replicas(rs)
    for i, rs in enumerate(all_rss):
        if i == 0 and to_add != 0:
            # Leftovers go to the largest set.
            sizes[util.name(rs)] = max(0, sizes[util.name(rs)] + to_add - added)
        await scale_replica_set(dc, rs, sizes[util.name(rs)], d, operation)


async def scale_replica_set_and_record_event(
    dc: DeploymentController, rs: Obj, new_scale: int, d: Obj
) -> tuple[bool, Obj]:
    if util.replicas(rs) == new_scale:
        return False, rs
    operation = "up" if util.replicas(rs) < new_scale else "down"
    return await scale_replica_set(dc, rs, new_scale, d, operation)


async def scale_replica_set(
    dc: DeploymentController, rs: Obj, new_scale: int, d: Obj, operation: str
) -> tuple[bool, Obj]:
    size_changed = util.replicas(rs) != new_scale
    maximum = util.replicas(d) + util.max_surge(d)
    if not size_changed and not util.replicas_annotations_need_update(
        rs, util.replicas(d), maximum
    ):
        return False, rs
    old_scale = util.replicas(rs)
    rs_copy = meta.deep_copy(rs)
    util.set_replicas(rs_copy, new_scale)
    util.set_replicas_annotations(rs_copy, util.replicas(d), maximum)
    updated: Obj = await dc.client.update(dc.rs_resource, rs_copy)
    if size_changed:
        dc.recorder.event(
            d,
            events.NORMAL,
            "ScalingReplicaSet",
            f"Scaled {operation} replica set {util.name(updated)} from {old_scale} to {new_scale}",
        )
    return size_changed, updated


async def cleanup_deployment(dc: DeploymentController, old_rss: list[Obj], d: Obj) -> None:
    """Delete the oldest ReplicaSets beyond revisionHistoryLimit that run nothing."""
    if not util.has_revision_history_limit(d):
        return
    alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    diff = len(alive) - int(util.spec(d)["revisionHistoryLimit"])
    if diff <= 0:
        return
    for rs in util.by_revision(alive)[:diff]:
        st = util.status(rs)
        if (
            int(st.get("replicas") or 0) != 0
            or util.replicas(rs) != 0
            or int(rs["metadata"].get("generation") or 0) > int(st.get("observedGeneration") or 0)
        ):
            continue
        try:
            await dc.client.delete(
                dc.rs_resource, util.name(rs), rs["metadata"].get("namespace", ""), uid=util.uid(rs)
            )
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise


async def sync_deployment_status(
    dc: DeploymentController, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj
) -> None:
    new_status = calculate_status(all_rss, new_rs, d, now=dc.clock.now())
    if new_status == util.status(d):
        return
    d["status"] = new_status
    await update_status(dc, d)


def calculate_status(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj, *, now: float) -> Obj:
    available = util.available_replica_count(all_rss)
    total = util.replica_count(all_rss)
    old = util.status(d)
    st: Obj = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": util.actual_replica_count(all_rss),
        "updatedReplicas": util.actual_replica_count([new_rs]),
        "readyReplicas": util.ready_replica_count(all_rss),
        "availableReplicas": available,
        # More available than desired (while scaling down) is not negative unavailability.
        "unavailableReplicas": max(0, total - available),
    }
    st = {k: v for k, v in st.items() if v}  # omitempty, as upstream serialises
    if old.get("collisionCount") is not None:
        st["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        st["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= util.replicas(d) - util.max_unavailable(d):
        cond = util.new_condition(
            "Available",
            "True",
            util.MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    else:
        cond = util.new_condition(
            "Available",
            "False",
            util.MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    util.set_condition(st, cond)
    return st


async def is_scaling_event(dc: DeploymentController, d: Obj, rs_list: list[Obj]) -> bool:
    """Whether spec.replicas changed since the active sets were last sized."""
    new_rs, old_rss = await get_all_replica_sets_and_sync_revision(dc, d, rs_list, create=False)
    for rs in util.filter_active([*old_rss, new_rs]):
        desired = util.int_annotation(rs, util.DESIRED_REPLICAS_ANNOTATION)
        if desired is not None and desired != util.replicas(d):
            return True
    return False
