"""Ages as kubectl shows them: ``HumanDuration`` and timestamp parsing.

``human_duration`` follows apimachinery's ``duration.HumanDuration`` (two to
three significant figures: ``45s``, ``5m30s``, ``100m``, ``3h20m``, ``2d4h``,
``90d``, ``2y30d``); ``since`` is the printers' ``translateTimestampSince``.
Go truncates durations toward zero when it takes their seconds, and so do we.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

UNKNOWN = "<unknown>"


def parse_time(value: Any) -> float | None:
    """A unix timestamp from an RFC 3339 string; None for a missing or zero time.

    Handles ``metav1.Time`` (``2026-11-25T16:39:22Z``) and ``MicroTime``
    (fractional seconds). Go's zero time serialises as null, but a literal
    ``0001-01-01T00:00:00Z`` is zero too (``IsZero``).
    """
    if not value or not isinstance(value, str):
        return None
    if value.startswith("0001-01-01T00:00:00"):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def human_duration(seconds_elapsed: float) -> str:
    """Format a duration given in seconds, like Go's ``duration.HumanDuration``."""
    seconds = int(seconds_elapsed)  # truncates toward zero, as Go's int() does
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: float) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``<unknown>`` if unset."""
    then = parse_time(value)
    if then is None:
        return UNKNOWN
    return human_duration(now - then)


def rfc3339(value: Any) -> str:
    """A timestamp re-rendered as Go's ``Time.UTC().Format(time.RFC3339)``."""
    if isinstance(value, str) and len(value) == 20 and value.endswith("Z"):
        return value  # already in that form; the common case
    then = parse_time(value)
    if then is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(int(then // 1), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
