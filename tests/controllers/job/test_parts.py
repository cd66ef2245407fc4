"""The Job controller's pure parts: index intervals, failure and success policies, back-off."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import meta
from pilothouse.controllers.job import backoff, indexes, policy

T0 = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "completions", "shown", "total"),
    [
        ("", 5, "", 0),
        ("0-2,4", 10, "0-2,4", 4),
        ("1,2", 10, "1,2", 2),
        ("0,1,2,3", 10, "0-3", 4),
        ("3-9", 5, "3,4", 2),
        ("x,2", 5, "2", 1),
    ],
)
def test_intervals_parse_and_print_as_upstream(
    text: str, completions: int, shown: str, total: int
) -> None:
    iv = indexes.Intervals.parse(text, completions)
    assert (str(iv), iv.total()) == (shown, total)


def test_intervals_merge_and_membership() -> None:
    iv = indexes.Intervals.parse("0-2,7", 10).with_indexes([3, 5, 8])
    assert str(iv) == "0-3,5,7,8"
    assert [i for i in range(10) if iv.has(i)] == [0, 1, 2, 3, 5, 7, 8]
    assert indexes.first_pending(3, 10, iv) == [4, 6, 9]
    assert indexes.first_pending(5, 10, iv) == [4, 6, 9]


def test_generate_name_keeps_room_for_the_random_suffix() -> None:
    assert indexes.generate_name("job", 7) == "job-7-"
    long = indexes.generate_name("j" * 70, 123)
    assert long.endswith("-123-") and len(long) == meta.MAX_GENERATED_NAME_LENGTH


def failed_pod(*codes: int, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "status": {
            "phase": "Failed",
            "conditions": conditions or [],
            "containerStatuses": [
                {"name": f"c{i}", "state": {"terminated": {"exitCode": code}}}
                for i, code in enumerate(codes)
            ],
        },
    }


def test_pod_failure_policy_rules_in_order() -> None:
    rules = {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "c1", "operator": "In", "values": [3]},
            },
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [3]}},
        ]
    }
    assert policy.match_pod_failure_policy(rules, failed_pod(0, 3)) == policy.Match(
        "FailJob",
        True,
        "Container c1 for pod ns/p failed with exit code 3 matching FailJob rule at index 1",
    )
    assert policy.match_pod_failure_policy(rules, failed_pod(3)).action is None  # c0 is not c1
    assert policy.match_pod_failure_policy(rules, failed_pod(9)).action == "Count"
    disrupted = failed_pod(3, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    assert policy.match_pod_failure_policy(rules, disrupted) == policy.Match("Ignore", False)
    assert policy.match_pod_failure_policy(None, failed_pod(1)) == policy.NO_MATCH


def test_success_policy() -> None:
    rules = {"rules": [{"succeededIndexes": "0-2", "succeededCount": 2}, {"succeededCount": 5}]}
    assert (
        policy.match_success_policy(rules, 10, indexes.Intervals.parse("1,2", 10))
        == "Matched rules at index 0"
    )
    assert (
        policy.match_success_policy(rules, 10, indexes.Intervals.parse("2,5-8", 10))
        == "Matched rules at index 1"
    )
    assert policy.match_success_policy(rules, 10, indexes.Intervals.parse("2,5", 10)) is None


def finished(at: float) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": {
            "containerStatuses": [{"state": {"terminated": {"finishedAt": meta.format_time(at)}}}]
        },
    }


def test_backoff_doubles_from_10s_to_10_minutes() -> None:
    assert backoff.remaining(1, T0, T0) == 10
    assert backoff.remaining(2, T0, T0 + 5) == 15
    assert backoff.remaining(4, T0, T0) == 80
    assert backoff.remaining(20, T0, T0) == 600
    assert backoff.remaining(1, T0, T0 + 11) == 0


def test_backoff_record_counts_failures_since_the_last_success() -> None:
    store = backoff.Store()
    r1 = store.next_record("k", [], [finished(T0), finished(T0 + 5)])
    assert r1 == backoff.Record(2, T0 + 5)
    store.update("k", r1)
    r2 = store.next_record("k", [finished(T0 + 10)], [finished(T0 + 8), finished(T0 + 12)])
    assert r2 == backoff.Record(1, T0 + 12)
    assert store.next_record("k", [finished(T0 + 20)], []) == backoff.Record()
