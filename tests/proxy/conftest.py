"""Proxy tests: a real API server (background thread), informers on the test's loop,
and the in-memory kernel (``pilothouse.proxy.fake``) unless a test is marked root."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest


def r(group: str, plural: str) -> resources.Resource:
    res = resources.DEFAULT.by_path(group, "v1", plural)
    assert res is not None
    return res


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()


@pytest.fixture
async def ns(client: rest.Client) -> str:
    name = "p-" + uuid.uuid4().hex[:8]
    await client.create(r("", "namespaces"), {"metadata": {"name": name}})
    return name
