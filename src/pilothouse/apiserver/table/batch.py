"""Tables of the batch/v1 kinds: Jobs and CronJobs.

Ports of upstream's ``printJob`` and ``printCronJob``. A Job's STATUS is, in
this order of precedence: ``Complete``, ``Failed``, ``Terminating`` (being
deleted), ``Suspended``, ``FailureTarget``, else ``Running`` (1.32 has no
``SuccessCriteriaMet`` status; it came in 1.34).
"""

from __future__ import annotations

from typing import Any

from pilothouse.apiserver.table import docs, formatting, timefmt
from pilothouse.apiserver.table.model import Cells, Object, Printer, column

_EMPTY: dict[str, Any] = {}
_NAME = column("Name", "string", docs.NAME, format_="name")
_AGE = column("Age", "string", docs.CREATION_TIMESTAMP)
_CONTAINERS = column("Containers", "string", "Names of each container in the template.", priority=1)
_IMAGES = column(
    "Images", "string", "Images referenced by each container in the template.", priority=1
)
_SELECTOR = column("Selector", "string", docs.JOB_SELECTOR, priority=1)

JOB_COLUMNS = (
    _NAME,
    column("Status", "string", "Status of the job."),
    column("Completions", "string", docs.JOB_SUCCEEDED),
    column("Duration", "string", "Time required to complete the job."),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    _SELECTOR,
)

CRONJOB_COLUMNS = (
    _NAME,
    column("Schedule", "string", docs.CRONJOB_SCHEDULE),
    column("Timezone", "string", docs.CRONJOB_TIME_ZONE),
    column("Suspend", "boolean", docs.CRONJOB_SUSPEND),
    column("Active", "integer", docs.CRONJOB_ACTIVE),
    column("Last Schedule", "string", docs.CRONJOB_LAST_SCHEDULE_TIME),
    _AGE,
    _CONTAINERS,
    _IMAGES,
    _SELECTOR,
)


def _has_condition(conditions: list[dict[str, Any]], type_: str) -> bool:
    # Upstream looks at the first condition of the type only.
    for condition in conditions:
        if condition.get("type") == type_:
            return bool(condition.get("status") == "True")
    return False


def job_status(job: Object) -> str:
    conditions = (job.get("status") or _EMPTY).get("conditions") or []
    if _has_condition(conditions, "Complete"):
        return "Complete"
    if _has_condition(conditions, "Failed"):
        return "Failed"
    if (job.get("metadata") or _EMPTY).get("deletionTimestamp") is not None:
        return "Terminating"
    if _has_condition(conditions, "Suspended"):
        return "Suspended"
    if _has_condition(conditions, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def job_completions(spec: dict[str, Any], succeeded: int) -> str:
    completions = spec.get("completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = spec.get("parallelism") or 0
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def job_duration(status: dict[str, Any], now: float) -> str:
    started = timefmt.parse_time(status.get("startTime"))
    if started is None:
        return ""
    completed = timefmt.parse_time(status.get("completionTime"))
    return timefmt.human_duration((now if completed is None else completed) - started)


def job_cells(job: Object, now: float) -> Cells:
    meta = job.get("metadata") or _EMPTY
    spec = job.get("spec") or _EMPTY
    status = job.get("status") or _EMPTY
    template_spec = (spec.get("template") or _EMPTY).get("spec") or _EMPTY
    names, images = formatting.container_cells(template_spec.get("containers"))
    return [
        meta.get("name", ""),
        job_status(job),
        job_completions(spec, status.get("succeeded") or 0),
        job_duration(status, now),
        timefmt.since(meta.get("creationTimestamp"), now),
        names,
        images,
        formatting.format_label_selector(spec.get("selector")),
    ]


def cronjob_cells(cronjob: Object, now: float) -> Cells:
    meta = cronjob.get("metadata") or _EMPTY
    spec = cronjob.get("spec") or _EMPTY
    status = cronjob.get("status") or _EMPTY
    last_schedule = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or _EMPTY).get("spec") or _EMPTY
    template_spec = (job_spec.get("template") or _EMPTY).get("spec") or _EMPTY
    names, images = formatting.container_cells(template_spec.get("containers"))
    time_zone = spec.get("timeZone")
    return [
        meta.get("name", ""),
        spec.get("schedule", ""),
        "<none>" if time_zone is None else time_zone,
        formatting.bool_pointer(spec.get("suspend")),
        len(status.get("active") or ()),
        "<none>" if last_schedule is None else timefmt.since(last_schedule, now),
        timefmt.since(meta.get("creationTimestamp"), now),
        names,
        images,
        formatting.format_label_selector(job_spec.get("selector")),
    ]


PRINTERS = {
    ("batch", "Job"): Printer(JOB_COLUMNS, job_cells),
    ("batch", "CronJob"): Printer(CRONJOB_COLUMNS, cronjob_cells),
}
