"""When a Job has finished, and what its pods count for (upstream's ``syncJob`` checks,
``calculateSucceededIndexes``, ``calculateFailedIndexes`` and their helpers).

Each function reads the :class:`~.state.SyncState` of one sync and fills in what it
learns: the finishing condition (success criteria, podFailurePolicy ``FailJob``,
``backoffLimit``, ``activeDeadlineSeconds``, per-index limits, ``successPolicy``), the
succeeded and failed indexes, the pods not counted yet. No I/O here; a deadline still to
come is handed to ``deps.enqueue_after``.
"""

from __future__ import annotations

from typing import Any

from pilothouse.api import meta
from pilothouse.controllers.job import backoff, indexes, policy, tracking
from pilothouse.controllers.job import state as st
from pilothouse.controllers.job.state import Deps, SyncState

Obj = dict[str, Any]


def finished_by_failure(deps: Deps, s: SyncState, now: float) -> None:
    """Set ``s.finished``: success criteria met in an earlier sync, or a failure now (a
    FailureTarget to record first); a deadline still to come requeues the Job for it."""
    job, spec = s.job, s.spec
    met = st.find_condition(job, st.SUCCESS_CRITERIA_MET)
    if met is not None and met.get("status") == "True":
        s.finished = met
        return
    target = st.find_condition(job, st.FAILURE_TARGET)
    if target is not None and target.get("status") == "True":
        s.finished = st.condition(st.FAILED, target["reason"], target["message"], now)
        return
    if spec.get("podFailurePolicy") is not None:
        for pod in s.pods:
            if st.is_pod_failed(pod, job):
                match = policy.match_pod_failure_policy(spec["podFailurePolicy"], pod)
                if match.fail_message is not None:
                    s.finished = st.condition(
                        st.FAILURE_TARGET, "PodFailurePolicy", match.fail_message, now
                    )
                    return
    if s.failed > int(spec.get("backoffLimit") or 0) or past_backoff_limit_on_failure(s):
        s.finished = st.condition(
            st.FAILURE_TARGET,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            now,
        )
        return
    deadline = spec.get("activeDeadlineSeconds")
    started = meta.parse_time(s.status.get("startTime"))
    if deadline is not None and started is not None and not st.suspended(job):
        if now - started >= float(deadline):
            s.finished = st.condition(
                st.FAILURE_TARGET,
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
                now,
            )
        else:
            deps.enqueue_after(s.key, float(deadline) - (now - started))


def index_state(s: SyncState, now: float) -> None:
    """Succeeded and failed indexes, and the conditions they lead to (Indexed Jobs)."""
    completions = int(s.spec.get("completions") or 0)
    s.prev_succeeded_indexes = indexes.Intervals.parse(
        s.status.get("completedIndexes"), completions
    )
    s.succeeded_indexes = s.prev_succeeded_indexes.with_indexes(
        indexes.completion_index(p)
        for p in s.pods
        if st.phase(p) == "Succeeded"
        and tracking.has_finalizer(p)
        and 0 <= indexes.completion_index(p) < completions
    )
    s.succeeded = s.succeeded_indexes.total()
    if st.has_backoff_limit_per_index(s.job):
        s.failed_indexes = indexes.Intervals.parse(
            s.status.get("failedIndexes"), completions
        ).with_indexes(
            indexes.completion_index(p)
            for p in s.pods
            if 0 <= indexes.completion_index(p) < completions
            and tracking.has_finalizer(p)
            and index_failed(s.job, p)
        )
        if s.finished is None:
            max_failed = s.spec.get("maxFailedIndexes")
            failed_total = s.failed_indexes.total()
            if max_failed is not None and failed_total > int(max_failed):
                s.finished = st.condition(
                    st.FAILURE_TARGET,
                    "MaxFailedIndexesExceeded",
                    "Job has exceeded the specified maximal number of failed indexes",
                    now,
                )
            elif failed_total > 0 and failed_total + s.succeeded_indexes.total() >= completions:
                s.finished = st.condition(
                    st.FAILURE_TARGET, "FailedIndexes", "Job has failed indexes", now
                )
        s.delayed_per_index = delayed_per_index(s)
    if s.finished is None:
        message = policy.match_success_policy(
            s.spec.get("successPolicy"), completions, s.succeeded_indexes
        )
        if message is not None:
            s.finished = st.condition(st.SUCCESS_CRITERIA_MET, "SuccessPolicy", message, now)


def index_failed(job: Obj, pod: Obj) -> bool:
    if not st.is_pod_failed(pod, job):
        return False
    match = policy.match_pod_failure_policy(job["spec"].get("podFailurePolicy"), pod)
    if match.action == policy.FAIL_INDEX:
        return True
    return match.counts and indexes.annotation_count(pod, indexes.INDEX_FAILURE_COUNT) >= int(
        job["spec"]["backoffLimitPerIndex"]
    )


def delayed_per_index(s: SyncState) -> dict[int, Obj]:
    """The last failed pod of each index waiting for a replacement: its deletion
    waits, so the replacement can copy its failure count."""
    active = indexes.indexes_of(s.active_pods)
    failed = s.failed_indexes or indexes.Intervals()
    out: dict[int, Obj] = {}
    for pod in valid_pods(s, set()):
        if not st.is_pod_failed(pod, s.job):
            continue
        ix = indexes.completion_index(pod)
        if s.succeeded_indexes.has(ix) or failed.has(ix) or ix in active:
            continue
        last = out.get(ix)
        if last is None or (
            indexes.absolute_failure_count(last) <= indexes.absolute_failure_count(pod)
            and backoff.finished_time(pod) >= backoff.finished_time(last)
        ):
            out[ix] = pod
    return out


def valid_pods(s: SyncState, uncounted: set[str]) -> list[Obj]:
    """Pods not yet counted: with the finalizer, not in ``uncounted``, not awaiting
    finalizer removal, and (Indexed) with a valid index."""
    completions = int(s.spec.get("completions") or 0)
    out = []
    for pod in s.pods:
        pod_uid = st.uid(pod)
        if not tracking.has_finalizer(pod) or pod_uid in uncounted:
            continue
        if pod_uid in s.expected_removed:
            continue
        if st.is_indexed(s.job) and not 0 <= indexes.completion_index(pod) < completions:
            continue
        out.append(pod)
    return out


def new_finished(s: SyncState) -> tuple[list[Obj], list[Obj]]:
    """Newly succeeded and failed pods, not counted yet."""
    succeeded = [p for p in valid_pods(s, s.uncounted_succeeded) if st.phase(p) == "Succeeded"]
    failed = [p for p in valid_pods(s, s.uncounted_failed) if st.is_pod_failed(p, s.job)]
    return succeeded, failed


def past_backoff_limit_on_failure(s: SyncState) -> bool:
    """restartPolicy OnFailure: container restarts of running pods count as failures."""
    template_spec = (s.spec.get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in s.pods:
        if st.phase(pod) in ("Running", "Pending"):
            pod_status = pod.get("status") or {}
            for key in ("initContainerStatuses", "containerStatuses"):
                restarts += sum(int(c.get("restartCount") or 0) for c in pod_status.get(key) or [])
    limit = int(s.spec.get("backoffLimit") or 0)
    return restarts > 0 if limit == 0 else restarts >= limit
