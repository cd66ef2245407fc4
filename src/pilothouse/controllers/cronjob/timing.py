"""Which scheduled time a CronJob should run now, and when to look again (upstream's
``mostRecentScheduleTime``, ``nextScheduleTime`` and ``nextScheduleTimeDuration``).

The controller never polls: after each sync it requeues the CronJob for its next
scheduled time (plus 100 ms against clock skew). Missed times are counted roughly,
as upstream counts them — the time since the first missed run divided by the
interval between two runs — and more than :data:`TOO_MANY_MISSED` only earns a
warning: the most recent missed time still runs (if ``startingDeadlineSeconds``
allows), older ones never do. Times are seconds since the epoch. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.api import meta
from pilothouse.controllers.cronjob.schedule import Schedule

Obj = dict[str, Any]

TOO_MANY_MISSED = 100
NEXT_SCHEDULE_DELTA_S = 0.1


class InvalidSchedule(ValueError):
    """A schedule that parses but cannot be run (e.g. February 31st)."""


@dataclass(frozen=True)
class MostRecent:
    earliest: float  # the last schedule time, or the CronJob's creation
    time: float | None  # the most recent time a Job is due, None if none is
    missed: int  # roughly how many times were missed (0: none)


def most_recent(cronjob: Obj, now: float, schedule: Schedule, *, with_deadline: bool) -> MostRecent:
    md = cronjob.get("metadata") or {}
    spec = cronjob.get("spec") or {}
    status = cronjob.get("status") or {}
    earliest = meta.parse_time(status.get("lastScheduleTime"))
    if earliest is None:
        earliest = meta.parse_time(md.get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if with_deadline and deadline is not None:
        # Nothing before this point would be started anyway.
        earliest = max(earliest, now - float(deadline))
    t1 = schedule.next(earliest)
    if t1 is None or now < t1:
        return MostRecent(earliest, None, 0)
    t2 = schedule.next(t1)
    if t2 is None or now < t2:
        return MostRecent(earliest, t1, 0)
    between = round(t2 - t1)
    if between < 1:
        raise InvalidSchedule("time difference between two schedules is less than 1 second")
    missed = int(now - t1) // between + 1
    # Start one interval before the estimate and let the schedule find the exact time:
    # irregular schedules (30 6-16/4 * * 1-5) do not fall on multiples of the interval.
    cursor = schedule.next(t1 + (missed - 2) * between)
    latest: float | None = None
    while cursor is not None and cursor <= now:
        latest = cursor
        cursor = schedule.next(cursor)
    return MostRecent(earliest, latest, missed)


def requeue_after(cronjob: Obj, now: float, schedule: Schedule) -> float | None:
    """Seconds until the CronJob should be looked at again."""
    try:
        recent = most_recent(cronjob, now, schedule, with_deadline=False)
        base = recent.time
        if base is None:
            base = recent.earliest if recent.missed == 0 else now
    except InvalidSchedule:
        base = now
    nxt = schedule.next(base)
    if nxt is None:
        return None
    return nxt + NEXT_SCHEDULE_DELTA_S - now


def job_name(cronjob_name: str, scheduled: float) -> str:
    """``<cronjob>-<minutes since the epoch>``: one name per scheduled time, so a
    controller that crashed between creating a Job and recording it cannot run it twice."""
    return f"{cronjob_name}-{int(scheduled) // 60}"
