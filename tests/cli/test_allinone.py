"""How the all-in-one server's components reach its API: the in-process transport by
default (``Options.in_process``), the private socket with ``pilothouse server
--no-in-process-components`` — and the cluster works either way."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest


def _resource(group: str, plural: str) -> resources.Resource:
    found = resources.DEFAULT.by_path(group, "v1", plural)
    assert found is not None
    return found


RS = _resource("apps", "replicasets")
PODS = _resource("", "pods")


def replicaset(name: str, replicas: int) -> dict[str, object]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]},
            },
        },
    }


async def _pods_made(srv: testing.ServerThread, name: str) -> list[str]:
    assert srv.cluster.controller_manager is not None
    await asyncio.wait_for(srv.cluster.controller_manager.ready.wait(), 20)
    assert srv.server.in_process is not None
    async with rest.Client(config.in_process(srv.server.in_process)) as c:
        await c.create(RS, replicaset(name, 3), "default")
        for _ in range(200):
            pods = await c.list(PODS, "default", label_selector=f"app={name}")
            if len(pods["items"]) == 3:
                return sorted(p["metadata"]["name"] for p in pods["items"])
            await asyncio.sleep(0.05)
    raise AssertionError("the ReplicaSet controller made no pods")


def test_components_use_the_socket_when_asked(tmp_path: Path) -> None:
    srv = testing.ServerThread(tmp_path / "data", controllers=True)
    srv.cluster.options.in_process = False
    with srv:
        assert srv.cluster.clients
        assert all(
            c.config.unix_socket == str(srv.server.socket_path) and c.config.in_process is None
            for c in srv.cluster.clients
        )
        assert len(srv.call(_pods_made(srv, "sock"), timeout=60)) == 3


def test_components_in_process_by_default(tmp_path: Path) -> None:
    with testing.ServerThread(tmp_path / "data", controllers=True) as srv:
        assert srv.cluster.clients
        assert all(
            c.config.in_process is srv.server.in_process and c.config.unix_socket is None
            for c in srv.cluster.clients
        )
        assert len(srv.call(_pods_made(srv, "local"), timeout=60)) == 3
        # The ReplicaSet controller writes as its own ServiceAccount: a client derived from
        # the controller manager's config, in process too.
        assert srv.cluster.controller_manager is not None
        own = srv.cluster.controller_manager.controllers["replicaset"].client  # type: ignore[attr-defined]
        assert own not in srv.cluster.clients
        assert own.config.in_process is srv.server.in_process
        assert own.config.token_source is not None  # its ServiceAccount's token
