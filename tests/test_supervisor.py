"""The supervisor: failed loops restart with back-off and are logged once each; a fatal
child stops everything; a loop that returns counts as a failure; stop is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from pilothouse import supervisor


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


async def test_failed_child_restarts_with_backoff_and_logs_each_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delays: list[float] = []
    runs = 0
    healthy = asyncio.Event()

    async def record(d: float) -> None:
        delays.append(d)
        await asyncio.sleep(0)

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise RuntimeError(f"boom {runs}")
        healthy.set()
        await asyncio.Event().wait()

    sup = supervisor.Supervisor("test", backoff_initial=0.5, backoff_max=1.5, sleep=record)
    with caplog.at_level(logging.ERROR, logger="pilothouse.supervisor"):
        sup.start("loop", flaky)
        await asyncio.wait_for(healthy.wait(), 5)
    assert delays == [0.5, 1.0, 1.5]
    (state,) = sup.status()
    assert (state.state, state.restarts, state.last_error) == ("running", 3, "RuntimeError: boom 3")
    failures = [r for r in caplog.records if "loop failed" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info is not None for r in failures)  # with the traceback
    await sup.stop()
    assert sup.status()[0].state == "stopped"


async def test_a_loop_that_returns_is_a_failure() -> None:
    runs = 0
    again = asyncio.Event()

    async def returns() -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            again.set()
            await asyncio.Event().wait()

    sup = supervisor.Supervisor("test", sleep=no_sleep)
    sup.start("loop", returns)
    await asyncio.wait_for(again.wait(), 5)
    assert sup.status()[0].last_error.startswith("LoopEnded")
    await sup.stop()


async def test_transient_child_may_finish() -> None:
    sup = supervisor.Supervisor("test", sleep=no_sleep)
    finished = asyncio.Event()

    async def once() -> None:
        finished.set()

    sup.start("job", once, policy=supervisor.Policy.TRANSIENT)
    state = sup.status()[0]
    await asyncio.wait_for(finished.wait(), 5)
    await asyncio.sleep(0)
    assert state.state == "done" and not sup.running("job")
    assert sup.status() == []  # a finished one-off is forgotten (per-pod workers come and go)
    await sup.stop()


async def test_fatal_child_stops_the_others_and_wait_raises() -> None:
    other_cancelled = asyncio.Event()

    async def other() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            other_cancelled.set()

    async def required() -> None:
        await asyncio.sleep(0)
        raise OSError("port in use")

    sup = supervisor.Supervisor("server")
    sup.start("other", other)
    sup.start("listener", required, policy=supervisor.Policy.FATAL)
    with pytest.raises(supervisor.ChildFailed) as info:
        await asyncio.wait_for(sup.wait(), 5)
    assert info.value.child == "listener"
    assert "OSError: port in use" in str(info.value)
    assert other_cancelled.is_set()
    assert [s.name for s in sup.unhealthy()] == ["other", "listener"]


async def test_stop_is_bounded_for_a_child_that_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    sup = supervisor.Supervisor("test")
    sup.start("stubborn", stubborn)
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="pilothouse.supervisor"):
        await asyncio.wait_for(sup.stop(timeout=0.2), 5)
    assert any("did not stop" in r.getMessage() for r in caplog.records)
    release.set()
    for t in asyncio.all_tasks():
        if t.get_name() == "test/stubborn":
            t.cancel()
            await asyncio.sleep(0.01)


async def test_spawned_failure_is_logged_not_lost(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("lost?")

    sup = supervisor.Supervisor("agent")
    with caplog.at_level(logging.ERROR, logger="pilothouse.supervisor"):
        task = sup.spawn(fails(), name="close-watch")
        with pytest.raises(ValueError):
            await task
        await asyncio.sleep(0)
    assert any(r.getMessage() == "agent/close-watch failed" for r in caplog.records)
    await sup.stop()


async def test_duplicate_names_are_refused() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    sup = supervisor.Supervisor("test")
    sup.start("a", forever)
    with pytest.raises(ValueError, match="already running"):
        sup.start("a", forever)
    await sup.stop()


async def test_injected_failure_restarts_the_child_and_runs_its_cleanup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    cleaned = 0
    second = asyncio.Event()

    async def loop() -> None:
        nonlocal runs, cleaned
        runs += 1
        if runs == 2:
            second.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned += 1

    sup = supervisor.Supervisor("agent", sleep=no_sleep)
    sup.start("heartbeat", loop)
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="pilothouse.supervisor"):
        sup.inject_failure("heartbeat", RuntimeError("connection dropped"))
        await asyncio.wait_for(second.wait(), 5)
    (state,) = sup.status()
    assert (state.state, state.restarts, cleaned) == ("running", 1, 1)
    assert state.last_error == "RuntimeError: connection dropped"
    logged = [r for r in caplog.records if "heartbeat failed; restarting" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    await sup.stop()
    assert cleaned == 2 and sup.status()[0].state == "stopped"


async def test_nested_supervisors_roll_up_health_and_fatal_failures() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    gate = asyncio.Event()

    async def restarts_slowly(_: float) -> None:
        await gate.wait()

    root = supervisor.Supervisor("pilothouse", sleep=restarts_slowly)
    root.start("listener", forever, policy=supervisor.Policy.FATAL)
    agent = root.nest("agent")
    agent.start("heartbeat", forever)
    agent.start("runtime", forever, policy=supervisor.Policy.FATAL)
    await asyncio.sleep(0)
    assert [p for p, _ in root.walk()] == ["listener", "agent/heartbeat", "agent/runtime"]
    assert root.problems() == []

    root.inject_failure("agent/heartbeat", ValueError("boom"))
    await asyncio.sleep(0.01)
    assert root.problems() == ["agent/heartbeat: restarting (ValueError: boom)"]
    gate.set()
    await asyncio.sleep(0.01)
    assert root.problems() == []

    root.inject_failure("agent/runtime")
    with pytest.raises(supervisor.ChildFailed) as info:
        await asyncio.wait_for(root.wait(), 5)
    assert info.value.supervisor == "pilothouse/agent" and info.value.child == "runtime"
    assert all(st.state in ("stopped", "failed") for _, st in root.walk())


async def test_stop_child_and_unnest_forget_what_they_stop() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    sup = supervisor.Supervisor("agent")
    sup.start("pod-a", forever, policy=supervisor.Policy.TRANSIENT)
    term = sup.nest("term-1")
    term.start("controller", forever)
    await asyncio.sleep(0)
    await sup.stop_child("pod-a")
    await sup.unnest("term-1")
    assert list(sup.walk()) == []
    assert term.status()[0].state == "stopped"
    again = sup.nest("term-1")  # a name can be used again once unnested
    again.start("controller", forever)
    await asyncio.sleep(0)
    assert [p for p, _ in sup.walk()] == ["term-1/controller"]
    await sup.stop()


async def test_stop_has_one_time_budget_for_all_children() -> None:
    release = False

    async def stubborn() -> None:
        while not release:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    sup = supervisor.Supervisor("test")
    for i in range(5):
        sup.start(f"s{i}", stubborn)
    await asyncio.sleep(0)
    began = asyncio.get_running_loop().time()
    await sup.stop(timeout=0.3)
    assert asyncio.get_running_loop().time() - began < 1.0  # not 5 x 0.3 s
    release = True
    await asyncio.sleep(0.1)
