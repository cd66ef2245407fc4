"""Node affinity and taint matching, one node at a time, with the scheduler's semantics."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api import nodeaffinity

NODE = {"metadata": {"name": "n1", "labels": {"zone": "a", "cores": "8", "gpu": ""}}}


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    }


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


@pytest.mark.parametrize(
    ("pod_spec", "fits"),
    [
        ({}, True),
        ({"nodeSelector": {"zone": "a"}}, True),
        ({"nodeSelector": {"zone": "b"}}, False),
        (affinity(expr("zone", "In", "a", "b")), True),
        (affinity(expr("zone", "NotIn", "a")), False),
        (affinity(expr("missing", "NotIn", "a")), True),
        (affinity(expr("gpu", "Exists")), True),
        (affinity(expr("gpu", "DoesNotExist")), False),
        (affinity(expr("cores", "Gt", "4")), True),
        (affinity(expr("cores", "Lt", "4")), False),
        (affinity(expr("zone", "Gt", "4")), False),  # not a number
        (affinity(expr("cores", "Gt", "x")), False),  # cannot parse: matches nothing
        (
            affinity(
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
            ),
            True,
        ),
        (
            affinity(
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
            ),
            False,
        ),
        (
            affinity(
                {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}]}
            ),
            True,
        ),
        (affinity({}), False),  # an empty term matches nothing
        (affinity({}, expr("zone", "In", "a")), True),  # terms are ORed
        (
            affinity(
                {
                    **expr("zone", "In", "a"),
                    "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}],
                }
            ),
            False,
        ),  # within a term: ANDed
    ],
)
def test_required_node_affinity(pod_spec: dict[str, Any], fits: bool) -> None:
    assert nodeaffinity.required_node_affinity_matches(pod_spec, NODE) is fits


def test_tolerations() -> None:
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    assert nodeaffinity.tolerates({"key": "dedicated", "value": "db"}, taint)
    assert nodeaffinity.tolerates(
        {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}, taint
    )
    assert nodeaffinity.tolerates({"operator": "Exists"}, taint)
    assert not nodeaffinity.tolerates({"key": "dedicated", "value": "web"}, taint)
    assert not nodeaffinity.tolerates(
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, taint
    )
    evict = {"key": "evict", "effect": "NoExecute"}
    found = nodeaffinity.find_untolerated_taint(
        [taint, evict], [{"operator": "Exists", "key": "dedicated"}], lambda t: True
    )
    assert found == evict
    assert (
        nodeaffinity.find_untolerated_taint([taint], [], lambda t: t["effect"] == "NoExecute")
        is None
    )
    assert nodeaffinity.matches_toleration(
        {"key": "a", "operator": "Exists"}, {"key": "a", "operator": "Exists"}
    )
    assert not nodeaffinity.matches_toleration({"key": "a"}, {"key": "a", "operator": "Equal"})
