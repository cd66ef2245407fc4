"""DefaultPreemption without an API: victims, budgets, candidate choice, messages."""

from __future__ import annotations

from typing import Any

from pilothouse.scheduler import types
from pilothouse.scheduler.framework import interface as fw
from pilothouse.scheduler.plugins import defaultpreemption

from .builders import Harness, node, pod


async def preempt(h: Harness, obj: dict[str, Any]) -> tuple[str | None, fw.Status]:
    err = h.fit_error(obj)
    plugin = h.plugin("DefaultPreemption")
    result: tuple[str | None, fw.Status] = await plugin.post_filter(
        fw.CycleState(), types.make_pod_info(obj), err.diagnosis.node_to_status
    )
    return result


async def test_evicts_only_what_is_needed() -> None:
    h = Harness().add_nodes(node("n1", cpu="2"))
    for name in ("a", "b", "c", "d"):
        h.add_pod(pod(name, cpu="500m", priority=10), "n1")
    plugin = h.plugin("DefaultPreemption")
    victims, violations, status = plugin.select_victims(
        types.make_pod_info(pod("hi", cpu="1", priority=100)), 0, []
    )
    assert status.is_success() and violations == 0
    assert len(victims) == 2
    # The cache is as it was.
    assert len(h.cache.pods_on(0)) == 4
    node_name, status = await preempt(h, pod("hi", cpu="1", priority=100))
    assert (node_name, status.is_success()) == ("n1", True)


async def test_lower_priority_first_among_victims() -> None:
    h = Harness().add_nodes(node("n1", cpu="2"))
    h.add_pod(pod("important", cpu="1", priority=50), "n1")
    h.add_pod(pod("cheap", cpu="1", priority=5), "n1")
    plugin = h.plugin("DefaultPreemption")
    victims, _, _ = plugin.select_victims(
        types.make_pod_info(pod("hi", cpu="1", priority=100)), 0, []
    )
    assert [v.name for v in victims] == ["cheap"]


async def test_not_eligible_with_preemption_policy_never() -> None:
    h = Harness().add_nodes(node("n1", cpu="1"))
    h.add_pod(pod("low", cpu="1", priority=1), "n1")
    never = pod("hi", cpu="1", priority=100, spec={"preemptionPolicy": "Never"})
    node_name, status = await preempt(h, never)
    assert node_name is None
    assert status.message == "preemption: not eligible due to preemptionPolicy=Never."


async def test_no_victims_message() -> None:
    h = Harness().add_nodes(
        node("n1", cpu="1"), node("n2", cpu="1", taints=[{"key": "k", "effect": "NoSchedule"}])
    )
    h.add_pod(pod("same", cpu="1", priority=100), "n1")
    node_name, status = await preempt(h, pod("hi", cpu="1", priority=100))
    assert node_name == ""
    assert status.message == (
        "preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling."
    )


async def test_budgets_steer_the_choice() -> None:
    h = Harness().add_nodes(node("n1", cpu="1"), node("n2", cpu="1"))
    h.add_pod(pod("guarded", cpu="1", priority=1, labels={"app": "db"}), "n1")
    h.add_pod(pod("free", cpu="1", priority=1, labels={"app": "web"}), "n2")
    pdb = {
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}},
        "status": {"disruptionsAllowed": 0},
    }
    h.handle.list_pdbs = lambda: [pdb]
    node_name, status = await preempt(h, pod("hi", cpu="1", priority=100))
    assert status.is_success() and node_name == "n2"


def test_split_by_pdb_spends_the_allowance() -> None:
    pods = [types.make_pod_info(pod(f"p{i}", labels={"app": "db"})) for i in range(3)]
    pdb = {
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}},
        "status": {"disruptionsAllowed": 1, "disruptedPods": {"p0": "2024-01-01T00:00:00Z"}},
    }
    violating, ok = defaultpreemption.split_by_pdb(pods, [pdb])
    assert [p.name for p in ok] == ["p0", "p1"]  # p0 is already being disrupted
    assert [p.name for p in violating] == ["p2"]


def test_pick_candidate_order() -> None:
    def victim(priority: int, start: float = 0.0) -> types.PodInfo:
        info = types.make_pod_info(pod(f"v{priority}-{start}", priority=priority))
        info.start_time = start
        return info

    c = defaultpreemption.Candidate
    # Fewer budget violations first.
    assert defaultpreemption.pick_candidate([c(0, [victim(1)], 1), c(1, [victim(5)], 0)]).row == 1
    # Then the lower highest priority.
    assert (
        defaultpreemption.pick_candidate(
            [c(0, [victim(5)], 0), c(1, [victim(3), victim(2)], 0)]
        ).row
        == 1
    )
    # Then the lower priority sum.
    assert (
        defaultpreemption.pick_candidate(
            [c(0, [victim(5), victim(4)], 0), c(1, [victim(5), victim(1)], 0)]
        ).row
        == 1
    )
    # Then fewer victims.
    assert (
        defaultpreemption.pick_candidate(
            [c(0, [victim(5), victim(-(2**31))], 0), c(1, [victim(5)], 0)]
        ).row
        == 1
    )
    # Then the latest start among the most important victims.
    assert (
        defaultpreemption.pick_candidate(
            [c(0, [victim(5, 10.0)], 0), c(1, [victim(5, 20.0)], 0)]
        ).row
        == 1
    )
