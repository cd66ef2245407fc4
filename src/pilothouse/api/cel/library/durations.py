"""Go's duration strings and RFC 3339 timestamps, as CEL's literals accept them.

``duration('1h30m')`` takes Go's ``time.ParseDuration`` syntax (units ``ns us µs ms s
m h``, fractions, a sign); ``timestamp('…')`` takes RFC 3339. Upstream rejects bad
literals at compile time, so the checker asks these.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import datetime
import re

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MAX_NANOS = (1 << 63) - 1


def parse(text: str) -> int | None:
    """Nanoseconds of a Go duration string, or None when it is not one."""
    if not text:
        return None
    sign = 1
    body = text
    if body[0] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        return None
    total = 0
    pos = 0
    while pos < len(body):
        m = _PART.match(body, pos)
        if m is None:
            return None
        number, unit = m.groups()
        whole, _, frac = number.partition(".")
        scale = _UNITS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // (10 ** len(frac))
        pos = m.end()
    if total > _MAX_NANOS:
        return None
    return sign * total


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(text: str) -> datetime.datetime | None:
    """An RFC 3339 timestamp in UTC, or None."""
    m = _RFC3339.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        tz = datetime.UTC
        if zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            tz = datetime.timezone(
                sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            )
        micros = int((frac or ".0")[1:7].ljust(6, "0"))
        value = datetime.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz
        )
    except ValueError:
        return None
    return value.astimezone(datetime.UTC)
