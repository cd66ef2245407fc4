"""Ages: apimachinery's HumanDuration cases and printers' translateTimestampSince."""

from __future__ import annotations

import pytest

from pilothouse.apiserver.table import timefmt

SECOND = 1.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 24 * HOUR
MS = 0.001


@pytest.mark.parametrize(
    ("seconds", "want"),
    [
        # TestHumanDuration
        (SECOND, "1s"),
        (70 * SECOND, "70s"),
        (190 * SECOND, "3m10s"),
        (70 * MINUTE, "70m"),
        (47 * HOUR, "47h"),
        (49 * HOUR, "2d1h"),
        ((8 * 24 + 2) * HOUR, "8d"),
        (367 * DAY, "367d"),
        ((365 * 2 * 24 + 25) * HOUR, "2y1d"),
        ((365 * 8 * 24 + 2) * HOUR, "8y"),
        # TestHumanDurationBoundaries
        (-2 * SECOND, "<invalid>"),
        (-2 * SECOND + 1e-9, "0s"),
        (0, "0s"),
        (SECOND - MS, "0s"),
        (2 * MINUTE - MS, "119s"),
        (2 * MINUTE, "2m"),
        (2 * MINUTE + SECOND, "2m1s"),
        (10 * MINUTE - MS, "9m59s"),
        (10 * MINUTE, "10m"),
        (10 * MINUTE + SECOND, "10m"),
        (3 * HOUR - MS, "179m"),
        (3 * HOUR, "3h"),
        (3 * HOUR + MINUTE, "3h1m"),
        (8 * HOUR - MS, "7h59m"),
        (8 * HOUR, "8h"),
        (8 * HOUR + 59 * MINUTE, "8h"),
        (2 * DAY - MS, "47h"),
        (2 * DAY, "2d"),
        (2 * DAY + HOUR, "2d1h"),
        (8 * DAY - MS, "7d23h"),
        (8 * DAY, "8d"),
        (8 * DAY + 23 * HOUR, "8d"),
        (2 * 365 * DAY - MS, "729d"),
        (2 * 365 * DAY, "2y"),
        (2 * 365 * DAY + 23 * HOUR + 59 * MINUTE, "2y"),
        (2 * 365 * DAY + DAY - MS, "2y"),
        (2 * 365 * DAY + DAY, "2y1d"),
        (3 * 365 * DAY, "3y"),
        (8 * 365 * DAY - MS, "7y364d"),
        (8 * 365 * DAY, "8y"),
        (8 * 365 * DAY + 364 * DAY, "8y"),
        (9 * 365 * DAY, "9y"),
    ],
)
def test_human_duration(seconds: float, want: str) -> None:
    assert timefmt.human_duration(seconds) == want


NOW = 1_764_088_762.0  # 2025-11-25T16:39:22Z


@pytest.mark.parametrize(
    ("timestamp", "want"),
    [
        ("2025-11-25T16:39:25Z", "<invalid>"),  # 3s in the future
        ("2025-11-25T16:39:23Z", "0s"),  # 1s in the future: "almost now"
        ("2025-11-25T16:39:22Z", "0s"),
        (None, "<unknown>"),
        ("", "<unknown>"),
        ("0001-01-01T00:00:00Z", "<unknown>"),
        ("2025-11-25T16:38:52Z", "30s"),
        ("2025-11-25T16:34:22Z", "5m"),
        ("2025-11-25T14:59:22Z", "100m"),
        ("2025-11-23T16:39:22Z", "2d"),
        ("2025-08-27T16:39:22Z", "90d"),
        ("2025-11-25T16:39:21.500000Z", "0s"),  # MicroTime
        ("2025-11-25T16:36:21.123456Z", "3m"),
        ("2025-11-25T16:36:21.123456789Z", "3m"),  # nanoseconds, as some clients send
        ("2025-11-25T17:39:22+01:00", "0s"),
    ],
)
def test_since(timestamp: str | None, want: str) -> None:
    assert timefmt.since(timestamp, NOW) == want


def test_parse_time_rejects_garbage() -> None:
    assert timefmt.parse_time("yesterday") is None
    assert timefmt.parse_time(12) is None
    assert timefmt.parse_time("2025-11-25T16:39:22Z") == NOW


@pytest.mark.parametrize(
    ("timestamp", "want"),
    [
        ("2025-11-25T16:39:22Z", "2025-11-25T16:39:22Z"),
        ("2025-11-25T17:39:22+01:00", "2025-11-25T16:39:22Z"),
        ("2025-11-25T16:39:22.987654Z", "2025-11-25T16:39:22Z"),
        (None, "0001-01-01T00:00:00Z"),
    ],
)
def test_rfc3339(timestamp: str | None, want: str) -> None:
    assert timefmt.rfc3339(timestamp) == want
