"""CronJob schedules: robfig/cron's standard parser and its error messages."""

from __future__ import annotations

import pytest

from pilothouse.api.validation import cron


@pytest.mark.parametrize(
    "spec",
    [
        "* * * * *",
        "*/5 * * * *",
        "0 0 1 1 *",
        "0 9-17 * * mon-fri",
        "15,45 */2 1-15/3 JAN,jul SUN",
        "? ? ? ? ?",
        "@hourly",
        "@daily",
        "@midnight",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@every 1h30m",
        "TZ=UTC 0 * * * *",
        "CRON_TZ=Europe/Paris 0 12 * * *",
    ],
)
def test_valid_schedules(spec: str) -> None:
    assert cron.parse_error(spec) is None


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("", "empty spec string"),
        ("foo", "expected exactly 5 fields, found 1: [foo]"),
        ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("* 24 * * *", "end of range (24) above maximum (23): 24"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("a * * * *", 'failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax'),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("1/2/3 * * * *", "too many slashes: 1/2/3"),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("@every soon", 'failed to parse duration @every soon: time: invalid duration "soon"'),
        (
            "TZ=Mars/Olympus 0 * * * *",
            "provided bad location Mars/Olympus: unknown time zone Mars/Olympus",
        ),
    ],
)
def test_invalid_schedules(spec: str, error: str) -> None:
    assert cron.parse_error(spec) == error


@pytest.mark.parametrize(
    ("zone", "error"),
    [
        ("Europe/Berlin", None),
        ("UTC", None),
        ("", "timeZone must be nil or non-empty string"),
        (
            "Local",
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ),
        ("../etc/passwd", "unknown time zone ../etc/passwd"),
        ("Mars/Phobos", "unknown time zone Mars/Phobos"),
    ],
)
def test_time_zones(zone: str, error: str | None) -> None:
    assert cron.time_zone_error(zone) == error
