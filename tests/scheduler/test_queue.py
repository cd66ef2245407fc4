"""The scheduling queue: order, backoff, unschedulable pods and cluster events, gates."""

from __future__ import annotations

import asyncio

from pilothouse.client.clock import FakeClock
from pilothouse.scheduler import queue, types
from pilothouse.scheduler.framework import interface as fw

from .builders import pod

NODE_ADD = fw.ClusterEvent(fw.NODE, fw.ActionType.ADD)
POD_DELETE = fw.ClusterEvent(fw.POD, fw.ActionType.DELETE)
EVENTS = {
    "NodeResourcesFit": [
        fw.ClusterEvent(fw.POD, fw.ActionType.DELETE),
        fw.ClusterEvent(fw.NODE, fw.ActionType.ADD),
    ],
    "NodeAffinity": [fw.ClusterEvent(fw.NODE, fw.ActionType.ADD | fw.ActionType.UPDATE_NODE_LABEL)],
}


def info(name: str, priority: int = 0, **kw: object) -> types.PodInfo:
    return types.make_pod_info(pod(name, priority=priority, **kw))  # type: ignore[arg-type]


def make(clock: FakeClock | None = None, **kw: object) -> queue.SchedulingQueue:
    return queue.SchedulingQueue(clock=clock or FakeClock(), plugin_events=EVENTS, **kw)  # type: ignore[arg-type]


async def pop(q: queue.SchedulingQueue) -> queue.QueuedPodInfo:
    got = await asyncio.wait_for(q.pop(), 1)
    assert got is not None
    return got


async def test_higher_priority_first_then_arrival() -> None:
    clock = FakeClock()
    q = make(clock)
    q.add(info("low", 1))
    clock.advance(1)
    q.add(info("high", 10))
    clock.advance(1)
    q.add(info("low2", 1))
    assert [(await pop(q)).pod.name for _ in range(3)] == ["high", "low", "low2"]


def test_backoff_doubles_up_to_the_cap() -> None:
    q = make()
    assert [q.backoff_duration(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


async def test_unschedulable_pod_waits_for_an_event_its_plugins_registered() -> None:
    clock = FakeClock()
    q = make(clock)
    q.add(info("p"))
    qpi = await pop(q)
    qpi.unschedulable_plugins = {"NodeAffinity"}
    q.requeue(qpi, q.scheduling_cycle)
    assert q.where("p/p".replace("p/", "default/")) == queue.UNSCHEDULABLE
    assert q.move_all(POD_DELETE) == 0  # NodeAffinity does not care about pod deletions
    assert q.where("default/p") == queue.UNSCHEDULABLE
    q.move_all(NODE_ADD)
    assert q.where("default/p") == queue.BACKOFF  # still backing off (1s)
    clock.advance(1.5)
    q.flush_backoff()
    assert q.where("default/p") == queue.ACTIVE


async def test_event_during_the_attempt_sends_the_pod_to_backoff() -> None:
    q = make()
    q.add(info("p"))
    qpi = await pop(q)
    q.move_all(NODE_ADD)  # arrives while "p" is being scheduled
    qpi.unschedulable_plugins = {"NodeResourcesFit"}
    q.requeue(qpi, q.scheduling_cycle)
    assert q.where("default/p") == queue.BACKOFF


async def test_unrelated_event_during_the_attempt_does_not() -> None:
    q = make()
    q.add(info("p"))
    qpi = await pop(q)
    q.move_all(fw.ClusterEvent(fw.POD, fw.ActionType.ADD))
    qpi.unschedulable_plugins = {"NodeAffinity"}
    q.requeue(qpi, q.scheduling_cycle)
    assert q.where("default/p") == queue.UNSCHEDULABLE


async def test_leftovers_return_after_five_minutes() -> None:
    clock = FakeClock()
    q = make(clock)
    q.add(info("p"))
    qpi = await pop(q)
    qpi.unschedulable_plugins = {"NodeAffinity"}
    q.requeue(qpi, q.scheduling_cycle)
    clock.advance(299)
    q.flush_unschedulable_leftovers()
    assert q.where("default/p") == queue.UNSCHEDULABLE
    clock.advance(2)
    q.flush_unschedulable_leftovers()
    assert q.where("default/p") == queue.ACTIVE


async def test_gated_pods_wait_for_their_own_update() -> None:
    def gate(p: types.PodInfo) -> fw.Status:
        return fw.unresolvable("gated") if p.scheduling_gates else fw.SUCCESS

    q = make(pre_enqueue=gate)
    gated = pod("g", spec={"schedulingGates": [{"name": "wait"}]})
    q.add(types.make_pod_info(gated))
    assert q.where("default/g") == queue.UNSCHEDULABLE
    q.move_all(NODE_ADD)
    assert q.where("default/g") == queue.UNSCHEDULABLE
    old = q.get("default/g")
    assert old is not None
    q.update(old.pod, types.make_pod_info(pod("g")))
    assert q.where("default/g") == queue.ACTIVE


async def test_deleted_pods_leave_and_done_forgets() -> None:
    q = make()
    q.add(info("a"))
    q.add(info("b"))
    q.delete("default/a")
    got = await pop(q)
    assert got.pod.name == "b"
    q.done("default/b")
    assert len(q) == 0


async def test_nominator() -> None:
    q = make()
    p = info("p", 100)
    q.add_nominated(p, "n1")
    assert [x.name for x in q.nominated_pods("n1")] == ["p"]
    q.add_nominated(p, "n2")
    assert q.nominated_pods("n1") == [] and q.nominated_node("default/p") == "n2"
    q.delete("default/p")
    assert q.nominated_pods("n2") == []


async def test_pop_waits_for_a_pod() -> None:
    q = make()
    waiter = asyncio.ensure_future(q.pop())
    await asyncio.sleep(0)
    assert not waiter.done()
    q.add(info("late"))
    got = await asyncio.wait_for(waiter, 1)
    assert got is not None and got.pod.name == "late"
    await q.close()
