"""Progress of a rollout: the Progressing condition and its deadline (upstream's progress.go).

After each rollout step the status is recomputed; the Progressing condition
says the new ReplicaSet is progressing (its ``lastUpdateTime`` moves whenever
pods are updated, ready or available), has successfully progressed, or — when
``progressDeadlineSeconds`` passed without any progress — has timed out. A
deployment that has made no progress is re-queued for the moment its deadline
passes, so the timeout is reported without waiting for another event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.api import meta
from pilothouse.controllers.deployment import sync as dsync
from pilothouse.controllers.deployment import util

if TYPE_CHECKING:
    from pilothouse.controllers.deployment.controller import DeploymentController

Obj = dict[str, Any]


async def sync_rollout_status(
    dc: DeploymentController, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj
) -> None:
    now = dc.clock.now()
    new_status = dsync.calculate_status(all_rss, new_rs, d, now=now)
    if not util.has_progress_deadline(d):
        util.remove_condition(new_status, "Progressing")
    current = util.get_condition(util.status(d), "Progressing")
    complete_already = (
        int(new_status.get("replicas") or 0) == int(new_status.get("updatedReplicas") or 0)
        and current is not None
        and current.get("reason") == util.NEW_RS_AVAILABLE
    )
    if util.has_progress_deadline(d) and not complete_already:
        subject = (
            f'ReplicaSet "{util.name(new_rs)}"'
            if new_rs is not None
            else f'Deployment "{util.name(d)}"'
        )
        if util.deployment_complete(d, new_status):
            cond = util.new_condition(
                "Progressing",
                "True",
                util.NEW_RS_AVAILABLE,
                f"{subject} has successfully progressed.",
                now,
            )
            util.set_condition(new_status, cond)
        elif util.deployment_progressing(d, new_status):
            cond = util.new_condition(
                "Progressing", "True", util.REPLICA_SET_UPDATED, f"{subject} is progressing.", now
            )
            # Same reason, but lastUpdateTime must move: replace the condition
            # while keeping when it last turned True.
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                util.remove_condition(new_status, "Progressing")
            util.set_condition(new_status, cond)
        elif util.deployment_timed_out(d, new_status, now):
            cond = util.new_condition(
                "Progressing", "False", util.TIMED_OUT, f"{subject} has timed out progressing.", now
            )
            util.set_condition(new_status, cond)
    failures = replica_failures(all_rss, new_rs)
    if failures:
        util.set_condition(new_status, failures[0])
    else:
        util.remove_condition(new_status, "ReplicaFailure")
    if new_status == util.status(d):
        requeue_stuck_deployment(dc, d, new_status, now)
        return
    d["status"] = new_status
    await dsync.update_status(dc, d)


def replica_failures(all_rss: list[Obj | None], new_rs: Obj | None) -> list[Obj]:
    """ReplicaFailure conditions of the new set, else of any set, as deployment conditions."""

    def of(rs: Obj | None) -> list[Obj]:
        out = []
        for c in util.status(rs).get("conditions") or []:
            if c.get("type") == "ReplicaFailure":
                out.append(
                    {
                        "type": "ReplicaFailure",
                        "status": c.get("status"),
                        "lastUpdateTime": c.get("lastTransitionTime"),
                        "lastTransitionTime": c.get("lastTransitionTime"),
                        "reason": c.get("reason"),
                        "message": c.get("message"),
                    }
                )
        return out

    found = of(new_rs)
    if found:
        return found
    return [c for rs in all_rss for c in of(rs)]


def requeue_stuck_deployment(
    dc: DeploymentController, d: Obj, new_status: Obj, now: float
) -> float:
    """Re-queue ``d`` for when its progress deadline passes; returns the delay
    (0 for now, -1 when no check is needed)."""
    current = util.get_condition(util.status(d), "Progressing")
    if not util.has_progress_deadline(d) or current is None:
        return -1.0
    if util.deployment_complete(d, new_status) or current.get("reason") == util.TIMED_OUT:
        return -1.0
    since = meta.parse_time(current.get("lastUpdateTime")) or now
    after = since + int(util.spec(d)["progressDeadlineSeconds"]) - now
    if after < 1:
        dc.queue.add_rate_limited(util.key(d))
        return 0.0
    # A second more, so the check does not land a hair before the deadline.
    dc.queue.add_after(util.key(d), after + 1)
    return after
