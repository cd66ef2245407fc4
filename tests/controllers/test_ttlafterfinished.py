"""The TTL-after-finished controller deletes a finished Job once its TTL has passed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from pilothouse.api import errors, meta, resources
from pilothouse.client import rest
from pilothouse.client.clock import FakeClock
from pilothouse.controllers import manager, ttlafterfinished
from pilothouse.testing import eventually

JOBS = resources.DEFAULT.by_path("batch", "v1", "jobs")
assert JOBS is not None


def test_expiry_from_the_finished_condition() -> None:
    job: dict[str, Any] = {
        "spec": {"ttlSecondsAfterFinished": 100},
        "status": {
            "conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": meta.format_time(1000)}
            ]
        },
    }
    assert ttlafterfinished.needs_cleanup(job)
    assert ttlafterfinished.expires_in(job, 1050) == 50
    del job["spec"]["ttlSecondsAfterFinished"]
    assert not ttlafterfinished.needs_cleanup(job)


async def test_deletes_when_due_not_before(client: rest.Client, ns: str) -> None:
    clock = FakeClock(start=time.time())
    cm = manager.ControllerManager(
        client, factories={"ttl": ttlafterfinished.TTLAfterFinishedController}, clock=clock
    )
    job = await client.create(
        JOBS,
        {
            "metadata": {"name": "done"},
            "spec": {
                "ttlSecondsAfterFinished": 60,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}],
                    }
                },
            },
        },
        ns,
    )
    stamp = meta.format_time(clock.now())
    job["status"] = {
        "startTime": stamp,
        "completionTime": stamp,
        "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": stamp},
            {"type": "Complete", "status": "True", "lastTransitionTime": stamp},
        ],
    }
    await client.update_status(JOBS, job)
    task = asyncio.create_task(cm.run())
    try:
        await asyncio.wait_for(cm.ready.wait(), 20)
        await asyncio.sleep(0.5)
        assert (await client.get(JOBS, "done", ns))["metadata"]["name"] == "done"
        clock.advance(61)

        async def deleting() -> bool:
            # Foreground deletion: the garbage collector (not running here) finishes it.
            try:
                live = await client.get(JOBS, "done", ns)
            except errors.StatusError as exc:
                return errors.is_not_found(exc)
            md = live["metadata"]
            return bool(md.get("deletionTimestamp")) and "foregroundDeletion" in md.get(
                "finalizers", []
            )

        await eventually(deleting, timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
