"""A ReplicaSet's pods counted from events (controllers/ownedpods.py) against a recount.

The counts a sync reads must be exactly what upstream's walk over every pod of the set
would find; the property test drives random pod changes through an indexer, as the
informer does, and compares after every step.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pilothouse.api import selectors
from pilothouse.client import lister
from pilothouse.controllers import ownedpods, podcontrol

Obj = dict[str, Any]
RS_UID = "rs-uid"
OTHER_UID = "other-uid"
NOW = 1_767_268_800.0  # 2026-01-01T12:00:00Z


def replica_set(
    *, uid: str = RS_UID, app: str = "web", extra_label: str = "", min_ready: int = 0
) -> Obj:
    labels = {"app": app, **({"tier": extra_label} if extra_label else {})}
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": uid},
        "spec": {
            "selector": {"matchLabels": {"app": app}},
            "minReadySeconds": min_ready,
            "template": {"metadata": {"labels": labels}},
        },
    }


def view_of(rs: Obj) -> ownedpods.View:
    spec = rs["spec"]
    return ownedpods.View(
        key=ownedpods.view_key(rs),
        selector=selectors.from_label_selector_dict(spec["selector"]),
        template_labels=spec["template"]["metadata"]["labels"],
        min_ready=bool(spec.get("minReadySeconds")),
    )


def pod(
    name: str,
    *,
    owner: str | None = RS_UID,
    labels: dict[str, str] | None = None,
    ready_at: str | None = None,
    phase: str = "Running",
    deleting: bool = False,
    rv: int = 1,
) -> Obj:
    md: Obj = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "resourceVersion": str(rv),
        "labels": labels if labels is not None else {"app": "web"},
    }
    if owner is not None:
        md["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "x",
                "uid": owner,
                "controller": True,
            }
        ]
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T11:00:00Z"
    conds = (
        [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}] if ready_at else []
    )
    return {"metadata": md, "status": {"phase": phase, "conditions": conds}}


class Cache:
    """An indexer fed as the informer feeds it, with OwnedPods observing each change."""

    def __init__(self) -> None:
        self.indexer = lister.Indexer(
            {
                lister.OWNER_UID_INDEX: lister.controller_uid_index,
                lister.ORPHAN_INDEX: lister.orphan_index,
            }
        )
        self.owned = ownedpods.OwnedPods(self.indexer)

    def put(self, obj: Obj) -> None:
        prev = self.indexer.upsert(lister.key_of(obj), obj)
        self.owned.observe(prev, obj)

    def delete(self, key: str) -> None:
        prev = self.indexer.delete(key)
        if prev is not None:
            self.owned.observe(prev, None)

    def group(self, rs: Obj) -> ownedpods.Group:
        return self.owned.group(rs["metadata"]["uid"], ownedpods.view_key(rs), lambda: view_of(rs))


def recount(cache: Cache, rs: Obj, now: float) -> tuple[int, int, int, int, set[str]]:
    """Upstream's way: every pod the set controls, counted from scratch."""
    spec = rs["spec"]
    selector = selectors.from_label_selector_dict(spec["selector"])
    tmpl = spec["template"]["metadata"]["labels"]
    min_ready = int(spec.get("minReadySeconds") or 0)
    mine = [
        p
        for p in cache.indexer.list()
        if (podcontrol.get_controller_of(p) or {}).get("uid") == rs["metadata"]["uid"]
        and podcontrol.is_active(p)
    ]
    selected = [p for p in mine if selector.matches(p["metadata"]["labels"])]
    unselected = {lister.key_of(p) for p in mine if p not in selected}
    return (
        len(selected),
        sum(
            1 for p in selected if all(p["metadata"]["labels"].get(k) == v for k, v in tmpl.items())
        ),
        sum(1 for p in selected if podcontrol.pod_ready(p)),
        sum(1 for p in selected if podcontrol.pod_available(p, min_ready, now)),
        unselected,
    )


def counted(group: ownedpods.Group, rs: Obj, now: float) -> tuple[int, int, int, int, set[str]]:
    c = group.snapshot()
    available = c.available(int(rs["spec"].get("minReadySeconds") or 0), now)
    return c.replicas, c.fully_labeled, c.ready, available, set(group.unselected)


def test_counts_follow_adds_updates_and_deletes() -> None:
    cache = Cache()
    rs = replica_set(extra_label="fe")
    cache.put(pod("a", labels={"app": "web", "tier": "fe"}, ready_at="2026-01-01T11:00:00Z"))
    cache.put(pod("b"))
    cache.put(pod("c", owner=OTHER_UID))  # someone else's: never counted
    cache.put(pod("d", owner=None))  # an orphan: counted once adopted
    group = cache.group(rs)
    assert counted(group, rs, NOW) == (2, 1, 1, 1, set())
    cache.put(pod("b", ready_at="2026-01-01T11:30:00Z", rv=2))
    assert counted(group, rs, NOW) == (2, 1, 2, 2, set())
    cache.put(pod("d", ready_at="2026-01-01T11:30:00Z", rv=2))  # adopted
    assert counted(group, rs, NOW) == (3, 1, 3, 3, set())
    cache.put(pod("a", phase="Succeeded", rv=2))  # finished: no longer active
    assert counted(group, rs, NOW) == (2, 0, 2, 2, set())
    cache.put(pod("b", deleting=True, rv=3))  # being deleted: no longer active
    assert counted(group, rs, NOW) == (1, 0, 1, 1, set())
    cache.delete("ns/b")
    cache.delete("ns/d")
    assert counted(group, rs, NOW) == (0, 0, 0, 0, set())
    assert counted(group, rs, NOW) == recount(cache, rs, NOW)


def test_a_relabeled_pod_is_to_release_and_no_longer_counted() -> None:
    cache = Cache()
    rs = replica_set()
    cache.put(pod("a", ready_at="2026-01-01T11:00:00Z"))
    group = cache.group(rs)
    cache.put(pod("a", labels={"app": "other"}, ready_at="2026-01-01T11:00:00Z", rv=2))
    assert counted(group, rs, NOW) == (0, 0, 0, 0, {"ns/a"})
    # Released: the controller reference is gone, and so is the pod from the group.
    cache.put(pod("a", owner=None, labels={"app": "other"}, rv=3))
    assert counted(group, rs, NOW) == (0, 0, 0, 0, set())
    # A finished pod is never released (upstream claims only active pods).
    cache.put(pod("f", labels={"app": "other"}, phase="Failed"))
    assert group.unselected == set()


def test_a_pod_moving_between_sets_leaves_one_group_for_the_other() -> None:
    cache = Cache()
    web, db = replica_set(), replica_set(uid=OTHER_UID, app="db")
    cache.put(pod("a", ready_at="2026-01-01T11:00:00Z"))
    g_web, g_db = cache.group(web), cache.group(db)
    # Relabeled: still web's (to release), not db's until db adopts it.
    cache.put(pod("a", labels={"app": "db"}, ready_at="2026-01-01T11:00:00Z", rv=2))
    assert counted(g_web, web, NOW) == (0, 0, 0, 0, {"ns/a"})
    assert counted(g_db, db, NOW) == (0, 0, 0, 0, set())
    # Released by web, then adopted by db.
    cache.put(pod("a", owner=None, labels={"app": "db"}, ready_at="2026-01-01T11:00:00Z", rv=3))
    cache.put(
        pod("a", owner=OTHER_UID, labels={"app": "db"}, ready_at="2026-01-01T11:00:00Z", rv=4)
    )
    assert counted(g_web, web, NOW) == (0, 0, 0, 0, set())
    assert counted(g_db, db, NOW) == (1, 1, 1, 1, set())


def test_just_adopted_pods_count_once_whether_or_not_the_informer_saw_them() -> None:
    cache = Cache()
    rs = replica_set()
    cache.put(pod("a", owner=None, ready_at="2026-01-01T11:00:00Z"))
    group = cache.group(rs)
    adopted = pod("a", ready_at="2026-01-01T11:00:00Z", rv=2)
    assert group.snapshot([("ns/a", adopted)]).replicas == 1  # the API answered first
    cache.put(adopted)
    assert group.snapshot([("ns/a", adopted)]).replicas == 1  # the informer too


def test_min_ready_seconds_availability_moves_with_the_clock() -> None:
    cache = Cache()
    rs = replica_set(min_ready=60)
    cache.put(pod("early", ready_at="2026-01-01T11:58:00Z"))  # NOW - 120 s
    cache.put(pod("late", ready_at="2026-01-01T11:59:30Z"))  # NOW - 30 s
    cache.put(pod("unparsed", ready_at="yesterday"))  # ready, never available
    group = cache.group(rs)
    counts = group.snapshot()
    assert counts.ready == 3
    assert [counts.available(60, NOW + dt) for dt in (0, 29, 30, 31)] == [1, 1, 2, 2]
    assert counted(group, rs, NOW) == recount(cache, rs, NOW)


def test_a_changed_spec_counts_the_group_again() -> None:
    cache = Cache()
    rs = replica_set()
    cache.put(pod("a", labels={"app": "web", "tier": "fe"}))
    cache.put(pod("b"))
    group = cache.group(rs)
    assert group.snapshot().fully_labeled == 2
    relabeled = replica_set(extra_label="fe")  # the template gained a label
    again = cache.group(relabeled)
    assert again is not group
    assert again.snapshot().fully_labeled == 1
    assert cache.group(relabeled) is again  # unchanged spec: the same group
    cache.owned.forget(RS_UID)
    assert len(cache.owned) == 0


def test_orphan_index_holds_only_uncontrolled_objects() -> None:
    assert lister.orphan_index(pod("a", owner=None)) == ["ns"]
    assert lister.orphan_index(pod("a")) == []
    not_controller = pod("a", owner=None)
    not_controller["metadata"]["ownerReferences"] = [{"kind": "ConfigMap", "uid": "u", "name": "x"}]
    assert lister.orphan_index(not_controller) == ["ns"]


_names = st.sampled_from(["p0", "p1", "p2", "p3", "p4"])
_change = st.one_of(
    st.tuples(
        st.just("put"),
        _names,
        st.sampled_from([RS_UID, OTHER_UID, None]),
        st.sampled_from([{"app": "web"}, {"app": "web", "tier": "fe"}, {"app": "db"}, {}]),
        st.sampled_from([None, "2026-01-01T11:58:00Z", "2026-01-01T11:59:30Z", "bad"]),
        st.sampled_from(["Pending", "Running", "Succeeded"]),
        st.booleans(),
    ),
    st.tuples(st.just("delete"), _names),
    st.tuples(st.just("spec"), st.sampled_from(["", "fe"]), st.sampled_from([0, 60])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_change, max_size=40), st.integers(min_value=0, max_value=200))
def test_counts_equal_a_recount_after_any_sequence_of_changes(
    changes: list[tuple[Any, ...]], later: int
) -> None:
    cache = Cache()
    rs = replica_set()
    group = cache.group(rs)
    for rv, change in enumerate(changes, start=1):
        if change[0] == "put":
            _, name, owner, labels, ready_at, phase, deleting = change
            cache.put(
                pod(
                    name,
                    owner=owner,
                    labels=dict(labels),
                    ready_at=ready_at,
                    phase=phase,
                    deleting=deleting,
                    rv=rv,
                )
            )
        elif change[0] == "delete":
            cache.delete(f"ns/{change[1]}")
        else:
            rs = replica_set(extra_label=change[1], min_ready=change[2])
            group = cache.group(rs)
        assert counted(group, rs, NOW + later) == recount(cache, rs, NOW + later)
