"""Cron schedules evaluated as robfig/cron (and so upstream's CronJob controller) does."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, tzinfo

import pytest

from pilothouse.controllers.cronjob import schedule, timing

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def runs(spec: str, start: str, n: int, zone: tzinfo = UTC) -> list[str]:
    sched = schedule.parse(spec, zone=zone)
    t: float | None = datetime.fromisoformat(start).timestamp()
    out = []
    for _ in range(n):
        assert t is not None
        t = sched.next(t)
        out.append("never" if t is None else datetime.fromtimestamp(t, zone).isoformat())
        if t is None:
            break
    return out


def test_every_minute_strictly_after() -> None:
    assert runs("*/1 * * * *", "2026-01-01T00:00:00+00:00", 2) == [
        "2026-01-01T00:01:00+00:00",
        "2026-01-01T00:02:00+00:00",
    ]


def test_day_of_month_or_day_of_week_when_neither_is_a_star() -> None:
    # robfig: "*/2" is a step, not a star, so odd days OR Mondays (Debian cron would AND).
    assert runs("0 0 */2 * 1", "2026-01-09T12:00:00+00:00", 3) == [
        "2026-01-11T00:00:00+00:00",
        "2026-01-12T00:00:00+00:00",  # a Monday
        "2026-01-13T00:00:00+00:00",
    ]


def test_day_of_month_and_day_of_week_when_one_is_a_star() -> None:
    assert runs("0 0 * * MON", "2026-01-01T00:00:00+00:00", 2) == [
        "2026-01-05T00:00:00+00:00",
        "2026-01-12T00:00:00+00:00",
    ]
    assert runs("0 0 ? JAN 1", "2026-01-01T00:00:00+00:00", 1) == ["2026-01-05T00:00:00+00:00"]


def test_descriptors_and_every() -> None:
    assert runs("@hourly", "2026-01-01T00:10:00+00:00", 1) == ["2026-01-01T01:00:00+00:00"]
    assert runs("@weekly", "2026-01-01T00:00:00+00:00", 1) == ["2026-01-04T00:00:00+00:00"]
    # @every: fixed steps from the given time, truncated to whole seconds.
    assert runs("@every 1h30m", "2026-01-01T00:00:10.5+00:00", 2) == [
        "2026-01-01T01:30:10+00:00",
        "2026-01-01T03:00:10+00:00",
    ]
    assert runs("@every 200ms", "2026-01-01T00:00:00+00:00", 1) == ["2026-01-01T00:00:01+00:00"]


def test_time_zone_prefix_and_zone() -> None:
    assert runs("TZ=Asia/Tokyo 0 9 * * *", "2026-01-01T00:30:00+00:00", 1) == [
        "2026-01-02T00:00:00+00:00"
    ]
    assert runs("0 9 * * *", "2026-01-01T00:30:00+00:00", 1, zoneinfo.ZoneInfo("Asia/Tokyo")) == [
        "2026-01-02T09:00:00+09:00"
    ]


def test_daylight_saving_gap_is_skipped_and_fold_runs_twice() -> None:
    # 2026-03-08 02:30 does not exist in New York; 2026-11-01 01:30 exists twice.
    assert runs("30 2 * * *", "2026-03-07T12:00:00-05:00", 2, NEW_YORK) == [
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]
    assert runs("30 1 * * *", "2026-10-31T12:00:00-04:00", 3, NEW_YORK) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-02T01:30:00-05:00",
    ]
    assert runs("*/30 * * * *", "2026-11-01T01:40:00-04:00", 3, NEW_YORK) == [
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:00:00-05:00",
    ]


def test_never_firing_schedule_has_no_next_time() -> None:
    assert runs("0 0 31 2 *", "2026-01-01T00:00:00+00:00", 1) == ["never"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("@sometimes", "unrecognized descriptor: @sometimes"),
        ("@every 5x", 'failed to parse duration @every 5x: time: invalid duration "5x"'),
    ],
)
def test_bad_schedules_say_what_robfig_says(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        schedule.parse(spec, zone=UTC)
    assert str(info.value) == message


def test_go_durations() -> None:
    assert schedule.parse_go_duration("1h30m") == 5400
    assert schedule.parse_go_duration("1.5s") == 1.5
    assert schedule.parse_go_duration("300ms") == pytest.approx(0.3)
    with pytest.raises(ValueError):
        schedule.parse_go_duration("1d")


def _cronjob(created: str, last: str | None = None, deadline: int | None = None) -> dict:
    cj: dict = {"metadata": {"creationTimestamp": created}, "spec": {}, "status": {}}
    if last:
        cj["status"]["lastScheduleTime"] = last
    if deadline is not None:
        cj["spec"]["startingDeadlineSeconds"] = deadline
    return cj


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_most_recent_due_time_and_missed_count() -> None:
    sched = schedule.parse("*/1 * * * *", zone=UTC)
    cj = _cronjob("2026-01-01T00:00:30Z")
    # Not due yet, then due once, then 150 missed with only the latest run.
    assert (
        timing.most_recent(cj, ts("2026-01-01T00:00:50Z"), sched, with_deadline=True).time is None
    )
    once = timing.most_recent(cj, ts("2026-01-01T00:01:05Z"), sched, with_deadline=True)
    assert (once.time, once.missed) == (ts("2026-01-01T00:01:00Z"), 0)
    many = timing.most_recent(cj, ts("2026-01-01T02:31:10Z"), sched, with_deadline=True)
    assert many.time == ts("2026-01-01T02:31:00Z")
    assert many.missed == 151 > timing.TOO_MANY_MISSED
    # A starting deadline bounds how far back the controller looks.
    bounded = timing.most_recent(
        _cronjob("2026-01-01T00:00:30Z", deadline=200),
        ts("2026-01-01T02:31:10Z"),
        sched,
        with_deadline=True,
    )
    assert bounded.time == ts("2026-01-01T02:31:00Z") and bounded.missed == 4


def test_requeue_for_the_next_due_time_plus_skew() -> None:
    sched = schedule.parse("0 * * * *", zone=UTC)
    cj = _cronjob("2026-01-01T00:00:30Z", last="2026-01-01T01:00:00Z")
    delay = timing.requeue_after(cj, ts("2026-01-01T01:20:00Z"), sched)
    assert delay == pytest.approx(40 * 60 + 0.1)


def test_job_names_carry_the_scheduled_minute() -> None:
    assert (
        timing.job_name("backup", ts("2026-01-01T00:01:00Z"))
        == f"backup-{int(ts('2026-01-01T00:01:00Z')) // 60}"
    )
