"""The API server on etcd: the same API, encrypted Secrets in etcd, and Statuses (not
500s) while etcd is away."""

from __future__ import annotations

import asyncio
import base64
import os
import pathlib
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.client import config, rest
from pilothouse.storage.etcd import client as etcd_client
from pilothouse.storage.etcd import proto
from pilothouse.storage.etcd import testing as etcd_testing

SECRETS = resources.DEFAULT.by_path("", "v1", "secrets")
CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")


@pytest.fixture
def prefix() -> str:
    return f"/clusters/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def server(
    tmp_path: pathlib.Path, etcd_server: etcd_testing.EtcdProcess, prefix: str
) -> Iterator[testing.ServerThread]:
    with testing.server_thread(
        tmp_path / "data", datastore_endpoint=etcd_server.endpoint, datastore_prefix=prefix
    ) as srv:
        yield srv


def client_for(srv: testing.ServerThread) -> rest.Client:
    return rest.Client(config.local_socket(srv.server.socket_path))


async def raw(endpoint: str, key: bytes) -> proto.KeyValue:
    c = etcd_client.Client(etcd_client.parse_endpoints(endpoint))
    try:
        found = await c.range(proto.RangeRequest(key=key))
    finally:
        await c.close()
    assert found.kvs, key
    return found.kvs[0]


async def test_secrets_sit_encrypted_in_etcd_under_the_prefix(
    server: testing.ServerThread, etcd_server: etcd_testing.EtcdProcess, prefix: str
) -> None:
    async with client_for(server) as c:
        created = await c.create(
            SECRETS,
            {"metadata": {"name": "s"}, "data": {"k": base64.b64encode(b"etcd-value").decode()}},
            "default",
        )
        kv = await raw(etcd_server.endpoint, f"{prefix}/registry/secrets/default/s".encode())
        assert kv.value.startswith(b"k8s:enc:aescbc:v1:")
        assert b"etcd-value" not in kv.value and b"ZXRjZC12YWx1ZQ" not in kv.value
        assert created["metadata"]["resourceVersion"] == str(kv.mod_revision)
        got = await c.get(SECRETS, "s", "default")
        assert base64.b64decode(got["data"]["k"]) == b"etcd-value"
        cm = await c.create(CONFIGMAPS, {"metadata": {"name": "c"}, "data": {"a": "b"}}, "default")
        cm_kv = await raw(etcd_server.endpoint, f"{prefix}/registry/configmaps/default/c".encode())
        assert cm_kv.value.startswith(b"{")
        # Optimistic concurrency on the mod revision.
        stale = dict(cm, data={"a": "c"})
        await c.update(CONFIGMAPS, dict(cm, data={"a": "first"}))
        with pytest.raises(errors.StatusError) as info:
            await c.update(CONFIGMAPS, stale)
        assert info.value.code == 409


@pytest.mark.kubectl
def test_kubectl_against_a_server_on_etcd(
    server: testing.ServerThread, etcd_server: etcd_testing.EtcdProcess, prefix: str
) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig)}

    def run(*args: str) -> str:
        proc = subprocess.run([kubectl, *args], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    run("create", "secret", "generic", "s", "--from-literal=k=v")
    stored = asyncio.run(raw(etcd_server.endpoint, f"{prefix}/registry/secrets/default/s".encode()))
    assert stored.value.startswith(b"k8s:enc:aescbc:v1:")
    assert b"dg==" not in stored.value and b'"data"' not in stored.value
    assert run("get", "secret", "s", "-o", "jsonpath={.data.k}") == "dg=="
    watcher = subprocess.Popen(
        [kubectl, "get", "configmaps", "-w", "-o", "name"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        time.sleep(1.0)
        run("create", "configmap", "watched", "--from-literal=a=b")
        stdout = watcher.stdout
        assert stdout is not None
        lines: list[str] = []

        def read() -> None:
            for line in stdout:
                lines.append(line)
                if line == "configmap/watched\n":
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(20)
        assert "configmap/watched\n" in lines, lines
    finally:
        watcher.kill()
        watcher.wait()


async def test_etcd_away_means_503_for_writes_and_reads_from_the_cache_go_on(
    tmp_path: pathlib.Path,
) -> None:
    etcd = etcd_testing.EtcdProcess(tmp_path / "etcd").start()
    try:
        with testing.server_thread(tmp_path / "data", datastore_endpoint=etcd.endpoint) as srv:
            async with client_for(srv) as c:
                await c.create(CONFIGMAPS, {"metadata": {"name": "before"}}, "default")
                etcd.stop()
                with pytest.raises(errors.StatusError) as info:
                    await c.create(CONFIGMAPS, {"metadata": {"name": "during"}}, "default")
                assert info.value.code in (503, 504)
                assert info.value.reason in (errors.SERVICE_UNAVAILABLE, errors.TIMEOUT)
                assert "Internal" not in info.value.message
                # Reads are served from the watch cache.
                assert (await c.get(CONFIGMAPS, "before", "default"))["metadata"][
                    "name"
                ] == "before"
                await asyncio.to_thread(etcd.start)

                async def written() -> bool:
                    try:
                        await c.create(CONFIGMAPS, {"metadata": {"name": "after"}}, "default")
                    except errors.StatusError as exc:
                        if exc.code in (503, 504):
                            return False
                        raise
                    return True

                await testing.eventually(written, timeout=30)
                names = [
                    i["metadata"]["name"] for i in (await c.list(CONFIGMAPS, "default"))["items"]
                ]
                assert "before" in names and "after" in names
    finally:
        etcd.close()


def test_a_server_started_before_etcd_waits_with_a_clear_message(tmp_path: pathlib.Path) -> None:
    etcd = etcd_testing.EtcdProcess(tmp_path / "etcd")  # not started yet
    proc = testing.ServerProcess(
        tmp_path / "data", extra_args=["--datastore-endpoint", etcd.endpoint]
    )
    starter = threading.Timer(3.0, etcd.start)
    try:
        starter.start()
        proc.start(timeout=60)
        log = proc.log_path.read_text()
        assert f"waiting for etcd at {etcd.endpoint}" in log
        assert "Traceback" not in log
    finally:
        starter.cancel()
        proc.stop()
        etcd.close()


async def test_a_list_at_a_compacted_revision_is_410_gone(server: testing.ServerThread) -> None:
    async with client_for(server) as c:
        first = await c.create(CONFIGMAPS, {"metadata": {"name": "a"}}, "default")
        old = first["metadata"]["resourceVersion"]
        await c.create(CONFIGMAPS, {"metadata": {"name": "b"}}, "default")
        paged = await c.list(CONFIGMAPS, "default", limit=1)
        token = paged["metadata"]["continue"]
        await c.create(CONFIGMAPS, {"metadata": {"name": "c"}}, "default")
        store = server.server.store
        assert store is not None
        compacted = server.call(store.compact(store.current_revision()))
        assert compacted > int(old)
        with pytest.raises(errors.StatusError) as info:
            await c.request(
                "GET",
                "/api/v1/namespaces/default/configmaps",
                params={"resourceVersion": old, "resourceVersionMatch": "Exact"},
            )
        assert info.value.code == 410 and info.value.reason == errors.EXPIRED
        assert f"too old resource version: {old}" in info.value.message
        # A continue token from before the compaction has expired too.
        with pytest.raises(errors.StatusError) as info:
            await c.list(CONFIGMAPS, "default", limit=1, continue_token=token)
        assert info.value.code == 410
