"""/livez, /readyz and /healthz answer as upstream's healthz package, and reflect a part of
the server that is down: a loop being restarted, a shutdown under way."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest
import urllib3

from pilothouse import supervisor, testing
from pilothouse.apiserver import health


def get(srv: testing.ServerThread, path: str, *, admin: bool = False) -> tuple[int, str, str]:
    """GET as anyone (the probes are public), or as the admin (a single check is not)."""
    pki = srv.server.pki
    assert pki is not None
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    if admin:
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    pool = urllib3.PoolManager(ssl_context=ctx, retries=False, timeout=10)
    resp = pool.request("GET", srv.url + path)
    return resp.status, resp.headers.get("Content-Type", ""), resp.data.decode()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> testing.ServerThread:
    server = testing.ServerThread(tmp_path_factory.mktemp("health") / "data", controllers=True)
    # Restarts after a failure come quickly here, so the test need not wait a second.
    server.cluster.supervisor.backoff_initial = 0.3
    with server:
        wait_ready(server)
        yield server


def wait_ready(srv: testing.ServerThread) -> None:
    """Until ``/readyz`` passes: the components are started when ``start()`` returns, not
    yet up (the controllers' informers have yet to list)."""
    deadline = time.monotonic() + 30
    while get(srv, "/readyz")[0] != 200:
        assert time.monotonic() < deadline, get(srv, "/readyz?verbose", admin=True)
        time.sleep(0.05)


def test_verbose_output_lists_every_check_as_upstream(srv: testing.ServerThread) -> None:
    code, ctype, text = get(srv, "/readyz?verbose")
    assert code == 200 and ctype == "text/plain; charset=utf-8"
    assert text == (
        "[+]ping ok\n"
        "[+]log ok\n"
        "[+]etcd ok\n"
        "[+]etcd-readiness ok\n"
        "[+]informer-sync ok\n"
        "[+]apiserver ok\n"
        "[+]controller-manager ok\n"
        "[+]scheduler ok\n"
        "[+]shutdown ok\n"
        "readyz check passed\n"
    )
    code, _, text = get(srv, "/livez?verbose")
    assert code == 200
    assert text.splitlines() == [
        "[+]ping ok",
        "[+]log ok",
        "[+]etcd ok",
        "[+]apiserver ok",
        "[+]controller-manager ok",
        "[+]scheduler ok",
        "livez check passed",
    ]
    assert get(srv, "/readyz") == (200, "text/plain; charset=utf-8", "ok")
    assert get(srv, "/healthz")[2] == "ok"
    # A single check is not public (upstream's system:public-info-viewer names /livez,
    # /readyz and /healthz only): anonymous gets 403, the admin the answer.
    assert get(srv, "/livez/ping")[0] == 403
    assert get(srv, "/livez/ping", admin=True)[2] == "ok"


def test_exclude_and_unknown_exclusions(srv: testing.ServerThread) -> None:
    code, _, text = get(srv, "/readyz?verbose&exclude=etcd&exclude=nosuch")
    assert code == 200
    assert "[+]etcd excluded: ok\n" in text
    assert 'warn: some health checks cannot be excluded: no matches for "nosuch"\n' in text


def test_a_loop_being_restarted_fails_readyz_not_livez(srv: testing.ServerThread) -> None:
    tree = srv.cluster.supervisor
    gate = asyncio.Event()

    async def inject() -> None:
        # Hold the restart until the test has looked (the back-off sleep waits on it).
        sup, _ = tree.find("controller-manager/controllers/replicaset")
        real_sleep = sup._sleep

        async def held(delay: float) -> None:
            await gate.wait()

        sup._sleep = held
        tree.inject_failure("controller-manager/controllers/replicaset")
        await asyncio.sleep(0.05)
        sup._sleep = real_sleep

    srv.call(inject())
    try:
        code, _, text = get(srv, "/readyz")
        assert code == 500
        assert "[-]controller-manager failed: reason withheld\n" in text
        assert "[+]apiserver ok\n" in text and text.endswith("readyz check failed\n")
        # Down but restarting by itself: not a reason to restart the process.
        assert get(srv, "/livez")[0] == 200
        assert get(srv, "/readyz/controller-manager")[0] == 403  # reasons are not public
        code, _, text = get(srv, "/readyz/controller-manager", admin=True)
        assert code == 500 and text.startswith("internal server error: controllers/replicaset:")
        assert "restarting (InjectedFailure" in text
    finally:
        srv.loop.call_soon_threadsafe(gate.set)
    deadline = time.monotonic() + 10
    while get(srv, "/readyz")[0] != 200:
        assert time.monotonic() < deadline, get(srv, "/readyz?verbose")
        time.sleep(0.05)


def test_the_watch_cache_feed_restarts_with_a_fresh_listing(srv: testing.ServerThread) -> None:
    cache = srv.server.cache
    assert cache is not None
    before = cache.resyncs
    srv.call(_inject(srv, "apiserver/watch-cache"))
    deadline = time.monotonic() + 10
    while cache.resyncs == before or get(srv, "/readyz")[0] != 200:
        assert time.monotonic() < deadline, get(srv, "/readyz?verbose")
        time.sleep(0.05)
    code, _, text = get(srv, "/api/v1/namespaces/default", admin=True)
    assert code == 200 and '"name":"default"' in text.replace(" ", "")


async def _inject(srv: testing.ServerThread, path: str) -> None:
    srv.cluster.supervisor.inject_failure(path)


def test_readyz_fails_from_the_moment_shutdown_begins(tmp_path: Path) -> None:
    with testing.ServerThread(tmp_path / "data") as server:
        wait_ready(server)
        server.server.shutting_down = True  # what begin_shutdown sets first
        code, _, text = get(server, "/readyz?verbose")
        assert code == 500 and "[-]shutdown failed: reason withheld\n" in text
        assert get(server, "/livez")[0] == 200
        server.server.shutting_down = False


def test_a_component_is_not_ready_until_it_says_it_started() -> None:
    sup = supervisor.Supervisor("component")
    up = False
    probe = health.component(sup, started=lambda: up)
    live = health.component(sup, fatal_only=True)
    assert (probe(), live()) == ("starting", "")
    up = True
    assert probe() == ""


@pytest.mark.parametrize(
    "path",
    ["apiserver/customresources/crd-reconciler", "apiserver/aggregator/apiservice-availability"],
)
def test_the_crd_and_aggregator_loops_are_in_the_tree_readyz_sees(
    srv: testing.ServerThread, path: str
) -> None:
    tree = srv.cluster.supervisor
    gate = asyncio.Event()

    async def inject() -> None:
        sup, _ = tree.find(path)  # a KeyError if the loop were outside the tree
        real_sleep = sup._sleep

        async def held(delay: float) -> None:
            await gate.wait()

        sup._sleep = held
        tree.inject_failure(path)
        await asyncio.sleep(0.05)
        sup._sleep = real_sleep

    srv.call(inject())
    try:
        code, _, text = get(srv, "/readyz")
        assert code == 500 and "[-]apiserver failed: reason withheld\n" in text
        assert get(srv, "/livez")[0] == 200
        code, _, text = get(srv, "/readyz/apiserver", admin=True)
        name = path.removeprefix("apiserver/")
        assert code == 500 and f"{name}: restarting (InjectedFailure" in text, text
    finally:
        srv.loop.call_soon_threadsafe(gate.set)
    deadline = time.monotonic() + 10
    while get(srv, "/readyz")[0] != 200:
        assert time.monotonic() < deadline, get(srv, "/readyz?verbose")
        time.sleep(0.05)
