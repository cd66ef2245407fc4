"""The event recorder: repeated events count up on one Event; floods are combined."""

from __future__ import annotations

import uuid

import pytest

from pilothouse import supervisor as supervision
from pilothouse.api import resources
from pilothouse.client import events, fake, rest
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


async def test_caches_stay_bounded_by_the_objects_recently_written_about(
    supervisor: supervision.Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One Event per pod (a scheduler's Scheduled) must not leave one cache entry per pod
    for ever: upstream's aggregator and spam filter are LRUs, and so are ours."""
    monkeypatch.setattr(events, "CACHE_SIZE", 8)
    client = fake.FakeClient()
    recorder = events.EventRecorder(client, component="scheduler", host="h")
    recorder.start(supervisor)
    try:
        pods = [
            {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {"name": f"p{i}", "namespace": "d", "uid": f"u{i}"},
            }
            for i in range(30)
        ]
        for p in pods:
            recorder.event(p, events.NORMAL, "Scheduled", "placed")
        recorder.event(pods[-1], events.NORMAL, "Scheduled", "placed")  # recent: still deduplicated

        async def written() -> bool:
            return recorder.written == 31

        await eventually(written)
    finally:
        await recorder.stop()
    assert len(client.verbs("create", "events")) == 30
    assert len(client.verbs("patch", "events")) == 1
    assert max(len(recorder._seen), len(recorder._similar), len(recorder._buckets)) == 8
