"""Cron schedules as a CronJob accepts them (robfig/cron's standard parser).

Five fields (minute hour day-of-month month day-of-week) with ``*``, ``?``, ranges,
steps, lists and month/day names, or a descriptor (``@hourly``, ``@daily``,
``@weekly``, ``@monthly``, ``@yearly``/``@annually``, ``@midnight``,
``@every <duration>``), optionally after ``TZ=``/``CRON_TZ=``. :func:`parse_error`
returns the parser's own error text, which upstream puts in its field error.
"""

from __future__ import annotations

import re
import zoneinfo

from pilothouse.api import intstr

_DESCRIPTORS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (minimum, maximum, names) of each field, in order.
_FIELDS: tuple[tuple[int, int, dict[str, int] | None], ...] = (
    (0, 59, None),
    (0, 23, None),
    (1, 31, None),
    (1, 12, _MONTHS),
    (0, 6, _DAYS),
)
_DURATION_RE = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+\Z")
_TZ_NAME_RE = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}\Z")


def _go_fields(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def _number(text: str, names: dict[str, int] | None) -> int:
    if names is not None and text.lower() in names:
        return names[text.lower()]
    try:
        value = intstr.go_atoi(text)
    except ValueError as exc:
        raise ValueError(f"failed to parse int from {text}: {exc}") from None
    if value < 0:
        raise ValueError(f"negative number ({value}) not allowed: {text}")
    return value


def _range(expr: str, low: int, high: int, names: dict[str, int] | None) -> None:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    if low_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start = _number(low_high[0], names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _number(low_high[1], names)
        else:
            raise ValueError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _number(range_and_step[1], None)
        if len(low_high) == 1:
            end = high
    else:
        raise ValueError(f"too many slashes: {expr}")
    if start < low:
        raise ValueError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise ValueError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ValueError(f"step of range should be a positive number: {expr}")


def load_location(name: str) -> str | None:
    """None if Go's ``time.LoadLocation`` would load ``name``, else its error text."""
    if name in ("", "UTC", "Local"):
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, IsADirectoryError, OSError):
        return f"unknown time zone {name}"
    return None


def parse_error(spec: str) -> str | None:
    """None when ``spec`` is a valid schedule, else the parser's error message."""
    if not spec:
        return "empty spec string"
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        zone = spec[spec.index("=") + 1 : space if space >= 0 else len(spec)]
        problem = load_location(zone)
        if problem:
            return f"provided bad location {zone}: {problem}"
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return None
        if spec.startswith("@every "):
            duration = spec[len("@every ") :]
            if not _DURATION_RE.match(duration) and duration != "0":
                return f'failed to parse duration {spec}: time: invalid duration "{duration}"'
            return None
        return f"unrecognized descriptor: {spec}"
    fields = spec.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: {_go_fields(fields)}"
    try:
        for text, (low, high, names) in zip(fields, _FIELDS, strict=True):
            for expr in text.split(","):
                _range(expr, low, high, names)
    except ValueError as exc:
        return str(exc)
    return None


def time_zone_error(zone: str) -> str | None:
    """The problem with a CronJob's ``spec.timeZone``, worded as upstream words it."""
    if not zone:
        return "timeZone must be nil or non-empty string"
    for part in zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_NAME_RE.match(part):
            return f"unknown time zone {zone}"
    if zone.lower() == "local":
        return (
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
        )
    return load_location(zone)
