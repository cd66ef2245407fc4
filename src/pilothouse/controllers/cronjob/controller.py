"""The CronJob controller (upstream's ``cronjob_controllerv2.go``).

Handlers enqueue a CronJob when it or one of its Jobs changes; a schedule change
requeues it for the new next time. ``sync`` reconciles ``status.active`` with the
Jobs it controls (noting finished, missing and unexpected ones), deletes finished
Jobs beyond the history limits, then — unless the CronJob is suspended or being
deleted — works out the most recent due time (:mod:`.timing`) and starts a Job for
it, honouring ``startingDeadlineSeconds`` and ``concurrencyPolicy`` (Forbid skips,
Replace deletes the running ones first). Each Job's name comes from its scheduled
minute, so a time is never run twice. The CronJob is then requeued for its next due
time: there is no periodic pass over all CronJobs. One CronJob is synced by one
worker at a time; different ones in parallel.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from email.utils import format_datetime
from typing import Any

from pilothouse.api import errors, meta
from pilothouse.client import events, informer, lister, rest
from pilothouse.controllers import base, podcontrol
from pilothouse.controllers.cronjob import schedule as schedule_mod
from pilothouse.controllers.cronjob import timing

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KIND = "CronJob"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def finished_condition(job: Obj) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def _uid(obj: Obj) -> str:
    return str(obj["metadata"].get("uid", ""))


def _in_active(cronjob: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in cronjob["status"].get("active") or [])


def _remove_active(cronjob: Obj, uid: str) -> None:
    cronjob["status"]["active"] = [
        ref for ref in cronjob["status"].get("active") or [] if ref.get("uid") != uid
    ]


def _start_order(job: Obj) -> tuple[int, float, str]:
    started = meta.parse_time((job.get("status") or {}).get("startTime"))
    return (1 if started is None else 0, started or 0.0, job["metadata"]["name"])


def _rfc1123z(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC)).replace("-0000", "+0000")


class CronJobController(base.Controller):
    name = "cronjob"
    workers = 5

    def __init__(self, ctx: Any, *, zone: tzinfo | None = None) -> None:
        super().__init__(clock=ctx.clock)
        self.client: rest.Client = ctx.client
        self.zone = zone
        self.cj_resource = ctx.resource("batch", "v1", "cronjobs")
        self.job_resource = ctx.resource("batch", "v1", "jobs")
        self.cronjobs: informer.Informer = ctx.informers.informer(self.cj_resource)
        self.jobs: informer.Informer = ctx.informers.informer(self.job_resource)
        self.jobs.add_indexer(lister.OWNER_UID_INDEX, lister.controller_uid_index)
        self.recorder: events.EventRecorder = ctx.recorder("cronjob-controller")
        self.cronjobs.add_handlers(on_add=self.enqueue, on_update=self._cronjob_updated)
        self.jobs.add_handlers(
            on_add=self._job_changed,
            on_update=self._job_updated,
            on_delete=self._job_changed,
        )

    async def wait_ready(self) -> None:
        await self.cronjobs.wait_synced()
        await self.jobs.wait_synced()

    # --- handlers ---------------------------------------------------------------------
    def _owner(self, job: Obj) -> Obj | None:
        ref = podcontrol.get_controller_of(job)
        if ref is None or ref.get("kind") != KIND:
            return None
        cj = self.cronjobs.indexer.get_by(job["metadata"].get("namespace", ""), str(ref["name"]))
        if cj is None or _uid(cj) != ref.get("uid"):
            return None
        return cj

    def _job_changed(self, job: Obj) -> None:
        cj = self._owner(job)
        if cj is not None:
            self.enqueue(cj)

    def _job_updated(self, old: Obj, new: Obj) -> None:
        if podcontrol.get_controller_of(old) != podcontrol.get_controller_of(new):
            self._job_changed(old)
        self._job_changed(new)

    def _cronjob_updated(self, old: Obj, new: Obj) -> None:
        old_spec, spec = old.get("spec") or {}, new.get("spec") or {}
        if (old_spec.get("schedule"), old_spec.get("timeZone")) == (
            spec.get("schedule"),
            spec.get("timeZone"),
        ):
            self.enqueue(new)
            return
        try:
            sched = self._schedule(new)
        except (ValueError, LookupError) as exc:
            self.recorder.event(
                new,
                events.WARNING,
                "UnParseableCronJobSchedule",
                f"unparseable schedule for cronjob: {spec.get('schedule')}",
            )
            log.debug("cronjob %s: %s", lister.key_of(new), exc)
            return
        delay = timing.requeue_after(new, self.clock.now(), sched)
        if delay is not None:
            self.queue.add_after(lister.key_of(new), delay)

    # --- sync ---------------------------------------------------------------------------
    def _schedule(self, cj: Obj) -> schedule_mod.Schedule:
        spec = cj.get("spec") or {}
        text = str(spec.get("schedule") or "")
        zone = self.zone
        if spec.get("timeZone") is not None:
            if "TZ" in text:
                self.recorder.event(
                    cj,
                    events.WARNING,
                    "UnsupportedSchedule",
                    f'CRON_TZ or TZ used in schedule "{text}" is not officially supported, see '
                    "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                )
            else:
                zone = schedule_mod.load_zone(str(spec["timeZone"]))
        return schedule_mod.parse(text, zone=zone)

    async def sync(self, key: str) -> None:
        shared = self.cronjobs.indexer.get(key)
        if shared is None:
            return
        cj = meta.deep_copy(shared)
        cj.setdefault("status", {})
        jobs = self.jobs.indexer.by_index(lister.OWNER_UID_INDEX, _uid(cj))
        jobs = [
            j for j in jobs if j["metadata"].get("namespace") == cj["metadata"].get("namespace")
        ]
        changed = await self._cleanup_finished(cj, jobs)
        error: Exception | None = None
        requeue: float | None = None
        try:
            requeue, synced = await self._sync_cronjob(cj, jobs)
            changed = changed or synced
        except Exception as exc:  # the status learned so far is still written
            error = exc
        if changed:
            cj["status"] = {k: v for k, v in cj["status"].items() if v not in (None, [])}
            try:
                await self.client.update_status(self.cj_resource, cj)
            except errors.StatusError as exc:
                if errors.is_not_found(exc):
                    return
                raise
        if requeue is not None:
            self.queue.add_after(key, max(0.0, requeue))
        elif error is not None:
            raise error

    async def _sync_cronjob(self, cj: Obj, jobs: list[Obj]) -> tuple[float | None, bool]:
        """Returns (seconds until the next look, whether the status changed)."""
        changed = False
        status = cj["status"]
        now = self.clock.now()
        children = {_uid(j) for j in jobs}
        for job in jobs:
            found = _in_active(cj, _uid(job))
            condition = finished_condition(job)
            if not found and condition is None:
                fresh = await self._get(self.cj_resource, cj)
                if fresh is not None and _in_active(fresh, _uid(job)):
                    continue  # our cache was behind; the fresh status has it
                self.recorder.event(
                    cj,
                    events.WARNING,
                    "UnexpectedJob",
                    f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}",
                )
            elif found and condition is not None:
                _remove_active(cj, _uid(job))
                self.recorder.event(
                    cj,
                    events.NORMAL,
                    "SawCompletedJob",
                    f"Saw completed job: {job['metadata']['name']}, condition: {condition}",
                )
                changed = True
            if condition == "Complete":
                completed = (job.get("status") or {}).get("completionTime")
                last = meta.parse_time(status.get("lastSuccessfulTime"))
                when = meta.parse_time(completed)
                if completed and (last is None or (when is not None and when > last)):
                    status["lastSuccessfulTime"] = completed
                    changed = True
        for ref in list(status.get("active") or []):
            if ref.get("uid") in children:
                continue
            # The informer may lag: ask the API before calling the Job missing.
            try:
                await self.client.get(
                    self.job_resource, ref.get("name", ""), ref.get("namespace", "")
                )
            except errors.StatusError as exc:
                if not errors.is_not_found(exc):
                    raise
                self.recorder.event(
                    cj, events.NORMAL, "MissingJob", f"Active job went missing: {ref.get('name')}"
                )
                _remove_active(cj, str(ref.get("uid")))
                changed = True
        if cj["metadata"].get("deletionTimestamp"):
            return None, changed
        spec = cj.get("spec") or {}
        if spec.get("timeZone") is not None:
            try:
                schedule_mod.load_zone(str(spec["timeZone"]))
            except (LookupError, ValueError, OSError) as exc:
                self.recorder.event(
                    cj,
                    events.WARNING,
                    "UnknownTimeZone",
                    f'invalid timeZone: "{spec["timeZone"]}": unknown time zone {spec["timeZone"]}',
                )
                log.debug("cronjob %s: %r", lister.key_of(cj), exc)
                return None, changed
        if spec.get("suspend"):
            return None, changed
        try:
            sched = self._schedule(cj)
        except ValueError as exc:
            self.recorder.event(
                cj,
                events.WARNING,
                "UnparseableSchedule",
                f'unparseable schedule: "{spec.get("schedule")}" : {exc}',
            )
            return None, changed
        return await self._maybe_start(cj, sched, now, changed)

    async def _maybe_start(
        self, cj: Obj, sched: schedule_mod.Schedule, now: float, changed: bool
    ) -> tuple[float | None, bool]:
        spec, status = cj.get("spec") or {}, cj["status"]
        try:
            recent = timing.most_recent(cj, now, sched, with_deadline=True)
        except timing.InvalidSchedule as exc:
            self.recorder.event(
                cj,
                events.WARNING,
                "InvalidSchedule",
                f"invalid schedule: {spec.get('schedule')} : {exc}",
            )
            return None, changed
        scheduled = recent.time
        if scheduled is None or scheduled > now:
            return timing.requeue_after(cj, now, sched), changed
        if recent.missed > timing.TOO_MANY_MISSED:
            self.recorder.event(
                cj,
                events.WARNING,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                "or check clock skew",
            )
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + float(deadline) < now:
            self.recorder.event(
                cj,
                events.WARNING,
                "MissSchedule",
                f"Missed scheduled time to start a job: {_rfc1123z(scheduled)}",
            )
            return timing.requeue_after(cj, now, sched), changed
        name = timing.job_name(cj["metadata"]["name"], scheduled)
        already = any(
            ref.get("name") == name for ref in status.get("active") or []
        ) or meta.parse_time(status.get("lastScheduleTime")) == float(int(scheduled))
        if already:
            return timing.requeue_after(cj, now, sched), changed
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status.get("active"):
            self.recorder.event(
                cj,
                events.NORMAL,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            )
            return timing.requeue_after(cj, now, sched), changed
        if policy == "Replace":
            for active in list(status.get("active") or []):
                running = await self._get_job(cj, active)
                await self._delete_job(cj, running)
                changed = True
        job = await self._create_job(cj, scheduled)
        if job is None:
            return None, changed
        ref = {
            "kind": "Job",
            "namespace": job["metadata"].get("namespace", ""),
            "name": job["metadata"]["name"],
            "uid": _uid(job),
            "apiVersion": "batch/v1",
            "resourceVersion": job["metadata"].get("resourceVersion", ""),
        }
        if not _in_active(cj, ref["uid"]):
            status["active"] = [*(status.get("active") or []), ref]
        status["lastScheduleTime"] = meta.format_time(scheduled)
        return timing.requeue_after(cj, now, sched), True

    async def _create_job(self, cj: Obj, scheduled: float) -> Obj | None:
        """Create the Job for ``scheduled``; None when there is nothing to record."""
        ns = cj["metadata"].get("namespace", "")
        template = cj["spec"].get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        zone = schedule_mod.load_zone(str(cj["spec"].get("timeZone") or ""))
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_TIMESTAMP] = (
            datetime.fromtimestamp(int(scheduled), zone).isoformat().replace("+00:00", "Z")
        )
        job: Obj = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": timing.job_name(cj["metadata"]["name"], scheduled),
                "namespace": ns,
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [podcontrol.controller_ref(cj)],
            },
            "spec": meta.deep_copy(template.get("spec") or {}),
        }
        try:
            created = await self.client.create(self.job_resource, job, ns)
        except errors.StatusError as exc:
            if errors.has_cause(exc, errors.NAMESPACE_TERMINATING):
                raise
            if not errors.is_already_exists(exc):
                self.recorder.event(
                    cj, events.WARNING, "FailedCreate", f"Error creating job: {exc.message}"
                )
                raise
            # Created before (by us, before a crash, or by someone else): record it only
            # if it is ours and not recorded yet.
            existing = await self.client.get(self.job_resource, job["metadata"]["name"], ns)
            owner = podcontrol.get_controller_of(existing)
            if owner is None or owner.get("uid") != _uid(cj) or _in_active(cj, _uid(existing)):
                return None
            log.info(
                "cronjob %s: job %s already exists", lister.key_of(cj), job["metadata"]["name"]
            )
            return existing
        self.recorder.event(
            cj, events.NORMAL, "SuccessfulCreate", f"Created job {created['metadata']['name']}"
        )
        return created

    async def _get(self, resource: Any, obj: Obj) -> Obj | None:
        md = obj["metadata"]
        try:
            fresh: Obj = await self.client.get(resource, md["name"], md.get("namespace", ""))
            return fresh
        except errors.StatusError as exc:
            if errors.is_not_found(exc):
                return None
            raise

    async def _get_job(self, cj: Obj, ref: Obj) -> Obj:
        try:
            job: Obj = await self.client.get(
                self.job_resource, str(ref.get("name")), str(ref.get("namespace", ""))
            )
            return job
        except errors.StatusError as exc:
            self.recorder.event(cj, events.WARNING, "FailedGet", f"Get job: {exc.message}")
            raise

    async def _delete_job(self, cj: Obj, job: Obj) -> None:
        md = job["metadata"]
        try:
            await self.client.delete(
                self.job_resource,
                md["name"],
                md.get("namespace", ""),
                propagation_policy="Background",
            )
        except errors.StatusError as exc:
            if not errors.is_not_found(exc):
                self.recorder.event(
                    cj, events.WARNING, "FailedDelete", f"Deleted job: {exc.message}"
                )
                raise
        _remove_active(cj, _uid(job))
        self.recorder.event(cj, events.NORMAL, "SuccessfulDelete", f"Deleted job {md['name']}")

    async def _cleanup_finished(self, cj: Obj, jobs: list[Obj]) -> bool:
        """Delete the oldest finished Jobs beyond the history limits."""
        spec = cj.get("spec") or {}
        changed = False
        for condition, field in (
            ("Complete", "successfulJobsHistoryLimit"),
            ("Failed", "failedJobsHistoryLimit"),
        ):
            limit = spec.get(field)
            if limit is None:
                continue
            finished = sorted(
                (
                    j
                    for j in jobs
                    if finished_condition(j) == condition
                    and not j["metadata"].get("deletionTimestamp")
                ),
                key=_start_order,
            )
            for job in finished[: max(0, len(finished) - int(limit))]:
                try:
                    await self._delete_job(cj, job)
                except errors.StatusError:
                    continue  # reported as an event; tried again on the next sync
                changed = True
        return changed
