"""When a CronJob's schedule next fires, as upstream's robfig/cron computes it.

The expression is checked with :mod:`pilothouse.api.validation.cron` (robfig's standard
parser and its error texts) and evaluated with the ``cronsim`` library over wall-clock
times, keeping robfig's own semantics where cron implementations differ:

* day-of-month and day-of-week: if either field contains a star (``*``/``?``, not
  stepped by more than 1) both must match, otherwise either may. ``cronsim`` follows
  Debian's rule ("starts with ``*``"), so the two fields are rewritten before they are
  handed over (``*/2`` becomes ``1-31/2``; a starred field becomes ``*``);
* time zones and daylight saving: a wall-clock time that does not exist (the hour
  skipped in spring) never fires, and one that exists twice (the hour repeated in
  autumn) fires twice — robfig walks absolute time and sees both;
* ``@every <duration>``: fixed intervals from the given time, whole seconds, at least 1 s;
* descriptors (``@hourly`` … ``@yearly``) and a ``TZ=``/``CRON_TZ=`` prefix;
* no time within five years: no next time.

Without a zone the controller's local time zone applies, as upstream's
kube-controller-manager uses its own. Times are seconds since the epoch. No I/O here
beyond reading the zone database.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

import cronsim

from pilothouse.api.validation import cron as cron_validation

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DAY_RANGES = {2: (1, 31), 4: (0, 6)}
_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000}
_UNITS_NS |= {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_FIVE_YEARS_S = 5 * 366 * 86400.0
_FIVE_YEARS = timedelta(seconds=_FIVE_YEARS_S)
# More than any change of a zone's UTC offset: how far a repeated wall-clock hour reaches.
_MAX_SHIFT = timedelta(hours=3)


class Schedule(Protocol):
    def next(self, after: float) -> float | None:
        """The first time strictly after ``after`` the schedule fires (None: none)."""


def local_zone() -> tzinfo:
    """The process's time zone, as Go's ``time.Local`` finds it (``TZ``, /etc/localtime)."""
    name = os.environ.get("TZ")
    if name is not None:
        name = name.removeprefix(":")
        if name in ("", "UTC"):
            return UTC
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return UTC
    try:
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key="Local")
    except (OSError, ValueError):
        return UTC


def load_zone(name: str) -> tzinfo:
    """Go's time.LoadLocation: "" and "UTC" are UTC, "Local" the process's zone."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return local_zone()
    return zoneinfo.ZoneInfo(name)


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (``1h30m``, ``90s``, ``-1.5h``)."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    if pos != len(body):
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total / 1e9


@dataclass(frozen=True)
class Every:
    """``@every <duration>``: robfig's ConstantDelaySchedule."""

    delay: float

    def next(self, after: float) -> float | None:
        return float(int(after)) + self.delay


def _robfig_day_field(field: str, index: int) -> tuple[str, bool]:
    """One day field rewritten for cronsim, and whether robfig sees a star in it."""
    low, high = _DAY_RANGES[index]
    parts = [("*" + p[1:]) if p.startswith("?") else p for p in field.split(",")]
    starred = False
    for part in parts:
        range_, _, step = part.partition("/")
        if range_ == "*" and (not step or int(step) <= 1):
            starred = True
    if starred:
        return "*", True
    return ",".join(f"{low}-{high}/{p[2:]}" if p.startswith("*/") else p for p in parts), False


def _cronsim_expression(fields: list[str]) -> str:
    out = [("*" + f[1:]) if f.startswith("?") else f for f in fields]
    dom, dom_star = _robfig_day_field(fields[2], 2)
    dow, dow_star = _robfig_day_field(fields[4], 4)
    if not dom_star and not dow_star:
        # Either day may match: cronsim's rule already says so (neither starts with *).
        out[2], out[4] = dom, dow
    else:
        # Both must match: cronsim does so when either field starts with a star.
        out[2] = "*" if dom_star else dom
        out[4] = "*" if dow_star else dow
    return " ".join(out)


class Cron:
    """A five-field expression evaluated in ``zone``."""

    def __init__(self, expression: str, zone: tzinfo) -> None:
        self.expression = expression
        self.zone = zone
        self._fixed = zone is UTC or isinstance(zone, type(UTC))

    def _instants(self, wall: datetime) -> list[float]:
        """The moments a wall-clock time denotes: none in a gap, two in a fold."""
        if self._fixed:
            return [wall.replace(tzinfo=self.zone).timestamp()]
        out: list[float] = []
        for fold in (0, 1):
            ts = wall.replace(tzinfo=self.zone, fold=fold).timestamp()
            back = datetime.fromtimestamp(ts, self.zone).replace(tzinfo=None)
            if back == wall and ts not in out:
                out.append(ts)
        return sorted(out)

    def _near_transition(self, after: float) -> bool:
        """Whether the UTC offset changes within three hours of ``after`` (so ``after``
        may sit in a repeated hour whose earlier wall-clock times are still to come)."""
        if self._fixed:
            return False
        shift = _MAX_SHIFT.total_seconds()
        offsets = {
            datetime.fromtimestamp(t, self.zone).utcoffset()
            for t in (after - shift, after, after + shift)
        }
        return len(offsets) > 1

    def next(self, after: float) -> float | None:
        wall = datetime.fromtimestamp(after, self.zone).replace(tzinfo=None, microsecond=0)
        careful = self._near_transition(after)
        start = wall - _MAX_SHIFT if careful else wall
        limit = after + _FIVE_YEARS_S
        try:
            times = cronsim.CronSim(self.expression, start)
        except cronsim.CronSimError:
            return None  # e.g. "0 0 31 2 *": valid to parse, never fires
        best: float | None = None
        best_wall: datetime | None = None
        try:
            for candidate in times:
                if best_wall is not None and candidate > best_wall + _MAX_SHIFT:
                    break
                for ts in self._instants(candidate):
                    if ts > after and (best is None or ts < best):
                        best, best_wall = ts, candidate
                if best is not None and not careful:
                    break  # later wall-clock times cannot come earlier
                if best is None and candidate > wall + _FIVE_YEARS:
                    return None
        except StopIteration:
            pass
        if best is None or best > limit:
            return None
        return best


def parse(spec: str, *, zone: tzinfo | None = None) -> Schedule:
    """The schedule ``spec`` describes; ValueError with robfig's message if invalid.

    ``zone`` is where five-field expressions are read (default: the local zone); a
    ``TZ=``/``CRON_TZ=`` prefix overrides it."""
    problem = cron_validation.parse_error(spec)
    if problem:
        raise ValueError(problem)
    text = spec.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        name, _, text = text.partition(" ")
        zone = load_zone(name.partition("=")[2])
        text = text.strip()
    if zone is None:
        zone = local_zone()
    if text.startswith("@every "):
        seconds = parse_go_duration(text[len("@every ") :].strip())
        return Every(max(1.0, float(int(seconds))))
    text = _DESCRIPTORS.get(text, text)
    return Cron(_cronsim_expression(text.split()), zone)
