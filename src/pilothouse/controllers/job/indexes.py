"""Completion indexes of Indexed Jobs (upstream's ``indexed_job_utils.go``).

Sets of indexes are kept as ordered, non-overlapping, non-adjacent intervals and
written as upstream writes ``status.completedIndexes`` and ``status.failedIndexes``:
``"1,3-5,7"`` (two neighbours are written ``"4,5"``). A pod's index is its
``batch.kubernetes.io/job-completion-index`` annotation. No I/O here.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from pilothouse.api import meta

Obj = dict[str, Any]

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
UNKNOWN = -1
_MAX_INT32 = 2**31 - 1

Interval = tuple[int, int]


class Intervals:
    """An ordered set of indexes, as intervals ``(first, last)``."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Interval] = ()) -> None:
        self.items: list[Interval] = list(items)

    @classmethod
    def parse(cls, text: str | None, completions: int) -> Intervals:
        """Upstream's parseIndexesFromString: bad intervals are skipped, indexes
        at or above ``completions`` dropped."""
        out: list[Interval] = []
        for part in (text or "").split(",") if text else ():
            bounds = part.split("-")
            try:
                first = int(bounds[0])
                last = int(bounds[1]) if len(bounds) > 1 else first
            except ValueError:
                continue
            if first >= completions:
                break
            last = min(last, completions - 1)
            if out and out[-1][1] == first - 1:
                out[-1] = (out[-1][0], last)
            else:
                out.append((first, last))
        return cls(out)

    def __str__(self) -> str:
        parts = []
        for first, last in self.items:
            if last == first:
                parts.append(str(first))
            elif last == first + 1:
                parts.append(f"{first},{last}")
            else:
                parts.append(f"{first}-{last}")
        return ",".join(parts)

    def __repr__(self) -> str:
        return f"Intervals({self!s})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Intervals) and self.items == other.items

    def __bool__(self) -> bool:
        return bool(self.items)

    def total(self) -> int:
        return sum(last - first + 1 for first, last in self.items)

    def has(self, index: int) -> bool:
        pos = bisect.bisect_left(self.items, index, key=lambda iv: iv[1])
        return pos < len(self.items) and self.items[pos][0] <= index

    def merge(self, other: Intervals) -> Intervals:
        out: list[Interval] = []
        for first, last in sorted(self.items + other.items):
            if out and first <= out[-1][1] + 1:
                if last > out[-1][1]:
                    out[-1] = (out[-1][0], last)
            else:
                out.append((first, last))
        return Intervals(out)

    def with_indexes(self, indexes: Iterable[int]) -> Intervals:
        return self.merge(Intervals((i, i) for i in sorted(set(indexes))))

    def indexes(self) -> list[int]:
        return [i for first, last in self.items for i in range(first, last + 1)]


def completion_index(pod: Obj) -> int:
    """The pod's completion index, or UNKNOWN when it has none (or a bad one)."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX)
    if value is None:
        return UNKNOWN
    try:
        index = int(value)
    except ValueError:
        return UNKNOWN
    return index if index >= 0 else UNKNOWN


def indexes_of(pods: Iterable[Obj]) -> set[int]:
    return {i for i in (completion_index(p) for p in pods) if i != UNKNOWN}


def first_pending(count: int, completions: int, not_pending: Intervals) -> list[int]:
    """The first ``count`` indexes below ``completions`` not in ``not_pending``."""
    out: list[int] = []
    candidate = 0
    for first, last in not_pending.items:
        while candidate < completions and len(out) < count and candidate < first:
            out.append(candidate)
            candidate += 1
        candidate = max(candidate, last + 1)
    while candidate < completions and len(out) < count:
        out.append(candidate)
        candidate += 1
    return out


def generate_name(job_name: str, index: int) -> str:
    """``<job>-<index>-``, the job name cut so the whole stays a valid generateName."""
    suffix = f"-{index}-"
    prefix = job_name + suffix
    if len(prefix) > meta.MAX_GENERATED_NAME_LENGTH:
        prefix = job_name[: meta.MAX_GENERATED_NAME_LENGTH - len(suffix)] + suffix
    return prefix


def annotation_count(pod: Obj, key: str) -> int:
    """A per-index failure count annotation; 0 when missing or not a valid int32."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(key)
    if value is None:
        return 0
    try:
        count = int(value)
    except ValueError:
        return 0
    return count if 0 <= count <= _MAX_INT32 else 0


def absolute_failure_count(pod: Obj) -> int:
    return annotation_count(pod, INDEX_FAILURE_COUNT) + annotation_count(
        pod, INDEX_IGNORED_FAILURE_COUNT
    )


def add_index_env(template_spec: Obj) -> None:
    """Give every container ``JOB_COMPLETION_INDEX`` from the pod's index label."""
    ref = {"fieldRef": {"fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}}
    for key in ("initContainers", "containers"):
        for container in template_spec.get(key) or []:
            env = container.setdefault("env", [])
            if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                env.append({"name": COMPLETION_INDEX_ENV, "valueFrom": ref})
