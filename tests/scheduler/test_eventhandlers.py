"""The scheduler's pod event handlers: a bound pod's status updates are taken without a
parse, and give the cache exactly what a parse would."""

from __future__ import annotations

import dataclasses
from typing import Any

from pilothouse.api import meta
from pilothouse.client import config, rest
from pilothouse.scheduler import scheduler, types

from .builders import node, pod


def _scheduler() -> scheduler.Scheduler:
    client = rest.Client(config.local_socket("/nonexistent"))  # never asked
    sched = scheduler.Scheduler(client)
    sched.cache.add_node(node("n1"))
    return sched


def _with(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A later version of ``obj`` (a new dict, as the informer hands over)."""
    out = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "2"}}
    for part, value in changes.items():
        out[part] = value
    return out


def _fields(info: types.PodInfo) -> dict[str, Any]:
    return {
        f.name: getattr(info, f.name)
        for f in dataclasses.fields(info)
        if f.name not in ("vector_cache",)
    }


async def test_a_status_update_swaps_the_object_and_reads_its_status() -> None:
    sched = _scheduler()
    bound = pod("p", cpu="1", labels={"app": "web"}, node_name="n1")
    bound["metadata"]["creationTimestamp"] = "2026-12-06T10:00:00Z"
    sched.handlers.on_pod_add(bound)
    cached = sched.cache.pods["default/p"]
    used = sched.cache.table.requested.copy()

    running = _with(
        bound,
        status={
            "phase": "Running",
            "startTime": "2026-12-06T10:00:05Z",
            "nominatedNodeName": "n1",
        },
    )
    # Decoded afresh, as every informer event is: equal values, dicts of its own.
    running["metadata"]["labels"] = dict(bound["metadata"]["labels"])
    running["metadata"]["uid"] = "".join(bound["metadata"]["uid"])
    sched.handlers.on_pod_update(bound, running)

    after = sched.cache.pods["default/p"]
    assert after is cached  # not parsed again
    assert after.pod is running
    # Exactly what a parse of the new object gives.
    assert _fields(after) == _fields(sched.pod_info(running))
    assert after.start_time == meta.parse_time("2026-12-06T10:00:05Z")
    assert (sched.cache.table.requested == used).all()
    # Nothing of the previous version is held through the cached pod.
    assert after.labels is running["metadata"]["labels"]
    assert after.uid is running["metadata"]["uid"]


async def test_label_and_spec_changes_are_parsed_again() -> None:
    sched = _scheduler()
    bound = pod("p", cpu="1", labels={"app": "web"}, node_name="n1")
    sched.handlers.on_pod_add(bound)
    cached = sched.cache.pods["default/p"]

    relabelled = _with(bound, metadata={**bound["metadata"], "labels": {"app": "db"}})
    sched.handlers.on_pod_update(bound, relabelled)
    assert sched.cache.pods["default/p"] is not cached
    assert sched.cache.pods["default/p"].labels == {"app": "db"}

    tolerant = _with(
        relabelled,
        spec={**relabelled["spec"], "tolerations": [{"key": "k", "operator": "Exists"}]},
    )
    sched.handlers.on_pod_update(relabelled, tolerant)
    assert sched.cache.pods["default/p"].tolerations == ({"key": "k", "operator": "Exists"},)
