"""The CronJob controller on a fake clock: Jobs at each scheduled minute, requeued for
the next due time (no polling), Forbid, Replace, history limits, missed times."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse.api import meta, resources
from pilothouse.client import rest
from pilothouse.client.clock import FakeClock
from pilothouse.controllers import cronjob, manager
from pilothouse.testing import eventually

CRONJOBS = resources.DEFAULT.by_path("batch", "v1", "cronjobs")
JOBS = resources.DEFAULT.by_path("batch", "v1", "jobs")
EVENTS = resources.DEFAULT.by_path("", "v1", "events")
assert CRONJOBS is not None and JOBS is not None and EVENTS is not None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=time.time())


@pytest.fixture
async def controller(
    client: rest.Client, clock: FakeClock
) -> AsyncIterator[manager.ControllerManager]:
    cm = manager.ControllerManager(
        client, factories={"cronjob": cronjob.CronJobController}, clock=clock
    )
    task = asyncio.create_task(cm.run())
    await asyncio.wait_for(cm.ready.wait(), 20)
    try:
        yield cm
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def cron_job(name: str, schedule: str = "*/1 * * * *", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "metadata": {"labels": {"run": name}},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                        }
                    }
                },
            },
            **spec,
        },
    }


async def jobs_of(client: rest.Client, ns: str, name: str) -> list[dict[str, Any]]:
    items = (await client.list(JOBS, ns, label_selector=f"run={name}"))["items"]
    return sorted(
        (j for j in items if not j["metadata"].get("deletionTimestamp")),
        key=lambda j: j["metadata"]["name"],
    )


async def events_of(client: rest.Client, ns: str, name: str) -> list[tuple[str, str]]:
    items = (await client.list(EVENTS, ns))["items"]
    return [(e["reason"], e["message"]) for e in items if e["involvedObject"].get("name") == name]


async def next_minute(clock: FakeClock) -> None:
    """Move the fake clock just past the next minute boundary."""
    now = clock.now()
    clock.advance(60 - now % 60 + 0.5)


async def finish(client: rest.Client, job: dict[str, Any], condition: str, at: float) -> None:
    job = await client.get(JOBS, job["metadata"]["name"], job["metadata"]["namespace"])
    stamp = meta.format_time(at)
    job["status"] = {
        "startTime": (job.get("status") or {}).get("startTime") or stamp,
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": stamp, "reason": r, "message": "m"}
            for t, r in (
                [("SuccessCriteriaMet", "CompletionsReached"), ("Complete", "CompletionsReached")]
                if condition == "Complete"
                else [("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")]
            )
        ],
    }
    if condition == "Complete":
        job["status"]["completionTime"] = stamp
        job["status"]["succeeded"] = 1
    else:
        job["status"]["failed"] = 1
    await client.update_status(JOBS, job)


async def test_every_minute_one_job_per_scheduled_minute(
    client: rest.Client, ns: str, clock: FakeClock, controller: manager.ControllerManager
) -> None:
    await client.create(CRONJOBS, cron_job("tick"), ns)
    await asyncio.sleep(0.5)
    assert await jobs_of(client, ns, "tick") == []  # not due yet
    for expected in (1, 2):
        await next_minute(clock)
        jobs = await eventually(lambda n=expected: _at_least(client, ns, "tick", n), timeout=10)
        assert len(jobs) == expected
    first, second = jobs
    minute = int(clock.now()) // 60
    assert [j["metadata"]["name"] for j in jobs] == [f"tick-{minute - 1}", f"tick-{minute}"]
    ref = first["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "tick", True)
    annotations = second["metadata"]["annotations"]
    assert annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] == meta.format_time(
        minute * 60
    )
    cj = await client.get(CRONJOBS, "tick", ns)
    assert cj["status"]["lastScheduleTime"] == meta.format_time(minute * 60)
    assert {a["name"] for a in cj["status"]["active"]} == {f"tick-{minute - 1}", f"tick-{minute}"}

    async def two_created() -> bool:
        reasons = [r for r, _ in await events_of(client, ns, "tick")]
        return reasons.count("SuccessfulCreate") == 2

    await eventually(two_created, timeout=10)  # events are written in the background


async def _at_least(client: rest.Client, ns: str, name: str, n: int) -> list[Any] | None:
    jobs = await jobs_of(client, ns, name)
    return jobs if len(jobs) >= n else None


async def test_forbid_skips_a_run_while_one_is_active(
    client: rest.Client, ns: str, clock: FakeClock, controller: manager.ControllerManager
) -> None:
    await client.create(CRONJOBS, cron_job("forbid", concurrencyPolicy="Forbid"), ns)
    await next_minute(clock)
    [running] = await eventually(lambda: _at_least(client, ns, "forbid", 1), timeout=10)
    await next_minute(clock)

    async def skipped() -> bool:
        return (
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        ) in await events_of(client, ns, "forbid")

    await eventually(skipped, timeout=10)
    assert [j["metadata"]["name"] for j in await jobs_of(client, ns, "forbid")] == [
        running["metadata"]["name"]
    ]
    # Once it finishes, the next minute runs again.
    await finish(client, running, "Complete", clock.now())
    await next_minute(clock)
    jobs = await eventually(lambda: _at_least(client, ns, "forbid", 2), timeout=10)
    cj = await client.get(CRONJOBS, "forbid", ns)
    assert [a["name"] for a in cj["status"]["active"]] == [jobs[-1]["metadata"]["name"]]
    assert cj["status"]["lastSuccessfulTime"] is not None


async def test_replace_deletes_the_running_job(
    client: rest.Client, ns: str, clock: FakeClock, controller: manager.ControllerManager
) -> None:
    await client.create(CRONJOBS, cron_job("replace", concurrencyPolicy="Replace"), ns)
    await next_minute(clock)
    [first] = await eventually(lambda: _at_least(client, ns, "replace", 1), timeout=10)
    await next_minute(clock)

    async def replaced() -> list[Any] | None:
        jobs = await jobs_of(client, ns, "replace")
        names = [j["metadata"]["name"] for j in jobs]
        return jobs if len(jobs) == 1 and names != [first["metadata"]["name"]] else None

    await eventually(replaced, timeout=10)

    async def deleted() -> bool:
        return "SuccessfulDelete" in [r for r, _ in await events_of(client, ns, "replace")]

    await eventually(deleted, timeout=10)


async def test_history_limits_keep_the_newest_finished_jobs(
    client: rest.Client, ns: str, clock: FakeClock, controller: manager.ControllerManager
) -> None:
    cj = cron_job("history", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)
    await client.create(CRONJOBS, cj, ns)
    created: list[dict[str, Any]] = []
    for i in range(4):
        await next_minute(clock)
        jobs = await eventually(lambda n=i + 1: _at_least_total(client, ns, "history", created, n))
        job = next(
            j for j in jobs if j["metadata"]["name"] not in {c["metadata"]["name"] for c in created}
        )
        created.append(job)
        await finish(client, job, "Complete" if i % 2 == 0 else "Failed", clock.now() + i)

    async def trimmed() -> list[str] | None:
        names = [j["metadata"]["name"] for j in await jobs_of(client, ns, "history")]
        return names if len(names) == 2 else None

    kept = await eventually(trimmed, timeout=10)
    # The newest success (3rd) and the newest failure (4th) remain.
    assert kept == sorted([created[2]["metadata"]["name"], created[3]["metadata"]["name"]])


async def _at_least_total(
    client: rest.Client, ns: str, name: str, seen: list[Any], n: int
) -> list[Any] | None:
    jobs = await jobs_of(client, ns, name)
    names = {j["metadata"]["name"] for j in jobs} | {c["metadata"]["name"] for c in seen}
    return jobs if len(names) >= n else None


async def test_too_many_missed_times_warns_and_runs_the_latest(
    client: rest.Client, ns: str, clock: FakeClock, controller: manager.ControllerManager
) -> None:
    cj = cron_job("late", suspend=True)
    await client.create(CRONJOBS, cj, ns)
    clock.advance(150 * 60)  # 150 missed minutes while suspended
    live = await client.get(CRONJOBS, "late", ns)
    live["spec"]["suspend"] = False
    await client.update(CRONJOBS, live)
    jobs = await eventually(lambda: _at_least(client, ns, "late", 1), timeout=10)
    assert [j["metadata"]["name"] for j in jobs] == [f"late-{int(clock.now()) // 60}"]
    warning = (
        "TooManyMissedTimes",
        "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
        "or check clock skew",
    )

    async def warned() -> bool:
        return warning in await events_of(client, ns, "late")

    await eventually(warned, timeout=10)


async def test_starting_deadline_skips_a_late_start(
    client: rest.Client, ns: str, clock: FakeClock, controller: manager.ControllerManager
) -> None:
    # Due every hour; 30 minutes late with a 10-minute deadline: no Job, a MissSchedule.
    await client.create(
        CRONJOBS, cron_job("strict", "0 * * * *", startingDeadlineSeconds=10, suspend=True), ns
    )
    now = clock.now()
    clock.advance(3600 - now % 3600 + 30 * 60)
    live = await client.get(CRONJOBS, "strict", ns)
    live["spec"]["suspend"] = False
    await client.update(CRONJOBS, live)
    await asyncio.sleep(1.0)
    assert await jobs_of(client, ns, "strict") == []
    # Within the deadline of the next hour it runs.
    clock.advance(30 * 60 + 5)
    jobs = await eventually(lambda: _at_least(client, ns, "strict", 1), timeout=10)
    assert len(jobs) == 1
