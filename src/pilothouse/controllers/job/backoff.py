"""Delays before a Job replaces failed pods (upstream's ``backoff_utils.go``).

After ``n`` consecutive failures (since the last success) new pods wait
``10 s * 2**(n-1)``, at most 10 minutes (upstream's DefaultJobPodFailureBackOff and
MaxJobPodFailureBackOff; its docs still say six), counted from the last failure's
finish. With ``backoffLimitPerIndex`` the count is the index's own, read from the
failure-count annotations of its last failed pod. The records live in memory, as
upstream's: a restarted controller starts them afresh. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.api import meta
from pilothouse.controllers.job import indexes

Obj = dict[str, Any]

DEFAULT_BACKOFF_S = 10.0
MAX_BACKOFF_S = 600.0


def finished_time(pod: Obj) -> float:
    """When a pod finished: its containers' last finish, else Ready=False's transition,
    else its deletion time less the grace period, else its creation."""
    status = pod.get("status") or {}
    md = pod.get("metadata") or {}
    latest: float | None = None
    statuses = status.get("containerStatuses") or []
    for cs in statuses:
        terminated = (cs.get("state") or {}).get("terminated") or {}
        at = meta.parse_time(terminated.get("finishedAt"))
        if at is None:
            latest = None
            break
        latest = at if latest is None else max(latest, at)
    if latest is not None and statuses:
        return latest
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "False":
            at = meta.parse_time(condition.get("lastTransitionTime"))
            if at is not None:
                return at
    deleted = meta.parse_time(md.get("deletionTimestamp"))
    if deleted is not None:
        return deleted - float(md.get("deletionGracePeriodSeconds") or 0)
    return meta.parse_time(md.get("creationTimestamp")) or 0.0


def remaining(failures: int, last_failure: float | None, now: float) -> float:
    """Seconds still to wait before replacing a pod after ``failures`` failures."""
    if failures <= 0 or last_failure is None:
        return 0.0
    delay = min(MAX_BACKOFF_S, DEFAULT_BACKOFF_S * 2.0 ** (failures - 1))
    return max(0.0, delay - (now - last_failure))


def remaining_for_index(last_failed: Obj | None, now: float) -> float:
    if last_failed is None:
        return 0.0
    failures = indexes.absolute_failure_count(last_failed) + 1
    return remaining(failures, finished_time(last_failed), now)


@dataclass(frozen=True)
class Record:
    failures_after_last_success: int = 0
    last_failure: float | None = None


class Store:
    """Back-off records by job key."""

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}

    def get(self, key: str) -> Record:
        return self._records.get(key, Record())

    def update(self, key: str, record: Record) -> None:
        self._records[key] = record

    def remove(self, key: str) -> None:
        self._records.pop(key, None)

    def next_record(self, key: str, succeeded: list[Obj], failed: list[Obj]) -> Record:
        """The record once the newly finished pods are taken into account."""
        old = self.get(key)
        if not failed:
            return Record() if succeeded else old
        failed_at = sorted(finished_time(p) for p in failed)
        if not succeeded:
            return Record(old.failures_after_last_success + len(failed), failed_at[-1])
        last_success = max(finished_time(p) for p in succeeded)
        after = [t for t in failed_at if t > last_success]
        return Record(len(after), after[-1] if after else None)
