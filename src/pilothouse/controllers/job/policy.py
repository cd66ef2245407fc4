"""A Job's podFailurePolicy and successPolicy (upstream's ``pod_failure_policy.go`` and
``success_policy.go``).

:func:`match_pod_failure_policy` tells, for a failed pod, the first rule it matches
in order: ``FailJob`` (with upstream's message for the Job's condition), ``Ignore``
(not counted against ``backoffLimit``), ``Count`` or ``FailIndex``. A container that
exited 0 never matches an exit-code rule. :func:`match_success_policy` tells whether
an Indexed Job's succeeded indexes meet one of its success rules. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pilothouse.controllers.job import indexes

Obj = dict[str, Any]

FAIL_JOB = "FailJob"
FAIL_INDEX = "FailIndex"
IGNORE = "Ignore"
COUNT = "Count"


@dataclass(frozen=True)
class Match:
    """What the policy says about one failed pod."""

    action: str | None  # the matched rule's action; None when no rule matched
    counts: bool  # counts against backoffLimit (and the index's limit)
    fail_message: str | None = None  # set for FailJob


NO_MATCH = Match(None, True)


def _exit_codes_match(code: int, requirement: Obj) -> bool:
    values = requirement.get("values") or []
    operator = requirement.get("operator")
    if operator == "In":
        return code in values
    if operator == "NotIn":
        return code not in values
    return False


def _matching_container(status: Obj, requirement: Obj) -> tuple[str, int] | None:
    name = requirement.get("containerName")
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            terminated = (cs.get("state") or {}).get("terminated")
            if terminated is None:
                continue  # still terminating: no exit code to match yet
            if name is not None and name != cs.get("name"):
                continue
            code = int(terminated.get("exitCode") or 0)
            if code != 0 and _exit_codes_match(code, requirement):
                return str(cs.get("name", "")), code
    return None


def _matching_condition(status: Obj, patterns: list[Obj]) -> str | None:
    for condition in status.get("conditions") or []:
        for pattern in patterns:
            if condition.get("type") == pattern.get("type") and condition.get(
                "status"
            ) == pattern.get("status", "True"):
                return str(condition.get("type"))
    return None


def match_pod_failure_policy(policy: Obj | None, pod: Obj) -> Match:
    if not policy:
        return NO_MATCH
    status = pod.get("status") or {}
    md = pod.get("metadata") or {}
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            found = _matching_container(status, rule["onExitCodes"])
            if found is None:
                continue
            message = (
                f"Container {found[0]} for pod {md.get('namespace', '')}/{md.get('name', '')} "
                f"failed with exit code {found[1]} matching {action} rule at index {index}"
            )
        elif rule.get("onPodConditions") is not None:
            condition = _matching_condition(status, rule["onPodConditions"])
            if condition is None:
                continue
            message = (
                f"Pod {md.get('namespace', '')}/{md.get('name', '')} has condition {condition} "
                f"matching {action} rule at index {index}"
            )
        else:
            continue
        if action == IGNORE:
            return Match(IGNORE, False)
        if action == COUNT:
            return Match(COUNT, True)
        if action == FAIL_INDEX:
            return Match(FAIL_INDEX, True)
        if action == FAIL_JOB:
            return Match(FAIL_JOB, True, message)
    return NO_MATCH


def _rule_indexes_met(
    rule: indexes.Intervals, succeeded: indexes.Intervals, count: int | None
) -> bool:
    contains = 0
    i = j = 0
    while i < len(rule.items) and j < len(succeeded.items):
        (r_first, r_last), (s_first, s_last) = rule.items[i], succeeded.items[j]
        overlap = min(r_last, s_last) - max(r_first, s_first) + 1
        if overlap > 0:
            contains += overlap
        if s_last < r_last:
            j += 1
        elif s_last > r_last:
            i += 1
        else:
            i += 1
            j += 1
    return contains == rule.total() or (count is not None and contains >= count)


def match_success_policy(
    policy: Obj | None, completions: int, succeeded: indexes.Intervals
) -> str | None:
    """Upstream's message for the SuccessCriteriaMet condition if a rule is met, else None."""
    if not policy or not succeeded:
        return None
    for index, rule in enumerate(policy.get("rules") or []):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = indexes.Intervals.parse(rule["succeededIndexes"], completions)
            if not required:
                continue
            if _rule_indexes_met(required, succeeded, count):
                return f"Matched rules at index {index}"
        elif count is not None and succeeded.total() >= int(count):
            return f"Matched rules at index {index}"
    return None
