"""etcd faults as a server sees them: not reachable at start (the server waits, says so,
answers /readyz false and /livez true, and does not exit), and lost while running
(/readyz false, writes answered with a Status, a watch resumes, nothing acknowledged
lost)."""

from __future__ import annotations

import asyncio
import pathlib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, rest
from pilothouse.storage.etcd import testing as etcd_testing

pytestmark = [pytest.mark.slow]

CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")


@pytest.fixture
def etcd(tmp_path: pathlib.Path) -> Iterator[etcd_testing.EtcdProcess]:
    if not etcd_testing.available():
        pytest.fail("etcd is not installed: run `make install-test` (Debian's etcd-server)")
    e = etcd_testing.EtcdProcess(tmp_path / "etcd")
    try:
        yield e.start()
    finally:
        e.close()


def probe(srv: testing.ServerProcess, path: str) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))
    try:
        with urllib.request.urlopen(srv.url + path, timeout=5, context=ctx) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, repr(exc)


def wait_for(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def configmap(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}


def test_a_server_started_before_etcd_waits_unready_and_then_serves(
    etcd: etcd_testing.EtcdProcess, tmp_path: pathlib.Path
) -> None:
    srv = testing.ServerProcess(
        tmp_path / "data", extra_args=["--datastore-endpoint", etcd.endpoint]
    ).start(timeout=60)

    async def create() -> None:
        async with rest.Client(config.load_kubeconfig(srv.kubeconfig)) as c:
            await c.create(CONFIGMAPS, configmap("before"), "default")

    asyncio.run(create())
    srv.stop()
    etcd.stop()
    srv.kubeconfig.unlink()  # so start() below cannot mistake the old one for readiness
    proc = testing.ServerProcess(
        srv.data_dir, port=srv.port, extra_args=["--datastore-endpoint", etcd.endpoint]
    )
    with pytest.raises(TimeoutError):
        proc.start(timeout=6)  # not ready without etcd…
    try:
        assert proc.proc is not None and proc.proc.poll() is None  # …but up, not exiting
        status, body = probe(proc, "/readyz")
        assert status == 500 and "[-]etcd failed" in body, (status, body)
        assert probe(proc, "/livez") == (200, "ok")
        status, body = probe(proc, "/api/v1/namespaces")
        assert status == 503 and '"reason":"ServiceUnavailable"' in body, body
        assert "waiting for its datastore" in body
        log = proc.log_path.read_text()
        assert "waiting for etcd at" in log and "is etcd running and reachable?" in log
        etcd.start()
        wait_for(lambda: probe(proc, "/readyz")[0] == 200, 60, "the server to be ready")

        async def read() -> str:
            async with rest.Client(config.load_kubeconfig(proc.kubeconfig)) as c:
                got = await c.get(CONFIGMAPS, "before", "default")
                return str(got["metadata"]["name"])

        assert wait_for(lambda: proc.kubeconfig.exists(), 30, "the kubeconfig")
        assert asyncio.run(read()) == "before"
    finally:
        proc.stop()


async def test_etcd_lost_while_running(
    etcd: etcd_testing.EtcdProcess, tmp_path: pathlib.Path
) -> None:
    srv = testing.ServerProcess(
        tmp_path / "data", extra_args=["--datastore-endpoint", etcd.endpoint]
    ).start(timeout=60)
    try:
        async with rest.Client(config.load_kubeconfig(srv.kubeconfig)) as c:
            created = await c.create(CONFIGMAPS, configmap("acked"), "default")
            events: list[tuple[str, str]] = []

            async def watch() -> None:
                version = created["metadata"]["resourceVersion"]
                while True:  # a client re-watches from its last version, as informers do
                    async for event in c.watch(
                        CONFIGMAPS, "default", resource_version=version, timeout_seconds=60
                    ):
                        if event["type"] == "ERROR":
                            raise AssertionError(event)
                        version = event["object"]["metadata"]["resourceVersion"]
                        events.append((event["type"], event["object"]["metadata"]["name"]))
                        if event["object"]["metadata"]["name"] == "after":
                            return

            watcher = asyncio.create_task(watch())
            etcd.stop()
            status = await asyncio.to_thread(
                wait_for,
                lambda: (
                    probe(srv, "/readyz")[0] == 500 and "[-]etcd failed" in probe(srv, "/readyz")[1]
                ),
                30,
                "/readyz to fail",
            )
            assert status
            with pytest.raises(errors.StatusError) as caught:
                await c.create(CONFIGMAPS, configmap("refused"), "default")
            assert caught.value.code in (503, 504), caught.value
            # Reads are served from the watch cache meanwhile.
            assert (await c.get(CONFIGMAPS, "acked", "default"))["metadata"]["uid"]
            etcd.start()
            await asyncio.to_thread(
                wait_for, lambda: probe(srv, "/readyz")[0] == 200, 60, "/readyz to pass"
            )
            await c.create(CONFIGMAPS, configmap("after"), "default")
            await asyncio.wait_for(watcher, 60)
            assert ("ADDED", "after") in events
            names = {o["metadata"]["name"] for o in (await c.list(CONFIGMAPS, "default"))["items"]}
            assert {"acked", "after"} <= names
    finally:
        srv.stop()
