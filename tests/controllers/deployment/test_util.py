"""Deployment arithmetic: fenceposts, proportions, revisions, annotations."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.controllers.deployment import util


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable down
        ("25%", "25%", 3, (1, 0)),
        (2, 1, 10, (2, 1)),
        (0, "10%", 5, (0, 1)),  # both resolve to zero: one may be unavailable
        ("0%", 0, 10, (0, 1)),
        ("50%", None, 5, (3, 0)),
    ],
)
def test_resolve_fenceposts(
    surge: Any, unavailable: Any, desired: int, expected: tuple[int, int]
) -> None:
    assert util.resolve_fenceposts(surge, unavailable, desired) == expected


def _d(
    replicas: int, surge: Any = "25%", unavailable: Any = "25%", kind: str = "RollingUpdate"
) -> dict[str, Any]:
    strategy: dict[str, Any] = {"type": kind}
    if kind == "RollingUpdate":
        strategy["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "d"}, "spec": {"replicas": replicas, "strategy": strategy}}


def test_max_unavailable_is_capped_and_zero_for_recreate() -> None:
    assert util.max_unavailable(_d(2, 0, 5)) == 2
    assert util.max_unavailable(_d(0)) == 0
    assert util.max_unavailable(_d(4, kind="Recreate")) == 0
    assert util.max_surge(_d(4, kind="Recreate")) == 0


def _rs(
    name: str,
    replicas: int,
    revision: str | None = None,
    created: str = "2026-01-01T00:00:00Z",
    **ann: str,
) -> dict[str, Any]:
    annotations = dict(ann)
    if revision is not None:
        annotations[util.REVISION_ANNOTATION] = revision
    return {
        "metadata": {
            "name": name,
            "uid": name,
            "creationTimestamp": created,
            "annotations": annotations,
        },
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"labels": {"app": "x", "pod-template-hash": name}}},
        },
    }


def test_revisions_and_history() -> None:
    sets = [_rs("a", 0, "1"), _rs("b", 0, "3"), _rs("c", 1, "2"), _rs("bad", 0, "x")]
    assert util.max_revision(sets) == 3
    assert util.last_revision(sets) == 2
    rs = _rs("a", 0, "1")
    d = {
        "metadata": {
            "name": "d",
            "annotations": {
                "kubernetes.io/change-cause": "undo",
                util.REVISION_ANNOTATION: "2",
                util.LAST_APPLIED_ANNOTATION: "{}",
            },
        },
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"}},
    }
    assert util.set_new_replica_set_annotations(d, rs, "3", exists=True)
    ann = rs["metadata"]["annotations"]
    assert ann[util.REVISION_ANNOTATION] == "3" and ann[util.REVISION_HISTORY_ANNOTATION] == "1"
    assert ann["kubernetes.io/change-cause"] == "undo" and util.LAST_APPLIED_ANNOTATION not in ann
    assert util.set_new_replica_set_annotations(d, rs, "5", exists=True)
    assert rs["metadata"]["annotations"][util.REVISION_HISTORY_ANNOTATION] == "1,3"
    assert not util.set_new_replica_set_annotations(d, rs, "4", exists=True)  # never lowered


def test_new_replica_set_ignores_the_hash_label_and_prefers_the_oldest() -> None:
    d = {"metadata": {"name": "d"}, "spec": {"template": {"metadata": {"labels": {"app": "x"}}}}}
    young = _rs("young", 1, created="2026-01-02T00:00:00Z")
    old = _rs("old", 1, created="2026-01-01T00:00:00Z")
    other = _rs("other", 1)
    other["spec"]["template"]["metadata"]["labels"]["app"] = "y"
    assert util.find_new_replica_set(d, [young, other, old]) is old
    empty = _rs("empty", 0)
    empty["spec"]["template"]["metadata"]["labels"]["app"] = "z"
    required, everything = util.find_old_replica_sets(d, [young, other, old, empty])
    assert [r["metadata"]["name"] for r in required] == ["young", "other"]
    assert len(everything) == 3


def test_proportion_rounds_half_away_from_zero() -> None:
    d = _d(20, 3, 2)
    rs = _rs("a", 5, **{util.MAX_REPLICAS_ANNOTATION: "13"})
    assert util.proportion(rs, d, 10, 0) == 4  # 5*23/13 = 8.85 → 9
    assert util.proportion(rs, d, 2, 0) == 2  # capped by what is left to add
    down = _d(5, 3, 2)
    assert util.proportion(rs, down, -5, 0) == -2  # 5*8/13 = 3.08 → 3


def test_conditions_keep_transition_time_and_move_last() -> None:
    st: dict[str, Any] = {}
    util.set_condition(st, util.new_condition("Progressing", "True", "A", "m", 100.0))
    util.set_condition(st, util.new_condition("Available", "True", "B", "m", 100.0))
    util.set_condition(st, util.new_condition("Progressing", "True", "C", "m2", 200.0))
    assert [c["type"] for c in st["conditions"]] == ["Available", "Progressing"]
    prog = st["conditions"][1]
    assert (
        prog["lastTransitionTime"] == "1970-01-01T00:01:40Z"
        and prog["lastUpdateTime"] == "1970-01-01T00:03:20Z"
    )
