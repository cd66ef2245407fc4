"""The eager start of aiohttp's request tasks on Python 3.11 (apiserver/eagertasks.py)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pilothouse.apiserver import eagertasks

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="3.12 has eager tasks of its own: install does nothing"
)


async def _first_step(seen: list[Any]) -> str:
    seen.append(("started", asyncio.current_task()))
    await asyncio.sleep(0)
    seen.append("resumed")
    return "done"


async def _whole(seen: list[Any]) -> str:
    seen.append("ran")
    return "at once"


async def _fails() -> None:
    raise ValueError("in the first step")


def _install(*codes: Any) -> eagertasks.EagerFactory:
    loop = asyncio.get_running_loop()
    factory = eagertasks.install(loop, codes)
    assert isinstance(factory, eagertasks.EagerFactory)
    return factory


@pytest.fixture
async def restore_factory() -> Any:
    loop = asyncio.get_running_loop()
    yield
    loop.set_task_factory(None)


async def test_a_named_coroutine_runs_its_first_step_inside_create_task(
    restore_factory: None,
) -> None:
    _install(_first_step.__code__)
    me = asyncio.current_task()
    seen: list[Any] = []
    task = asyncio.get_running_loop().create_task(_first_step(seen))
    # The step ran before create_task returned, as the new task, and gave this one back.
    assert seen == [("started", task)]
    assert asyncio.current_task() is me
    assert await task == "done"
    assert seen[-1] == "resumed"


async def test_other_coroutines_start_on_the_next_turn_as_before(restore_factory: None) -> None:
    _install(_whole.__code__)
    seen: list[Any] = []
    task = asyncio.get_running_loop().create_task(_first_step(seen))
    assert seen == []
    await task
    assert seen[0] == ("started", task)


async def test_a_coroutine_that_ends_in_its_first_step_is_done_when_created(
    restore_factory: None,
) -> None:
    factory = _install(_whole.__code__, _fails.__code__)
    seen: list[Any] = []
    task = asyncio.get_running_loop().create_task(_whole(seen))
    assert task.done() and task.result() == "at once" and seen == ["ran"]
    failed = asyncio.get_running_loop().create_task(_fails())
    assert failed.done()
    with pytest.raises(ValueError, match="first step"):
        failed.result()
    assert factory.eager_starts == 2


async def test_an_eagerly_started_task_can_be_cancelled_at_its_await(
    restore_factory: None,
) -> None:
    _install(_first_step.__code__)
    seen: list[Any] = []
    task = asyncio.get_running_loop().create_task(_first_step(seen))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "resumed" not in seen


async def test_install_leaves_a_loop_with_a_factory_of_its_own_alone(
    restore_factory: None,
) -> None:
    loop = asyncio.get_running_loop()

    def own(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(own)
    assert eagertasks.install(loop, [_whole.__code__]) is None
    assert loop.get_task_factory() is own


async def test_aiohttp_serves_requests_from_an_eagerly_started_task(
    restore_factory: None,
) -> None:
    factory = _install(eagertasks.aiohttp_request_code())
    handled: list[Any] = []

    async def hello(request: web.Request) -> web.Response:
        handled.append(asyncio.current_task())
        await asyncio.sleep(0)  # a real suspension inside the handler
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(3):
                async with session.get(f"http://127.0.0.1:{port}/x{n}") as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"path": f"/x{n}"}
    finally:
        await runner.cleanup()
    assert factory.eager_starts == 3
    # Each ran as a task of its own, not as the connection's task.
    assert len(set(map(id, handled))) == 3
