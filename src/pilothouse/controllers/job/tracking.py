"""Counting finished pods exactly once (upstream's ``tracking_utils.go`` and the
``batch.kubernetes.io/job-tracking`` finalizer).

Every pod a Job creates carries the tracking finalizer, so it cannot disappear
before the controller has counted it. A finished pod is first recorded by uid in
``status.uncountedTerminatedPods`` (one status write), then its finalizer is
removed, then — once the pod no longer has the finalizer — it moves from the
uncounted lists into ``status.succeeded``/``status.failed``. A crash between any
two steps repeats no count and loses none.

:class:`FinalizerExpectations` remembers, per Job, the pods whose finalizer
removal was sent but not yet seen in the informer, so a sync on a stale cache does
not count them again. It is only touched from the controller's event loop.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

FINALIZER = "batch.kubernetes.io/job-tracking"


def has_finalizer(pod: Obj) -> bool:
    return FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def remove_finalizer_patch() -> Obj:
    """A strategic merge patch that drops the tracking finalizer and nothing else."""
    return {"metadata": {"$deleteFromPrimitiveList/finalizers": [FINALIZER]}}


def uncounted(status: Obj) -> Obj:
    """``status.uncountedTerminatedPods``, made a dict with both lists present (in place:
    later calls return the same lists)."""
    lists = status.get("uncountedTerminatedPods")
    if not isinstance(lists, dict):
        lists = status["uncountedTerminatedPods"] = {}
    for field in ("succeeded", "failed"):
        if not isinstance(lists.get(field), list):
            lists[field] = []
    return lists


def clean_uncounted(status: Obj, with_finalizer: set[str]) -> bool:
    """Move uids whose pods lost the finalizer from the uncounted lists to the
    counters. Returns whether the status changed."""
    lists = uncounted(status)
    changed = False
    for field in ("succeeded", "failed"):
        kept = [uid for uid in lists[field] if uid in with_finalizer]
        if len(kept) != len(lists[field]):
            status[field] = int(status.get(field) or 0) + len(lists[field]) - len(kept)
            lists[field] = kept
            changed = True
    return changed


def compact(status: Obj) -> Obj:
    """The status as upstream serialises it: empty counters and lists omitted."""
    out = dict(status)
    for key in ("active", "succeeded", "failed"):
        if not out.get(key):
            out.pop(key, None)
    if not out.get("completedIndexes"):
        out.pop("completedIndexes", None)
    lists = out.get("uncountedTerminatedPods")
    if isinstance(lists, dict):
        out["uncountedTerminatedPods"] = {k: v for k, v in lists.items() if v}
    if not out.get("conditions"):
        out.pop("conditions", None)
    return out


class FinalizerExpectations:
    """Pod uids whose finalizer removal is expected, per Job key."""

    def __init__(self) -> None:
        self._by_job: dict[str, set[str]] = {}

    def expect_removed(self, job_key: str, uids: list[str]) -> None:
        self._by_job.setdefault(job_key, set()).update(uids)

    def removal_observed(self, job_key: str, uid: str) -> None:
        uids = self._by_job.get(job_key)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self._by_job[job_key]

    def expected(self, job_key: str) -> set[str]:
        return set(self._by_job.get(job_key, ()))

    def forget(self, job_key: str) -> None:
        self._by_job.pop(job_key, None)
