"""The Job controller: handlers and ``sync(key)`` (upstream's ``job_controller.go``).

Job events enqueue the Job at once; pod events enqueue its owner after a short batch
period, so a burst of pod changes becomes one sync. ``sync`` reads the Job and the
namespace's pods from the informers, claims pods (adopting orphans its selector matches,
with the tracking finalizer; :mod:`.claim`), works out whether the Job has finished
(:mod:`.finish`) — success (completions, successPolicy) or failure (backoffLimit,
podFailurePolicy FailJob, activeDeadlineSeconds, per-index limits) — then either deletes
the remaining pods or creates/deletes pods toward ``parallelism`` (:mod:`.pods`), and
counts finished pods and writes the status (:mod:`.status`). One Job is synced by one
worker at a time; different Jobs in parallel. A second queue removes the tracking
finalizer from pods whose Job is gone or finished (orphans), one pod at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from pilothouse.api import errors, meta, selectors
from pilothouse.client import events, informer, lister, rest, workqueue
from pilothouse.controllers import base, podcontrol
from pilothouse.controllers import expectations as expectations_mod
from pilothouse.controllers.job import backoff, claim, finish, pods, policy, status, tracking
from pilothouse.controllers.job import state as st
from pilothouse.controllers.job.state import Deps, SyncState

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KIND = "Job"
API_VERSION = "batch/v1"
# Upstream batches pod-event syncs by 1 s. Ours is shorter: a Job whose pods finish in
# bursts (parallelism 100) otherwise waits a whole second per round; measured in
# bench/controllers.py (job_completions), see BENCHMARKS.md.
SYNC_BATCH_PERIOD_S = 0.1
STRATEGIC = "application/strategic-merge-patch+json"


class JobController(base.Controller):
    name = "job"
    workers = 5

    def __init__(self, ctx: Any, *, batch_period: float = SYNC_BATCH_PERIOD_S) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.batch_period = batch_period
        self.job_resource = ctx.resource("batch", "v1", "jobs")
        self.pod_resource = ctx.resource("", "v1", "pods")
        self.jobs: informer.Informer = ctx.informers.informer(self.job_resource)
        self.pods: informer.Informer = ctx.informers.informer(self.pod_resource)
        self.pods.add_indexer(lister.OWNER_UID_INDEX, lister.controller_uid_index)
        self.recorder: events.EventRecorder = ctx.recorder("job-controller")
        self.expectations = expectations_mod.Expectations(ctx.clock)
        self.finalizers = tracking.FinalizerExpectations()
        self.backoffs = backoff.Store()
        self.orphans: workqueue.WorkQueue[str] = workqueue.WorkQueue(
            "job-orphan-pods", clock=ctx.clock
        )
        self.claimer = claim.PodClaimer(
            client=self.client,
            jobs=self.job_resource,
            pods=self.pod_resource,
            pod_informer=self.pods,
        )
        self.deps = Deps(
            client=self.client,
            recorder=self.recorder,
            clock=ctx.clock,
            jobs=self.job_resource,
            pods=self.pod_resource,
            expectations=self.expectations,
            finalizers=self.finalizers,
            backoffs=self.backoffs,
            enqueue_after=self.queue.add_after,
        )
        self.jobs.add_handlers(
            on_add=self.enqueue, on_update=self._job_updated, on_delete=self._job_deleted
        )
        self.pods.add_handlers(
            on_add=self._pod_added,
            on_update=self._pod_updated,
            on_delete=lambda pod: self._pod_deleted(pod, final=True),
        )

    async def wait_ready(self) -> None:
        await self.jobs.wait_synced()
        await self.pods.wait_synced()

    def loops(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        # Its queue outlives a restart of the controller, as the main queue does.
        return {"orphan-worker": self._orphan_worker}

    # --- handlers ---------------------------------------------------------------------
    def _enqueue_batched(self, job: Obj) -> None:
        self.queue.add_after(lister.key_of(job), self.batch_period)

    def _job_updated(self, old: Obj, new: Obj) -> None:
        key = lister.key_of(new)
        if new["metadata"].get("generation") == old["metadata"].get("generation"):
            self._enqueue_batched(new)  # a status write: no hurry
        else:
            self.queue.add(key)
        if st.is_finished(new):
            self._cleanup_finalizers(new)
        started = meta.parse_time((new.get("status") or {}).get("startTime"))
        deadline = (new.get("spec") or {}).get("activeDeadlineSeconds")
        changed = (old.get("spec") or {}).get("activeDeadlineSeconds") != deadline
        if started is not None and deadline is not None and changed:
            self.queue.add_after(key, float(deadline) - (self.clock.now() - started))

    def _job_deleted(self, job: Obj) -> None:
        self.queue.add(lister.key_of(job))
        self._cleanup_finalizers(job)

    def _cleanup_finalizers(self, job: Obj) -> None:
        for pod in self.pods.indexer.by_index(lister.OWNER_UID_INDEX, st.uid(job)):
            if tracking.has_finalizer(pod):
                self.orphans.add(lister.key_of(pod))

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != KIND:
            return None
        job = self.jobs.indexer.get_by(namespace, str(ref.get("name")))
        if job is None or st.uid(job) != ref.get("uid"):
            return None
        return job

    def _jobs_selecting(self, pod: Obj) -> list[Obj]:
        labels = pod["metadata"].get("labels") or {}
        out = []
        for job in self.jobs.indexer.list_namespace(pod["metadata"].get("namespace", "")):
            sel = selectors.from_label_selector_dict((job.get("spec") or {}).get("selector"))
            if not sel.empty and sel.matches(labels):
                out.append(job)
        return out

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod, final=False)
            return
        ref = podcontrol.get_controller_of(pod)
        if ref is not None:
            job = self._resolve(pod["metadata"].get("namespace", ""), ref)
            if job is not None:
                self.expectations.creation_observed(lister.key_of(job))
                self._enqueue_batched(job)
            return
        if tracking.has_finalizer(pod):
            self.orphans.add(lister.key_of(pod))
        for job in self._jobs_selecting(pod):
            self._enqueue_batched(job)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if new["metadata"].get("resourceVersion") == old["metadata"].get("resourceVersion"):
            return
        if new["metadata"].get("deletionTimestamp"):
            self._pod_deleted(new, final=False)
            return
        ns = new["metadata"].get("namespace", "")
        removed = not tracking.has_finalizer(new)
        ref, old_ref = podcontrol.get_controller_of(new), podcontrol.get_controller_of(old)
        if old_ref is not None and old_ref != ref:
            old_job = self._resolve(ns, old_ref)
            if old_job is not None:
                if removed:
                    self.finalizers.removal_observed(lister.key_of(old_job), st.uid(new))
                self._enqueue_batched(old_job)
        if ref is not None:
            job = self._resolve(ns, ref)
            if job is not None:
                if removed:
                    self.finalizers.removal_observed(lister.key_of(job), st.uid(new))
                self._enqueue_batched(job)
            return
        if tracking.has_finalizer(new):
            self.orphans.add(lister.key_of(new))
        labels_changed = new["metadata"].get("labels") != old["metadata"].get("labels")
        if labels_changed or old_ref != ref:
            for job in self._jobs_selecting(new):
                self._enqueue_batched(job)

    def _pod_deleted(self, pod: Obj, *, final: bool) -> None:
        has = tracking.has_finalizer(pod)
        ref = podcontrol.get_controller_of(pod)
        if ref is None:
            if has:
                self.orphans.add(lister.key_of(pod))
            return
        job = self._resolve(pod["metadata"].get("namespace", ""), ref)
        if job is None or st.is_finished(job):
            if has:
                self.orphans.add(lister.key_of(pod))
            return
        key = lister.key_of(job)
        self.expectations.deletion_observed(key, lister.key_of(pod))
        if final or not has:
            self.finalizers.removal_observed(key, st.uid(pod))
        self._enqueue_batched(job)

    # --- orphans ------------------------------------------------------------------------
    async def _orphan_worker(self) -> None:
        while True:
            try:
                key = await self.orphans.get()
            except workqueue.ShutDown:
                return
            try:
                await self._sync_orphan(key)
                self.orphans.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("job: removing the finalizer of orphan pod %s: %r", key, exc)
                self.orphans.add_rate_limited(key)
            finally:
                self.orphans.done(key)

    async def _sync_orphan(self, key: str) -> None:
        pod = self.pods.indexer.get(key)
        if pod is None or not tracking.has_finalizer(pod):
            return
        ref = podcontrol.get_controller_of(pod)
        if ref is not None:
            if ref.get("kind") != KIND or ref.get("apiVersion") != API_VERSION:
                return  # not a Job's pod: not ours to touch
            job = self._resolve(pod["metadata"].get("namespace", ""), ref)
            if job is not None and st.managed_elsewhere(job):
                return
            if job is not None and not st.is_finished(job):
                return  # adopted meanwhile: its Job counts it
        md = pod["metadata"]
        try:
            await self.client.patch(
                self.pod_resource,
                md["name"],
                tracking.remove_finalizer_patch(),
                md.get("namespace", ""),
                patch_type=STRATEGIC,
            )
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                raise

    # --- sync ---------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        shared = self.jobs.indexer.get(key)
        if shared is None:
            self.expectations.forget(key)
            self.finalizers.forget(key)
            self.backoffs.remove(key)
            return
        if st.managed_elsewhere(shared):
            return
        if st.is_finished(shared):
            self.backoffs.remove(key)
            return
        mode = (shared.get("spec") or {}).get("completionMode")
        if mode not in (None, "NonIndexed", "Indexed"):
            self.recorder.event(
                shared,
                events.WARNING,
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown",
            )
            return
        job = meta.deep_copy(shared)
        job_status = job.setdefault("status", {})
        lists = tracking.uncounted(job_status)
        # Expectations first: a pod that lands in the cache after this check is seen
        # by the next sync, never counted against a stale one.
        satisfied = self.expectations.satisfied(key)
        claimed = await self.claimer.claim(job)
        s = SyncState(
            key=key,
            job=job,
            pods=claimed,
            active_pods=[p for p in claimed if st.is_active(p)],
            uncounted_succeeded=set(lists["succeeded"]),
            uncounted_failed=set(lists["failed"]),
            expected_removed=self.finalizers.expected(key),
        )
        s.ready = sum(1 for p in s.active_pods if st.is_ready(p))
        s.terminating = sum(1 for p in claimed if st.is_terminating(p))
        await self._sync_state(s, satisfied)

    async def _sync_state(self, s: SyncState, satisfied: bool) -> None:
        job, spec, job_status = s.job, s.spec, s.status
        now = self.clock.now()
        new_succeeded, new_failed = finish.new_finished(s)
        pfp = spec.get("podFailurePolicy")
        counted_failures = sum(
            1 for p in new_failed if policy.match_pod_failure_policy(pfp, p).counts
        )
        s.succeeded = int(job_status.get("succeeded") or 0) + len(new_succeeded)
        s.succeeded += len(s.uncounted_succeeded)
        s.failed = int(job_status.get("failed") or 0) + counted_failures + len(s.uncounted_failed)
        if not job_status.get("startTime") and not st.suspended(job):
            job_status["startTime"] = meta.format_time(now)
        s.new_backoff = self.backoffs.next_record(s.key, new_succeeded, new_failed)
        finish.finished_by_failure(self.deps, s, now)
        if st.is_indexed(job):
            finish.index_state(s, now)
        active = len(s.active_pods)
        manage_error: Exception | None = None
        creations: pods.Creations | None = None
        suspend_changed = False
        if s.finished is not None:
            ready, deleted, manage_error = await pods.delete_active(self.deps, s, s.active_pods)
            if deleted != active or not satisfied:
                # Pods may still be in flight (finalizers, or not in the cache yet).
                s.finished = None
            active -= deleted
            s.terminating += deleted
            s.ready -= ready
        else:
            managed = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                active, manage_error, creations = await pods.manage(self.deps, s)
                managed = True
            completions = spec.get("completions")
            if completions is None:
                complete = s.succeeded > 0 and active == 0
            else:
                complete = s.succeeded >= int(completions) and active == 0
            if complete:
                s.finished = st.condition(
                    st.SUCCESS_CRITERIA_MET,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now,
                )
            elif managed:
                suspend_changed = self._suspend_condition(s, now)
        # Pods about to be created count as active (as upstream counts them before the
        # requests go out); a creation that fails is corrected by the requeued sync.
        planned = active + (creations.count if creations is not None else 0)
        needs_update = suspend_changed or (
            planned != int(job_status.get("active") or 0)
            or s.ready != job_status.get("ready")
            or s.terminating != job_status.get("terminating")
        )
        job_status["active"] = planned
        job_status["ready"] = s.ready
        job_status["terminating"] = s.terminating
        if creations is None:
            await status.track(self.deps, s, needs_update)
        else:
            # Creating the next pods and counting the finished ones touch different
            # objects: overlap them, so a busy Job replaces its pods without waiting
            # for the counting round trips.
            tracked, created = await asyncio.gather(
                status.track(self.deps, s, needs_update),
                pods.create(self.deps, s, job, creations),
                return_exceptions=True,
            )
            if isinstance(created, BaseException):
                raise created
            made, create_error = created
            manage_error = manage_error or create_error
            if made < creations.count:
                self.queue.add_rate_limited(s.key)
            if isinstance(tracked, BaseException):
                raise tracked
        if manage_error is not None:
            raise manage_error

    def _suspend_condition(self, s: SyncState, now: float) -> bool:
        job = s.job
        if st.suspended(job):
            changed = st.ensure_condition(
                job, st.SUSPENDED, "True", "JobSuspended", "Job suspended", now
            )
            if changed:
                self.recorder.event(job, events.NORMAL, "Suspended", "Job suspended")
            return changed
        changed = st.ensure_condition(job, st.SUSPENDED, "False", "JobResumed", "Job resumed", now)
        if changed:
            self.recorder.event(job, events.NORMAL, "Resumed", "Job resumed")
            # activeDeadlineSeconds counts continuous activity: the clock restarts.
            s.status["startTime"] = meta.format_time(now)
        return changed
