"""Rollback through the deprecated ``deprecated.deployment.rollback.to`` annotation
(upstream's rollback.go, kept for extensions/v1beta1-era clients).

In apps/v1 ``kubectl rollout undo`` rolls back by itself: it copies the old
ReplicaSet's template (and annotations) into the Deployment with a patch. The
controller then sees a template equal to an old ReplicaSet's, reuses that set
and gives it the next revision (its earlier ones go into revision-history).
This module handles the annotation form the same way: copy the template of the
requested revision (0 = the previous one), drop the annotation, update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.api import intstr
from pilothouse.client import events
from pilothouse.controllers.deployment import sync as dsync
from pilothouse.controllers.deployment import util

if TYPE_CHECKING:
    from pilothouse.controllers.deployment.controller import DeploymentController

Obj = dict[str, Any]


def rollback_to(d: Obj) -> int | None:
    value = util.annotations_of(d).get(util.DEPRECATED_ROLLBACK_TO)
    if not value:
        return None
    try:
        return int(intstr.go_atoi(value))
    except ValueError:
        return None


async def rollback(dc: DeploymentController, d: Obj, rs_list: list[Obj], revision: int) -> None:
    new_rs, old_rss = await dsync.get_all_replica_sets_and_sync_revision(
        dc, d, rs_list, create=True
    )
    all_rss = [rs for rs in [*old_rss, new_rs] if rs is not None]
    if revision == 0:
        revision = util.last_revision(all_rss)
        if revision == 0:
            dc.recorder.event(
                d, events.WARNING, util.ROLLBACK_REVISION_NOT_FOUND, "Unable to find last revision."
            )
            await _clear_rollback_to(dc, d)
            return
    for rs in all_rss:
        try:
            v = util.revision(rs)
        except ValueError:
            continue
        if v != revision:
            continue
        if util.equal_ignore_hash(util.spec(d).get("template"), util.spec(rs).get("template")):
            msg = f'The rollback revision contains the same template as current deployment "{util.name(d)}"'
            dc.recorder.event(d, events.WARNING, util.ROLLBACK_TEMPLATE_UNCHANGED, msg)
            await _clear_rollback_to(dc, d)
            return
        d["spec"]["template"] = util.template_without_hash(util.spec(rs).get("template"))
        util.set_deployment_annotations_to(d, rs)
        await _clear_rollback_to(dc, d)
        dc.recorder.event(
            d,
            events.NORMAL,
            util.ROLLBACK_DONE,
            f'Rolled back deployment "{util.name(d)}" to revision {revision}',
        )
        return
    dc.recorder.event(
        d,
        events.WARNING,
        util.ROLLBACK_REVISION_NOT_FOUND,
        "Unable to find the revision to rollback to.",
    )
    await _clear_rollback_to(dc, d)


async def _clear_rollback_to(dc: DeploymentController, d: Obj) -> None:
    util.annotations_of(d).pop(util.DEPRECATED_ROLLBACK_TO, None)
    await dc.client.update(dc.d_resource, d)
