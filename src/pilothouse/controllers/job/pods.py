"""Creating and deleting a Job's pods (upstream's ``manageJob`` and its helpers).

One sync either deletes pods or creates them, never both (deletion wins), at most
:data:`MAX_PER_SYNC` of either. Creations go out in slow-start batches (1, 2, 4 …)
so a template that cannot work fails after one request. Every pod carries the
tracking finalizer; an Indexed Job's pods carry their index as an annotation and a
label, ``JOB_COMPLETION_INDEX`` in every container, the hostname ``<job>-<index>``
and names ``<job>-<index>-xxxxx``. Creations wait out the failure back-off.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pilothouse.api import errors, meta
from pilothouse.client import events, lister
from pilothouse.controllers import podcontrol
from pilothouse.controllers.job import backoff, indexes, policy, tracking
from pilothouse.controllers.job import state as st
from pilothouse.controllers.job.state import Deps, SyncState

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MAX_PER_SYNC = 500


def pods_for_removal(job: Obj, active: list[Obj], at_least: int) -> list[Obj]:
    """Pods to delete: an Indexed Job's duplicates and pods without a valid index
    first, then the pods best deleted first until ``at_least`` are chosen."""
    remove: list[Obj] = []
    left = active
    if st.is_indexed(job):
        completions = int(job["spec"].get("completions") or 0)
        by_index: dict[int, list[Obj]] = {}
        left = []
        for pod in active:
            ix = indexes.completion_index(pod)
            if ix == indexes.UNKNOWN or ix >= completions:
                remove.append(pod)
            else:
                by_index.setdefault(ix, []).append(pod)
        for same in by_index.values():
            same.sort(key=st.active_pods_order)
            remove.extend(same[:-1])
            left.append(same[-1])
    if len(remove) < at_least:
        left = sorted(left, key=st.active_pods_order)
        remove.extend(left[: at_least - len(remove)])
    return remove


async def delete_active(
    deps: Deps, s: SyncState, pods: list[Obj]
) -> tuple[int, int, Exception | None]:
    """DELETE the pods, keeping their finalizers (the Job is finishing: the status step
    removes the finalizers once they are counted). Returns (ready, deleted, error)."""
    results = await asyncio.gather(*(_delete(deps, s, p) for p in pods), return_exceptions=True)
    ready = sum(1 for p, r in zip(pods, results, strict=True) if r is None and st.is_ready(p))
    failures = [r for r in results if isinstance(r, Exception)]
    return ready, len(pods) - len(failures), failures[0] if failures else None


async def _delete(deps: Deps, s: SyncState, pod: Obj) -> None:
    md = pod["metadata"]
    try:
        await deps.client.delete(deps.pods, md["name"], md.get("namespace", ""))
    except errors.StatusError as exc:
        if errors.is_not_found(exc):
            return None
        deps.recorder.event(s.job, events.WARNING, "FailedDelete", f"Error deleting: {exc.message}")
        raise
    deps.recorder.event(s.job, events.NORMAL, "SuccessfulDelete", f"Deleted pod: {md['name']}")
    return None


async def delete_job_pods(
    deps: Deps, s: SyncState, pods: list[Obj]
) -> tuple[int, int, Exception | None]:
    """Remove the tracking finalizer, then DELETE (pods no longer wanted: not counted)."""
    deps.expectations.expect_deletions(s.key, [lister.key_of(p) for p in pods])

    async def one(pod: Obj) -> None:
        md = pod["metadata"]
        try:
            if tracking.has_finalizer(pod):
                await deps.client.patch(
                    deps.pods,
                    md["name"],
                    tracking.remove_finalizer_patch(),
                    md.get("namespace", ""),
                    patch_type="application/strategic-merge-patch+json",
                )
            await _delete(deps, s, pod)
        except errors.StatusError as exc:
            deps.expectations.deletion_observed(s.key, lister.key_of(pod))
            if not errors.is_not_found(exc):
                raise

    results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception)]
    ready = sum(1 for p, r in zip(pods, results, strict=True) if r is None and st.is_ready(p))
    return ready, len(pods) - len(failures), failures[0] if failures else None


def namespace_terminating(exc: errors.StatusError) -> bool:
    return errors.has_cause(exc, errors.NAMESPACE_TERMINATING)


def _wanted(s: SyncState, active: int) -> int:
    parallelism = int(s.spec.get("parallelism") or 0)
    completions = s.spec.get("completions")
    if completions is None:
        # Without completions any success ends the Job: start no more once one succeeded.
        return active if s.succeeded > 0 else parallelism
    return max(0, min(int(completions) - s.succeeded, parallelism))


@dataclass(frozen=True)
class Creations:
    """Pods a sync decided to create: how many, and (Indexed) for which indexes."""

    count: int
    indexes: list[int]


async def manage(deps: Deps, s: SyncState) -> tuple[int, Exception | None, Creations | None]:
    """Delete pods towards the wanted number of active ones, or decide what to create.

    Returns the number of active pods afterwards (before any creation), the first
    error, and the creations to make (:func:`create` makes them, so the caller can
    overlap them with counting finished pods)."""
    job = s.job
    active = len(s.active_pods)
    if st.suspended(job):
        ready, removed, err = await delete_job_pods(deps, s, list(s.active_pods))
        s.terminating += removed
        s.ready -= ready
        return active - removed, err, None
    wanted = _wanted(s, active)
    doomed = pods_for_removal(job, s.active_pods, max(0, active - wanted))[:MAX_PER_SYNC]
    if doomed:
        ready, removed, err = await delete_job_pods(deps, s, doomed)
        s.terminating += removed
        s.ready -= ready
        return active - removed, err, None
    terminating = s.terminating if st.only_replace_failed(job) else 0
    diff = wanted - terminating - active
    if diff <= 0:
        return active, None, None
    now = deps.clock.now()
    if not st.has_backoff_limit_per_index(job):
        wait = backoff.remaining(
            s.new_backoff.failures_after_last_success, s.new_backoff.last_failure, now
        )
        if wait > 0:
            deps.enqueue_after(s.key, max(wait, 1.0))
            return active, None, None
    diff = min(diff, MAX_PER_SYNC)
    to_add: list[int] = []
    if st.is_indexed(job):
        completions = int(s.spec["completions"])
        not_pending = s.succeeded_indexes.with_indexes(indexes.indexes_of(s.active_pods))
        if st.only_replace_failed(job):
            terminating_pods = [p for p in s.pods if st.is_terminating(p)]
            not_pending = not_pending.with_indexes(indexes.indexes_of(terminating_pods))
        if s.failed_indexes is not None:
            not_pending = not_pending.merge(s.failed_indexes)
        to_add = indexes.first_pending(diff, completions, not_pending)
        if st.has_backoff_limit_per_index(job):
            ready_now = [
                ix
                for ix in to_add
                if backoff.remaining_for_index(s.delayed_per_index.get(ix), now) == 0
            ]
            if not ready_now and to_add:
                wait = min(
                    backoff.remaining_for_index(s.delayed_per_index.get(ix), now) for ix in to_add
                )
                deps.enqueue_after(s.key, max(wait, 1.0))
                return active, None, None
            to_add = ready_now
        diff = len(to_add)
    if diff <= 0:
        return active, None, None
    return active, None, Creations(diff, to_add)


def _template(job: Obj) -> Obj:
    template = meta.deep_copy(job["spec"].get("template") or {})
    tmeta = template.setdefault("metadata", {})
    finalizers = list(tmeta.get("finalizers") or [])
    if tracking.FINALIZER not in finalizers:
        finalizers.append(tracking.FINALIZER)
    tmeta["finalizers"] = finalizers
    if st.is_indexed(job):
        indexes.add_index_env(template.setdefault("spec", {}))
    return template


def _indexed_pod(job: Obj, template: Obj, index: int, replaced: Obj | None) -> tuple[Obj, str]:
    pod_template = meta.deep_copy(template)
    tmeta = pod_template["metadata"]
    annotations = tmeta.setdefault("annotations", {})
    annotations[indexes.COMPLETION_INDEX] = str(index)
    tmeta.setdefault("labels", {})[indexes.COMPLETION_INDEX] = str(index)
    name = job["metadata"]["name"]
    pod_template.setdefault("spec", {})["hostname"] = f"{name}-{index}"
    if st.has_backoff_limit_per_index(job):
        failures, ignored = 0, 0
        if replaced is not None:
            failures = indexes.annotation_count(replaced, indexes.INDEX_FAILURE_COUNT)
            ignored = indexes.annotation_count(replaced, indexes.INDEX_IGNORED_FAILURE_COUNT)
            if policy.match_pod_failure_policy(
                job["spec"].get("podFailurePolicy"), replaced
            ).counts:
                failures += 1
            else:
                ignored += 1
        annotations[indexes.INDEX_FAILURE_COUNT] = str(failures)
        if ignored:
            annotations[indexes.INDEX_IGNORED_FAILURE_COUNT] = str(ignored)
    return pod_template, indexes.generate_name(name, index)


async def create(
    deps: Deps, s: SyncState, job: Obj, creations: Creations
) -> tuple[int, Exception | None]:
    """Make the pods :func:`manage` decided on, for ``job`` (the Job as the sync began:
    the status step may replace ``s.job`` meanwhile). Returns how many were created."""
    count, to_add = creations.count, creations.indexes
    ns = job["metadata"].get("namespace", "")
    template = _template(job)
    deps.expectations.expect_creations(s.key, count)
    pending = list(to_add)

    async def create_one() -> None:
        pod_template, generate = template, ""
        if pending:
            ix = pending.pop(0)
            pod_template, generate = _indexed_pod(job, template, ix, s.delayed_per_index.get(ix))
        pod = podcontrol.pod_from_template(job, pod_template, generate_name=generate)
        try:
            created = await deps.client.create(deps.pods, pod, ns)
        except errors.StatusError as exc:
            deps.expectations.creation_observed(s.key)
            if namespace_terminating(exc):
                return  # every later creation would fail too; nothing to report
            deps.recorder.event(
                job, events.WARNING, "FailedCreate", f"Error creating: {exc.message}"
            )
            raise
        deps.recorder.event(
            job, events.NORMAL, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
        )

    done, failure = await podcontrol.slow_start_batch(count, 1, create_one)
    if failure is not None and not isinstance(failure, Exception):
        raise failure  # cancellation: not a failed creation
    error = failure
    if error is not None and done < count:
        # Creations never attempted after a failed batch are not expected either.
        attempted = _attempted(count, done)
        deps.expectations.creations_failed(s.key, count - attempted)
    return done, error


def _attempted(count: int, done: int) -> int:
    """How many creations slow_start_batch attempted when it stopped after ``done``
    successes (the batches double: 1, 2, 4 …; the last one had the failure)."""
    attempted, batch = 0, 1
    while attempted < count:
        batch = min(batch, count - attempted)
        attempted += batch
        if attempted > done:
            return attempted
        batch *= 2
    return attempted
