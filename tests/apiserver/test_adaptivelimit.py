"""The adaptive seat limit: every level's seats follow the event loop's lag (shrinking
while it is over the target, growing back when it is not), driven here by synthetic lag
samples — no clock, no server; then the lag monitor on a real loop, and a live server
whose shrunk level answers 429 the upstream way while admins are still served."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pilothouse import testing
from pilothouse.apiserver import adaptivelimit, flowcontrol

from .test_overload import Caller, cm

MS = 0.001


def test_lag_over_the_target_shrinks_the_scale_in_proportion() -> None:
    limit = adaptivelimit.AdaptiveLimit(target=5 * MS)
    assert limit.observe(4 * MS) == 1.0  # under the target: nothing to do
    # 10 ms is twice the target: the gradient 0.5, smoothed by 0.2 → 0.9 a sample.
    assert limit.observe(10 * MS) == pytest.approx(0.9)
    assert limit.observe(10 * MS) == pytest.approx(0.81)
    # 6 ms: a gradient of 5/6, a smaller step.
    assert limit.observe(6 * MS) == pytest.approx(0.81 * (0.8 + 0.2 * 5 / 6))


def test_one_stall_cannot_take_more_than_a_tenth() -> None:
    """A single long stall (a collection of the heap, the machine busy elsewhere) says
    little about the requests admitted: the gradient is at least 0.5, then smoothed."""
    limit = adaptivelimit.AdaptiveLimit(target=5 * MS)
    assert limit.observe(2.0) == pytest.approx(0.9)


def test_a_lagging_loop_ends_at_the_floor_and_comes_back_once_it_keeps_up() -> None:
    limit = adaptivelimit.AdaptiveLimit(target=5 * MS, floor=0.05, growth=0.02)
    scales = [limit.observe(50 * MS) for _ in range(100)]
    assert scales == sorted(scales, reverse=True)
    assert scales[-1] == 0.05
    # Back under the target: additive growth, 0.02 smoothed by 0.2 per sample (about
    # 2.5 s at one sample every 10 ms from the floor to 1).
    samples = 0
    while limit.observe(1 * MS) < 1.0:
        samples += 1
        assert samples < 1000
    assert samples == pytest.approx(0.95 / 0.004, abs=2)
    assert limit.observe(0.0) == 1.0  # and never above


def test_bulk_levels_follow_the_scale_heartbeats_and_leader_election_keep_their_seats() -> None:
    control = flowcontrol.FlowControl(adaptive=adaptivelimit.AdaptiveLimit(target=5 * MS))
    nominal = {name: level.nominal for name, level in control.levels.items()}
    assert nominal["global-default"] == 49
    for _ in range(200):
        control.observe_lag(1.0)
    limits = {name: level.limit for name, level in control.levels.items()}
    assert limits == {
        # Leader election and node heartbeats (Leases, node status) never wait behind
        # bulk work: a late heartbeat marks a node unreachable.
        "leader-election": 25,
        "node-high": 98,
        # The components' bulk writes (pods, bindings, pod status, Events) down to a
        # quarter of their seats, so the cluster keeps its pace in a long rollout …
        "system": 19,
        "workload-high": 25,
        "workload-low": 62,
        # … and people's requests down to the floor, 5 % (at least one seat).
        "global-default": 3,
        "catch-all": 1,
    }
    assert {name: level.nominal for name, level in control.levels.items()} == nominal


def test_lag_the_loop_did_not_make_holds_back_people_not_the_components() -> None:
    control = flowcontrol.FlowControl(adaptive=adaptivelimit.AdaptiveLimit(target=5 * MS))
    for _ in range(200):  # late by 50 ms each time, with no CPU spent by the loop
        control.observe_lag(50 * MS, 0.0)
    limits = {name: level.limit for name, level in control.levels.items()}
    assert (limits["global-default"], limits["catch-all"]) == (3, 1)
    assert (limits["system"], limits["workload-high"], limits["workload-low"]) == (74, 98, 245)
    for _ in range(200):  # the loop's own work: both follow
        control.observe_lag(50 * MS, 50 * MS)
    assert control.levels["workload-low"].limit == 62


def test_a_components_level_queues_what_its_nominal_seats_would_have_admitted() -> None:
    """A shrunk limit moves a component's requests from the event loop's ready queue to
    the level's queue; it must not refuse one that fixed seats would have run."""
    adaptive = flowcontrol.FlowControl(adaptive=adaptivelimit.AdaptiveLimit())
    fixed = flowcontrol.FlowControl()
    for name in ("system", "workload-high", "workload-low"):
        level = adaptive.levels[name]
        assert level.queue_length == level.nominal + fixed.levels[name].queue_length
    # People's levels keep the short queue: a flood beyond it is shed with 429.
    assert adaptive.levels["global-default"].queue_length == 50
    assert adaptive.levels["node-high"].queue_length == 50


async def test_a_shrunk_components_level_serves_its_whole_burst_in_turn() -> None:
    control = flowcontrol.FlowControl(adaptive=adaptivelimit.AdaptiveLimit(target=5 * MS))
    level = control.levels["workload-low"]
    for _ in range(200):
        control.observe_lag(1.0)
    assert level.limit == 62
    # A ReplicaSet's slow-start batch as large as the level's nominal seats.
    burst = [asyncio.ensure_future(control.acquire("workload-low")) for _ in range(level.nominal)]
    await asyncio.sleep(0)
    assert (level.executing, len(level.waiting)) == (62, level.nominal - 62)
    assert not control.shed("workload-low")
    pending = set(burst)
    while pending:  # each that finishes hands its seat to the next in the queue
        done, pending = await asyncio.wait(pending, timeout=1, return_when=asyncio.FIRST_COMPLETED)
        assert done and level.executing <= 62
        for finished in done:
            finished.result().release()
    assert level.executing == 0
    assert level.rejected == level.timed_out == 0


async def test_a_shrunk_level_admits_no_one_until_it_is_under_its_limit() -> None:
    control = flowcontrol.FlowControl(
        max_requests_inflight=61,
        max_mutating_requests_inflight=0,
        adaptive=adaptivelimit.AdaptiveLimit(target=5 * MS, floor=0.1),
    )
    level = control.levels["global-default"]  # 20 of 245 shares of 61 seats: 5
    assert level.limit == 5
    seats = [await control.acquire("global-default") for _ in range(5)]
    for _ in range(100):  # the loop lags: the level is cut to one seat
        control.observe_lag(1.0)
    assert (level.limit, level.executing) == (1, 5)
    waiter = asyncio.ensure_future(control.acquire("global-default"))
    await asyncio.sleep(0)
    assert not waiter.done()
    for seat in seats[:4]:  # four finish: still one executing, the limit
        seat.release()
    await asyncio.sleep(0)
    assert not waiter.done() and level.executing == 1
    seats[4].release()  # the last one finishes: the waiter gets its seat
    last = await asyncio.wait_for(waiter, 1)
    assert level.executing == 1
    last.release()
    assert level.executing == 0


async def test_seats_that_grow_back_go_to_the_waiters_at_once() -> None:
    control = flowcontrol.FlowControl(
        max_requests_inflight=61,
        max_mutating_requests_inflight=0,
        adaptive=adaptivelimit.AdaptiveLimit(target=5 * MS, floor=0.1, growth=0.5),
    )
    level = control.levels["global-default"]
    for _ in range(100):
        control.observe_lag(1.0)
    held = await control.acquire("global-default")
    waiters = [asyncio.ensure_future(control.acquire("global-default")) for _ in range(3)]
    await asyncio.sleep(0)
    assert (level.executing, len(level.waiting)) == (1, 3)
    for _ in range(20):  # the loop keeps up again
        control.observe_lag(0.0)
    assert level.limit == 5 and level.executing == 4  # handed over, not left waiting
    seats = await asyncio.wait_for(asyncio.gather(*waiters), 1)
    for seat in [held, *seats]:
        seat.release()
    assert control.idle()


def test_exempt_requests_never_take_a_seat() -> None:
    control = flowcontrol.FlowControl(adaptive=adaptivelimit.AdaptiveLimit())
    for _ in range(200):
        control.observe_lag(1.0)

    async def many() -> int:
        seats = [await control.acquire(flowcontrol.EXEMPT) for _ in range(1000)]
        return len(seats)

    assert asyncio.run(many()) == 1000


async def test_the_monitor_measures_how_late_the_loop_runs() -> None:
    seen: list[tuple[float, float]] = []
    sampled = asyncio.Event()

    def observe(late: float, own: float) -> None:
        seen.append((late, own))
        sampled.set()

    monitor = adaptivelimit.LagMonitor(
        observe, idle=lambda: False, busy=asyncio.Event(), interval=0.01
    )
    task = asyncio.ensure_future(monitor.run())
    try:
        await asyncio.wait_for(sampled.wait(), 5)
        sampled.clear()
        seen.clear()
        # A ready callback that computes for 60 ms makes the next timer that late.
        asyncio.get_running_loop().call_soon(spin, 0.06)
        await asyncio.wait_for(sampled.wait(), 5)
        late, own = seen[0]
        assert late >= 0.04 and own >= 0.04, seen
    finally:
        task.cancel()


async def test_the_monitor_leaves_out_lag_the_loop_did_not_cause() -> None:
    """A loop held up without using the CPU (here a blocking sleep; on a busy machine,
    the process waiting for a core) is late, but not because of what it admitted."""
    seen: list[tuple[float, float]] = []
    sampled = asyncio.Event()

    def observe(late: float, own: float) -> None:
        seen.append((late, own))
        sampled.set()

    monitor = adaptivelimit.LagMonitor(
        observe, idle=lambda: False, busy=asyncio.Event(), interval=0.01
    )
    task = asyncio.ensure_future(monitor.run())
    try:
        await asyncio.wait_for(sampled.wait(), 5)
        sampled.clear()
        seen.clear()
        asyncio.get_running_loop().call_soon(time.sleep, 0.06)
        await asyncio.wait_for(sampled.wait(), 5)
        late, own = seen[0]
        assert late >= 0.04 and own < 0.02, seen
    finally:
        task.cancel()


def spin(seconds: float) -> None:
    """Use the CPU for ``seconds`` of the thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def test_an_idle_monitor_sleeps_until_a_seat_is_taken() -> None:
    control = flowcontrol.FlowControl(adaptive=adaptivelimit.AdaptiveLimit())
    seen: list[float] = []
    monitor = adaptivelimit.LagMonitor(
        lambda late, own: seen.append(late), idle=control.idle, busy=control._busy, interval=0.001
    )
    task = asyncio.ensure_future(monitor.run())
    try:
        await asyncio.sleep(0.05)
        assert seen == []  # nothing held a seat: not one sample
        seat = await control.acquire("global-default")
        await asyncio.sleep(0.05)
        assert len(seen) > 3
        seat.release()
    finally:
        task.cancel()


# --- against a server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lagging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.ServerThread]:
    """A server at upstream's limits whose loop is reported lagging (no monitor: the
    test drives the samples)."""
    data = tmp_path_factory.mktemp("adaptive") / "data"
    with testing.ServerThread(data) as srv:
        control = srv.server.flow_control
        assert control.adaptive is not None
        yield srv


def test_a_level_shrunk_by_lag_answers_429_as_upstream(
    lagging: testing.ServerThread, tmp_path: Path
) -> None:
    control = lagging.server.flow_control
    level = control.levels["global-default"]
    carol, admin = Caller(lagging, "carol"), Caller(lagging, "")

    async def lag() -> None:
        # Stop the server's own monitor so only these samples count.
        await lagging.server.supervisor.stop_child("flowcontrol-lag")
        for _ in range(200):
            control.observe_lag(1.0)

    asyncio.run_coroutine_threadsafe(lag(), lagging.loop).result(10)
    assert (level.nominal, level.limit) == (49, 3)
    metrics = admin.request("GET", "/metrics").data.decode()
    assert (
        'apiserver_flowcontrol_current_limit_seats{priority_level="global-default"} 3.0'
    ) in metrics
    assert (
        'apiserver_flowcontrol_nominal_limit_seats{priority_level="global-default"} 49.0'
    ) in metrics
    assert carol.request("POST", "/api/v1/namespaces/default/configmaps", cm("c0")).status == 201

    # Its three seats taken and its queue full (as a flood would leave them): carol's
    # next request is refused at once, with upstream's Status and Retry-After.
    def fill() -> None:
        level.executing += level.limit
        for _ in range(level.queue_length):
            level.waiting.append(lagging.loop.create_future())

    def empty() -> None:
        level.executing -= level.limit
        level.waiting.clear()

    lagging.loop.call_soon_threadsafe(fill)
    try:
        deadline = time.monotonic() + 5
        while len(level.waiting) < level.queue_length:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        began = time.monotonic()
        refused = carol.request("POST", "/api/v1/namespaces/default/configmaps", cm("c1"))
        assert time.monotonic() - began < 1.0
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        assert json.loads(refused.data) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Too many requests, please try again later.",
            "reason": "TooManyRequests",
            "details": {"retryAfterSeconds": 1},
            "code": 429,
        }
        # An admin (exempt) and a health probe are served all the same.
        assert admin.request("GET", "/api/v1/namespaces/default/configmaps").status == 200
        assert admin.request("GET", "/readyz").status == 200
    finally:
        lagging.loop.call_soon_threadsafe(empty)
