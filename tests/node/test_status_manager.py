"""The agent's status manager writes what changed, and writes again what the API no
longer holds (a condition someone else changed, as the node lifecycle controller does)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse import supervisor, testing
from pilothouse.client import config, rest
from pilothouse.node.status_manager import PODS, StatusManager

Obj = dict[str, Any]
NOW = "2026-01-01T00:00:00Z"


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


def _status(ready: str) -> Obj:
    return {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": ready, "lastTransitionTime": NOW},
            {"type": "ContainersReady", "status": ready, "lastTransitionTime": NOW},
        ],
    }


def _ready(pod: Obj) -> str:
    return next(c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready")


async def test_a_condition_changed_behind_its_back_is_written_again(client: rest.Client) -> None:
    name = f"sm-{uuid.uuid4().hex[:6]}"
    spec = {"nodeName": "somewhere", "containers": [{"name": "c", "image": "busybox"}]}
    pod = await client.create(PODS, {"metadata": {"name": name}, "spec": spec}, "default")
    tree = supervisor.Supervisor("test")
    manager = StatusManager(client, workers=2)
    manager.start(tree)
    try:
        manager.set(pod, _status("True"))
        await manager.flush()
        assert manager.writes == 1
        held = await client.get(PODS, name, "default")
        assert _ready(held) == "True"

        manager.set(held, _status("True"))  # nothing changed: nothing written
        await manager.flush()
        assert manager.writes == 1

        # The node lifecycle controller marks it not Ready while the agent is away.
        marked = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
        await client.patch(PODS, name, marked, "default", subresource="status")
        held = await client.get(PODS, name, "default")
        assert _ready(held) == "False"

        manager.set(held, _status("True"))  # the pod's next sync: Ready again
        await manager.flush()
        assert manager.writes == 2
        assert _ready(await client.get(PODS, name, "default")) == "True"
    finally:
        await tree.stop()
        await client.delete(PODS, name, "default")
