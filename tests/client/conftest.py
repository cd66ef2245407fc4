"""Client tests against a real server: an async client on the test's own loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pilothouse import testing
from pilothouse.client import config, rest


@pytest.fixture
async def client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.load_kubeconfig(api_server.kubeconfig))
    yield c
    await c.close()


@pytest.fixture
async def local_client(api_server: testing.ServerThread) -> AsyncIterator[rest.Client]:
    c = rest.Client(config.local_socket(api_server.server.socket_path))
    yield c
    await c.close()
