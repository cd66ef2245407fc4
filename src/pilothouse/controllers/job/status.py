"""Writing a Job's status from its pods (upstream's ``trackJobStatusAndRemoveFinalizers``).

Each sync: record newly finished pods in ``status.uncountedTerminatedPods`` (or, for
an Indexed Job, their indexes in ``completedIndexes``) with any interim condition
(``SuccessCriteriaMet``, ``FailureTarget``) in one status write; then remove their
tracking finalizers; then move the pods whose finalizer is gone into the counters.
The Job is declared ``Complete`` or ``Failed`` only when nothing is left uncounted
and no pod is still terminating, so the final condition and the counters agree. At
most :data:`MAX_UNCOUNTED` pods are taken per sync, keeping the status small and
letting other Jobs have their turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pilothouse.api import errors
from pilothouse.client import events
from pilothouse.controllers.job import indexes, policy, tracking
from pilothouse.controllers.job import state as st
from pilothouse.controllers.job.state import Deps, SyncState

Obj = dict[str, Any]

MAX_UNCOUNTED = 500
STRATEGIC = "application/strategic-merge-patch+json"


def _can_remove_finalizer(s: SyncState, pod: Obj, failed: bool) -> bool:
    if s.job["metadata"].get("deletionTimestamp") or s.finished is not None:
        return True
    if st.phase(pod) == "Succeeded":
        return True
    if not failed:
        return False
    if st.has_backoff_limit_per_index(s.job):
        # Keep the last failed pod of an index until its replacement exists: the
        # replacement copies its failure count from it.
        delayed = s.delayed_per_index.get(indexes.completion_index(pod))
        if delayed is not None and st.uid(delayed) == st.uid(pod):
            return False
    return True


async def update_status(deps: Deps, s: SyncState) -> None:
    s.job["status"] = tracking.compact(s.job["status"])
    updated = await deps.client.update_status(deps.jobs, s.job)
    updated.setdefault("status", {})
    tracking.uncounted(updated["status"])
    s.job = updated


async def track(deps: Deps, s: SyncState, needs_flush: bool) -> None:
    job = s.job
    status = s.status
    lists = tracking.uncounted(status)
    indexed = st.is_indexed(job)
    completions = int(s.spec.get("completions") or 0)
    pods = sorted(s.pods, key=indexes.completion_index) if indexed else s.pods
    with_finalizer = {
        st.uid(p) for p in pods if tracking.has_finalizer(p) and st.uid(p) not in s.expected_removed
    }
    if tracking.clean_uncounted(status, with_finalizer):
        needs_flush = True
    to_release: list[Obj] = []
    new_succeeded: list[int] = []
    reached_max = False
    for pod in pods:
        pod_uid = st.uid(pod)
        if not tracking.has_finalizer(pod) or pod_uid in s.expected_removed:
            continue  # counted in an earlier sync
        failed = st.is_pod_failed(pod, job)
        if not _can_remove_finalizer(s, pod, failed):
            continue
        to_release.append(pod)
        ix = indexes.completion_index(pod)
        if st.phase(pod) == "Succeeded" and pod_uid not in s.uncounted_failed:
            if indexed:
                if (
                    ix != indexes.UNKNOWN
                    and ix < completions
                    and not s.prev_succeeded_indexes.has(ix)
                ):
                    new_succeeded.append(ix)
                    needs_flush = True
            elif pod_uid not in s.uncounted_succeeded:
                needs_flush = True
                lists["succeeded"].append(pod_uid)
        elif failed or (s.finished is not None and s.finished["type"] != st.SUCCESS_CRITERIA_MET):
            # Once the Job is finishing, every pod not succeeded counts as failed.
            valid = not indexed or (ix != indexes.UNKNOWN and ix < completions)
            if pod_uid not in s.uncounted_failed and valid:
                match = policy.match_pod_failure_policy(s.spec.get("podFailurePolicy"), pod)
                if match.counts:
                    needs_flush = True
                    lists["failed"].append(pod_uid)
        if len(new_succeeded) + len(lists["succeeded"]) + len(lists["failed"]) >= MAX_UNCOUNTED:
            reached_max = True
            break
    if indexed:
        s.succeeded_indexes = s.succeeded_indexes.with_indexes(new_succeeded)
        text = str(s.succeeded_indexes)
        if text != (status.get("completedIndexes") or ""):
            needs_flush = True
        status["succeeded"] = s.succeeded_indexes.total()
        status["completedIndexes"] = text
        failed_text = str(s.failed_indexes) if s.failed_indexes is not None else None
        if failed_text != status.get("failedIndexes"):
            needs_flush = True
            if failed_text is None:
                status.pop("failedIndexes", None)
            else:
                status["failedIndexes"] = failed_text
    now = deps.clock.now()
    if s.finished is not None and s.finished["type"] == st.FAILURE_TARGET:
        status.setdefault("conditions", []).append(s.finished)
        needs_flush = True
        s.finished = st.condition(st.FAILED, s.finished["reason"], s.finished["message"], now)
    if s.finished is not None and s.finished["type"] == st.SUCCESS_CRITERIA_MET:
        if st.find_condition(job, st.SUCCESS_CRITERIA_MET) is None:
            status.setdefault("conditions", []).append(s.finished)
            needs_flush = True
        s.finished = st.condition(st.COMPLETE, s.finished["reason"], s.finished["message"], now)
    needs_flush, release_error = await _flush_and_release(
        deps, s, to_release, with_finalizer, needs_flush
    )
    finished = not reached_max and _enact_finished(deps, s)
    if finished or needs_flush:
        await update_status(deps, s)
        if finished:
            _record_finished(deps, s)
    if release_error is not None:
        raise release_error


async def _flush_and_release(
    deps: Deps, s: SyncState, pods: list[Obj], with_finalizer: set[str], needs_flush: bool
) -> tuple[bool, Exception | None]:
    if needs_flush:
        await update_status(deps, s)
        deps.backoffs.update(s.key, s.new_backoff)
        needs_flush = False
    error: Exception | None = None
    if pods:
        released, error = await _release(deps, s.key, pods)
        with_finalizer.difference_update(released)
    if tracking.clean_uncounted(s.status, with_finalizer):
        needs_flush = True
    if error is not None and needs_flush:
        await update_status(deps, s)
        needs_flush = False
    return needs_flush, error


async def _release(deps: Deps, key: str, pods: list[Obj]) -> tuple[set[str], Exception | None]:
    """Remove the tracking finalizer from ``pods``; returns the uids done and an error."""
    deps.finalizers.expect_removed(key, [st.uid(p) for p in pods])

    async def one(pod: Obj) -> str:
        md = pod["metadata"]
        try:
            await deps.client.patch(
                deps.pods,
                md["name"],
                tracking.remove_finalizer_patch(),
                md.get("namespace", ""),
                patch_type=STRATEGIC,
            )
        except errors.StatusError as exc:
            # No update will come for this pod: stop expecting one.
            deps.finalizers.removal_observed(key, st.uid(pod))
            if not errors.is_not_found(exc):
                raise
        return st.uid(pod)

    results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
    done = {r for r in results if isinstance(r, str)}
    failures = [r for r in results if isinstance(r, Exception)]
    return done, failures[0] if failures else None


def _enact_finished(deps: Deps, s: SyncState) -> bool:
    if s.finished is None:
        return False
    lists = tracking.uncounted(s.status)
    if lists["succeeded"] or lists["failed"] or s.terminating > 0:
        return False
    cond = s.finished
    st.ensure_condition(
        s.job, cond["type"], cond["status"], cond["reason"], cond["message"], deps.clock.now()
    )
    if cond["type"] == st.COMPLETE:
        s.status["completionTime"] = cond["lastTransitionTime"]
    return True


def _record_finished(deps: Deps, s: SyncState) -> None:
    cond = s.finished
    assert cond is not None
    if cond["type"] == st.COMPLETE:
        completions = s.spec.get("completions")
        if completions is not None and int(s.status.get("succeeded") or 0) > int(completions):
            deps.recorder.event(
                s.job,
                events.WARNING,
                "TooManySucceededPods",
                "Too many succeeded pods running after completion count reached",
            )
        deps.recorder.event(s.job, events.NORMAL, "Completed", "Job completed")
    else:
        deps.recorder.event(s.job, events.WARNING, cond["reason"], cond["message"])
