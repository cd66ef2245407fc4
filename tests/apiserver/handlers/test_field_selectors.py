"""Field selectors are converted by the resource the request names.

events.k8s.io Events are stored as core Events: a selector on ``regarding.name`` must
still be accepted there (and mean ``involvedObject.name``), while core Events refuse it.
"""

from __future__ import annotations

from typing import Any


def test_events_k8s_io_selectors_use_their_own_field_labels(api: Any, namespace: str) -> None:
    for name in ("a", "b"):
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"ev-{name}"},
            "involvedObject": {"kind": "Pod", "name": name, "namespace": namespace},
            "reason": "Test",
            "message": "hello",
            "type": "Normal",
        }
        status, body = api.json("POST", f"/api/v1/namespaces/{namespace}/events", event)
        assert status == 201, body
    status, body = api.json(
        "GET",
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events?fieldSelector=regarding.name%3Da",
    )
    assert status == 200, body
    assert [e["regarding"]["name"] for e in body["items"]] == ["a"]
    status, body = api.json(
        "GET", f"/api/v1/namespaces/{namespace}/events?fieldSelector=involvedObject.name%3Db"
    )
    assert [e["involvedObject"]["name"] for e in body["items"]] == ["b"]
    status, body = api.json(
        "GET", f"/api/v1/namespaces/{namespace}/events?fieldSelector=regarding.name%3Da"
    )
    assert status == 400
    assert body["message"] == "field label not supported: regarding.name"
