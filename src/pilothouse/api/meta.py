"""Object metadata helpers: timestamps, uids, generated names, copies.

Kubernetes writes ``metav1.Time`` as RFC 3339 with second precision
(``2026-11-25T16:39:22Z``) and ``metav1.MicroTime`` with microseconds
(``2026-11-25T16:39:22.123456Z``). No I/O here.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

Obj = dict[str, Any]

# Upstream's generateName alphabet: no vowels (no accidental words), no
# confusable characters (SimpleNameGenerator in apiserver/pkg/storage/names).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_RANDOM_LENGTH = 5
MAX_GENERATED_NAME_LENGTH = 63 - _RANDOM_LENGTH


def format_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def format_micro_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> str:
    return format_time(time.time())


def now_micro() -> str:
    return format_micro_time(time.time())


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp; None if absent or bad."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(base: str) -> str:
    """``base`` plus five random characters, trimmed as upstream trims it."""
    if len(base) > MAX_GENERATED_NAME_LENGTH:
        base = base[:MAX_GENERATED_NAME_LENGTH]
    suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return base + suffix


def deep_copy(obj: Obj) -> Obj:
    """A deep copy of a JSON-shaped object (faster than copy.deepcopy)."""
    result: Obj = orjson.loads(orjson.dumps(obj))
    return result


def namespaced_name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))
