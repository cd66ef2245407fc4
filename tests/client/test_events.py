"""The event recorder: repeated events count up on one Event; floods are combined."""

from __future__ import annotations

import uuid

from pilothouse import supervisor as supervision
from pilothouse.api import resources
from pilothouse.client import events, rest
from pilothouse.testing import eventually

CM = resources.DEFAULT.by_path("", "v1", "configmaps")
EV = resources.DEFAULT.by_path("", "v1", "events")
NS = resources.DEFAULT.by_path("", "v1", "namespaces")
assert CM is not None and EV is not None and NS is not None


async def test_repeats_are_counted_and_similar_events_combined(
    client: rest.Client, supervisor: supervision.Supervisor
) -> None:
    ns = "e-" + uuid.uuid4().hex[:8]
    await client.create(NS, {"metadata": {"name": ns}})
    obj = await client.create(CM, {"metadata": {"name": "subject"}}, ns)
    recorder = events.EventRecorder(client, component="test-controller", host="node-1")
    recorder.start(supervisor)
    try:
        for _ in range(3):
            recorder.event(obj, events.WARNING, "BackOff", "Back-off restarting failed container")
        recorder.event(obj, events.NORMAL, "Pulled", "pulled it")
        for i in range(12):
            recorder.event(obj, events.NORMAL, "Scaled", f"scaled to {i}")

        async def settled() -> list[dict] | None:
            items = (await client.list(EV, ns))["items"]
            backoff = [e for e in items if e["reason"] == "BackOff"]
            combined = [
                e for e in items if e["message"].startswith("(combined from similar events)")
            ]
            return items if backoff and backoff[0]["count"] == 3 and combined else None

        items = await eventually(settled)
    finally:
        await recorder.stop()
    backoff = [e for e in items if e["reason"] == "BackOff"]
    assert len(backoff) == 1
    e = backoff[0]
    assert e["type"] == "Warning" and e["source"] == {
        "component": "test-controller",
        "host": "node-1",
    }
    assert (
        e["involvedObject"]["kind"] == "ConfigMap"
        and e["involvedObject"]["uid"] == obj["metadata"]["uid"]
    )
    assert e["firstTimestamp"] <= e["lastTimestamp"]
    scaled = [e for e in items if e["reason"] == "Scaled"]
    # Ten distinct messages are kept; later ones fold into one combined event.
    assert len(scaled) == 11
    assert sum(1 for e in scaled if e["message"].startswith("(combined from similar events)")) == 1
