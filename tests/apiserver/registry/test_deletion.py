"""The deletion planner against upstream's BeforeDelete and
updateForGracefulDeletionAndFinalizers rules."""

from __future__ import annotations

from typing import Any

from pilothouse.api import meta
from pilothouse.apiserver.registry import deletion
from pilothouse.apiserver.registry.deletion import Options, plan

NOW = 1_800_000_000.0


def obj(**md: Any) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": "p", "uid": "u", **md}}


def test_plain_objects_go_at_once() -> None:
    assert plan(obj(), Options(), grace=None, now=NOW).remove


def test_finalizers_mark_with_a_zero_grace_and_bump_the_generation() -> None:
    p = plan(obj(finalizers=["x"], generation=3), Options(), grace=None, now=NOW)
    assert not p.remove and p.obj is not None
    md = p.obj["metadata"]
    assert md["deletionTimestamp"] == meta.format_time(NOW)
    assert md["deletionGracePeriodSeconds"] == 0
    assert md["generation"] == 4
    # Again: nothing changes (no write), the object is answered as it is.
    again = plan(p.obj, Options(), grace=None, now=NOW + 5)
    assert not again.remove and again.obj is None


def test_default_policy_orphans_unless_the_request_or_the_object_says_otherwise() -> None:
    orphaning = plan(obj(), Options(), grace=None, now=NOW, default_policy="Orphan")
    assert orphaning.obj is not None and orphaning.obj["metadata"]["finalizers"] == ["orphan"]
    assert plan(
        obj(),
        Options(propagation_policy="Background"),
        grace=None,
        now=NOW,
        default_policy="Orphan",
    ).remove
    assert plan(
        obj(), Options(orphan_dependents=False), grace=None, now=NOW, default_policy="Orphan"
    ).remove
    # An object already marked for foreground deletion keeps that over the default.
    fg = plan(obj(finalizers=["foregroundDeletion"]), Options(), grace=None, now=NOW)
    assert fg.obj is not None and fg.obj["metadata"]["finalizers"] == ["foregroundDeletion"]
    fg = plan(
        obj(finalizers=["foregroundDeletion"]),
        Options(),
        grace=None,
        now=NOW,
        default_policy="Orphan",
    )
    assert fg.obj is not None and fg.obj["metadata"]["finalizers"] == ["foregroundDeletion"]


def test_propagation_policies_replace_each_others_finalizers() -> None:
    assert deletion.gc_finalizers(["a", "orphan"], Options(propagation_policy="Foreground")) == [
        "a",
        "foregroundDeletion",
    ]
    assert deletion.gc_finalizers(["orphan", "a"], Options(propagation_policy="Background")) == [
        "a"
    ]
    same = ["a", "orphan"]
    assert deletion.gc_finalizers(same, Options()) is same


def test_graceful_deletion_and_shortening_from_the_start() -> None:
    first = plan(obj(), Options(), grace=30, now=NOW)
    assert first.obj is not None
    md = first.obj["metadata"]
    assert md["deletionGracePeriodSeconds"] == 30
    assert md["deletionTimestamp"] == meta.format_time(NOW + 30)
    # Ten seconds later a DELETE asking for 5 s: counted from when deletion started.
    shorter = plan(first.obj, Options(grace_period_seconds=5), grace=5, now=NOW + 10)
    assert shorter.obj is not None
    assert shorter.obj["metadata"]["deletionTimestamp"] == meta.format_time(NOW + 5)
    assert shorter.obj["metadata"]["deletionGracePeriodSeconds"] == 5
    # Not shorter, or no period asked: nothing changes, not even finalizers.
    assert plan(first.obj, Options(grace_period_seconds=60), grace=60, now=NOW).obj is None
    untouched = plan(first.obj, Options(propagation_policy="Orphan"), grace=30, now=NOW)
    assert not untouched.remove and untouched.obj is None
    # A final zero removes it.
    assert plan(first.obj, Options(grace_period_seconds=0), grace=0, now=NOW + 1).remove


def test_negative_periods_mean_one_second_and_zero_deletes_now() -> None:
    first = plan(obj(), Options(), grace=30, now=NOW)
    assert first.obj is not None
    neg = plan(first.obj, Options(grace_period_seconds=-5), grace=1, now=NOW)
    assert neg.obj is not None and neg.obj["metadata"]["deletionGracePeriodSeconds"] == 1
    assert plan(obj(), Options(grace_period_seconds=0), grace=0, now=NOW).remove
    # Graceful zero with a finalizer: marked, kept.
    held = plan(obj(finalizers=["x"]), Options(), grace=0, now=NOW)
    assert held.obj is not None and held.obj["metadata"]["deletionGracePeriodSeconds"] == 0


def test_other_finalizers_hold_the_object() -> None:
    ns = plan(obj(), Options(), grace=None, now=NOW, other_finalizers=True)
    assert not ns.remove and ns.obj is not None
