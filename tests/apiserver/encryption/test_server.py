"""Encryption at rest end to end: what lands in the SQLite file, what clients read, the
k3s-style operations, and a server that refuses to start rather than serve ciphertext."""

from __future__ import annotations

import asyncio
import base64
import json
import pathlib
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.apiserver import serverconfig
from pilothouse.apiserver.auth import certs
from pilothouse.apiserver.encryption import manager
from pilothouse.client import config, rest
from pilothouse.storage import sqlite, value

SECRETS = resources.DEFAULT.by_path("", "v1", "secrets")
VALUE = "s3cr3t-value-0f-a-test"
B64 = base64.b64encode(VALUE.encode()).decode()


def secret(name: str, value: str = VALUE) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"k": base64.b64encode(value.encode()).decode()},
    }


def stored(data_dir: pathlib.Path, key: str) -> bytes:
    """The value the SQLite file holds for ``key`` now (read straight from the file)."""
    conn = sqlite3.connect(data_dir / "db" / "state.db")
    try:
        row = conn.execute(
            "SELECT g.value FROM latest AS l JOIN log AS g ON g.revision = l.revision"
            " WHERE l.key = ?",
            (key,),
        ).fetchone()
    finally:
        conn.close()
    assert row is not None, key
    value: bytes = row[0]
    return value


def cli(data_dir: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pilothouse.cli.main",
            "secrets-encrypt",
            *args,
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def server(tmp_path: pathlib.Path) -> AsyncIterator[testing.ServerThread]:
    with testing.server_thread(tmp_path / "data") as srv:
        yield srv


def client_for(srv: testing.ServerThread) -> rest.Client:
    return rest.Client(config.local_socket(srv.server.socket_path))


async def wait_finished(data_dir: pathlib.Path, timeout: float = 30.0) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        status = json.loads(cli(data_dir, "status", "-o", "json").stdout)
        return status if status["stage"] == "reencrypt_finished" else None

    result: dict[str, Any] = await testing.eventually(finished, timeout=timeout)
    return result


async def test_a_new_cluster_stores_secrets_encrypted_and_serves_them_plain(
    server: testing.ServerThread, tmp_path: pathlib.Path
) -> None:
    data_dir = tmp_path / "data"
    managed = data_dir / "cred" / "encryption-config.json"
    assert managed.stat().st_mode & 0o777 == 0o600
    async with client_for(server) as c:
        await c.create(SECRETS, secret("s"), "default")
        raw = stored(data_dir, "/registry/secrets/default/s")
        assert raw.startswith(b"k8s:enc:aescbc:v1:aescbckey-")
        assert VALUE.encode() not in raw and B64.encode() not in raw
        got = await c.get(SECRETS, "s", "default")
        assert got["data"] == {"k": B64}
        listed = await c.list(SECRETS, "default")
        assert [s["data"] for s in listed["items"]] == [{"k": B64}]
    # Other resources are stored as they are.
    assert stored(data_dir, "/registry/namespaces/default").startswith(b"{")
    # Nowhere in the database file is the value in the clear.
    blob = b"".join(p.read_bytes() for p in (data_dir / "db").iterdir() if p.is_file())
    assert VALUE.encode() not in blob and B64.encode() not in blob
    status = cli(data_dir, "status")
    assert status.returncode == 0, status.stderr
    assert "Encryption Status: Enabled" in status.stdout
    assert "Current Rotation Stage: start" in status.stdout
    assert " *      AES-CBC   aescbckey-" in status.stdout


async def test_rotate_keys_reencrypts_every_secret_while_reads_keep_working(
    server: testing.ServerThread, tmp_path: pathlib.Path
) -> None:
    data_dir = tmp_path / "data"
    names = [f"s{i:03}" for i in range(150)]
    async with client_for(server) as c:
        # Secrets the server made itself (the join token's bootstrap-token Secret).
        present = len((await c.list(SECRETS))["items"])
        await asyncio.gather(
            *(c.create(SECRETS, secret(n, f"{VALUE}-{n}"), "default") for n in names)
        )
        old_prefix = value.value_prefix(stored(data_dir, "/registry/secrets/default/s000"))
        reads = 0
        stop = asyncio.Event()

        async def keep_reading() -> None:
            nonlocal reads
            while not stop.is_set():
                for n in names[::15]:
                    got = await c.get(SECRETS, n, "default")
                    assert base64.b64decode(got["data"]["k"]).decode() == f"{VALUE}-{n}"
                    reads += 1
                listed = await c.list(SECRETS, "default")
                assert len(listed["items"]) == len(names)
                await asyncio.sleep(0)

        reader = asyncio.ensure_future(keep_reading())
        rotated = await asyncio.to_thread(cli, data_dir, "rotate-keys")
        assert rotated.returncode == 0, rotated.stderr
        assert rotated.stdout.strip() == "keys rotated, reencryption started"
        status = await wait_finished(data_dir)
        stop.set()
        await reader
    assert reads > 0
    total = len(names) + present
    assert status["reencrypted"] == total and status["secrets"] == total
    new_name = status["activekey"]
    assert status["inactivekeys"] == []  # the old key is gone once nothing uses it
    for n in names:
        raw = stored(data_dir, f"/registry/secrets/default/{n}")
        assert raw.startswith(f"k8s:enc:aescbc:v1:{new_name}:".encode()), n
        assert value.value_prefix(raw) != old_prefix
    managed = json.loads((data_dir / "cred" / "encryption-config.json").read_text())
    keys = managed["resources"][0]["providers"][0]["aescbc"]["keys"]
    assert [k["name"] for k in keys] == [new_name]


async def test_disable_then_enable_rewrites_secrets_each_way(
    server: testing.ServerThread, tmp_path: pathlib.Path
) -> None:
    data_dir = tmp_path / "data"
    async with client_for(server) as c:
        await c.create(SECRETS, secret("s"), "default")
        done = cli(data_dir, "disable", "--wait")
        assert done.returncode == 0, done.stderr
        assert "secrets-encryption disabled" in done.stdout
        assert stored(data_dir, "/registry/secrets/default/s").startswith(b"{")
        assert "Encryption Status: Disabled" in cli(data_dir, "status").stdout
        await c.create(SECRETS, secret("t"), "default")
        assert stored(data_dir, "/registry/secrets/default/t").startswith(b"{")
        done = cli(data_dir, "enable", "--wait")
        assert done.returncode == 0, done.stderr
        for name in ("s", "t"):
            assert stored(data_dir, f"/registry/secrets/default/{name}").startswith(b"k8s:enc:")
            assert (await c.get(SECRETS, name, "default"))["data"] == {"k": B64}
        again = cli(data_dir, "enable")
        assert again.stdout.strip() == "secrets-encryption already enabled"


async def test_a_data_dir_from_before_encryption_keeps_working(tmp_path: pathlib.Path) -> None:
    data_dir = tmp_path / "data"
    old = sqlite.SQLiteStore(data_dir / "db" / "state.db", compact_interval=0)
    await old.start()
    body = secret("old") | {"metadata": {"name": "old", "namespace": "default", "uid": "u1"}}
    await old.create("/registry/secrets/default/old", json.dumps(body).encode())
    await old.close()
    with testing.server_thread(data_dir) as srv:
        assert not (data_dir / "cred" / "encryption-config.json").exists()
        async with client_for(srv) as c:
            assert (await c.get(SECRETS, "old", "default"))["data"] == {"k": B64}
            status = cli(data_dir, "status")
            assert (
                status.stdout.strip() == "Encryption Status: Disabled, no configuration file found"
            )
            enabled = cli(data_dir, "enable", "--wait")
            assert enabled.returncode == 0, enabled.stderr
            assert stored(data_dir, "/registry/secrets/default/old").startswith(b"k8s:enc:aescbc:")
            assert (await c.get(SECRETS, "old", "default"))["data"] == {"k": B64}


async def test_a_server_without_the_key_refuses_to_start(tmp_path: pathlib.Path) -> None:
    data_dir = tmp_path / "data"
    with testing.server_thread(data_dir) as srv:
        async with client_for(srv) as c:
            await c.create(SECRETS, secret("s"), "default")
    managed = data_dir / "cred" / "encryption-config.json"
    good = managed.read_text()

    managed.unlink()
    with pytest.raises(serverconfig.StartupError) as info:
        testing.ServerThread(data_dir).start()
    message = str(info.value)
    assert "/registry/secrets/default/s cannot be read" in message
    assert "encryption-config.json is missing" in message
    assert VALUE not in message

    # The same key name with other key bytes: AES-CBC decrypts to garbage, never served.
    doc = json.loads(good)
    key = doc["resources"][0]["providers"][0]["aescbc"]["keys"][0]
    key["secret"] = base64.b64encode(bytes(32)).decode()
    managed.write_text(json.dumps(doc))
    with pytest.raises(serverconfig.StartupError, match=r"cannot be (read|decoded)"):
        testing.ServerThread(data_dir).start()

    key["secret"] = "not base64!"
    managed.write_text(json.dumps(doc))
    with pytest.raises(serverconfig.StartupError, match="secrets must be base64 encoded"):
        testing.ServerThread(data_dir).start()

    managed.write_text(good)
    with testing.server_thread(data_dir) as srv:
        async with client_for(srv) as c:
            assert (await c.get(SECRETS, "s", "default"))["data"] == {"k": B64}


def test_the_command_line_says_why_it_will_not_start(tmp_path: pathlib.Path) -> None:
    data_dir = tmp_path / "data"
    proc = testing.ServerProcess(data_dir).start()
    try:
        kubeconfig = config.load_kubeconfig(proc.kubeconfig)

        async def create() -> None:
            async with rest.Client(kubeconfig) as c:
                await c.create(SECRETS, secret("s"), "default")

        asyncio.run(create())
    finally:
        proc.stop()
    (data_dir / "cred" / "encryption-config.json").unlink()
    again = testing.ServerProcess(data_dir, port=proc.port)
    with pytest.raises(RuntimeError, match="server exited with 1") as info:
        again.start()
    assert "pilothouse: cannot start: /registry/secrets/default/s cannot be read" in str(info.value)
    assert "Traceback" not in again.log_path.read_text()


async def test_a_user_supplied_configuration_is_used_and_left_alone(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "encryption.yaml"
    key = base64.b64encode(bytes(range(32))).decode()
    path.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
        "  - resources: [secrets, configmaps]\n    providers:\n"
        f"      - aesgcm: {{keys: [{{name: gcm1, secret: {key}}}]}}\n      - identity: {{}}\n"
    )
    data_dir = tmp_path / "data"
    with testing.server_thread(data_dir, encryption_provider_config=path) as srv:
        async with client_for(srv) as c:
            await c.create(SECRETS, secret("s"), "default")
            cm = resources.DEFAULT.by_path("", "v1", "configmaps")
            await c.create(cm, {"metadata": {"name": "c"}, "data": {"k": VALUE}}, "default")
        assert stored(data_dir, "/registry/secrets/default/s").startswith(
            b"k8s:enc:aesgcm:v1:gcm1:"
        )
        assert stored(data_dir, "/registry/configmaps/default/c").startswith(
            b"k8s:enc:aesgcm:v1:gcm1:"
        )
        assert not (data_dir / "cred" / "encryption-config.json").exists()
        refused = cli(data_dir, "rotate-keys")
        assert refused.returncode == 1
        assert "Error from server (BadRequest)" in refused.stderr
        assert "--encryption-provider-config" in refused.stderr
        status = json.loads(cli(data_dir, "status", "-o", "json").stdout)
        assert status["managed"] is False and status["activekey"] == "gcm1"


async def test_only_cluster_administrators_may_manage_encryption(
    server: testing.ServerThread,
) -> None:
    pki = server.server.pki
    assert pki is not None
    cert, key = certs.ensure_client_pair(
        pki, "test-node", common_name="system:node:n1", organizations=["system:nodes"]
    )
    node = config.ClusterConfig(
        server=server.url,
        ca_data=pki.ca_cert.read_bytes(),
        cert_data=cert.read_bytes(),
        key_data=key.read_bytes(),
    )
    async with rest.Client(node) as c:
        with pytest.raises(errors.StatusError) as info:
            await c.request("GET", "/v1-pilothouse/encrypt/status")
        assert info.value.code == 403
        assert info.value.message == (
            'forbidden: User "system:node:n1" cannot get path "/v1-pilothouse/encrypt/status"'
        )
        with pytest.raises(errors.StatusError) as info:
            await c.request("PUT", "/v1-pilothouse/encrypt/config", body={"stage": "rotate_keys"})
        assert info.value.code == 403
    async with client_for(server) as admin:
        with pytest.raises(errors.StatusError) as info:
            await admin.request("PUT", "/v1-pilothouse/encrypt/config", body={"stage": "prepare"})
        assert info.value.code == 400
        assert 'unknown stage "prepare" requested' in info.value.message


async def test_an_unchanged_update_rewrites_a_value_under_an_older_key(
    server: testing.ServerThread, tmp_path: pathlib.Path
) -> None:
    """Upstream's way to re-encrypt by hand (``kubectl get secrets -o json | kubectl
    replace -f -``): a no-op update of a stale value writes it again."""
    data_dir = tmp_path / "data"
    transforming = server.server.transforming
    assert transforming is not None
    async with client_for(server) as c:
        created = await c.create(SECRETS, secret("s"), "default")
        # Unchanged and fresh: no write, the same resourceVersion.
        same = await c.update(SECRETS, created)
        assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        # A new key first (as secrets-encrypt would, but without the re-encryption).
        encryption = server.server.encryption
        assert encryption.config is not None
        keys = list(encryption._managed_keys())
        fresh = manager.new_key({k.name for k in keys})
        server.loop.call_soon_threadsafe(
            encryption._install, manager.managed_config([fresh, *keys], enabled=True)
        )
        await testing.eventually(
            lambda: _true_when(transforming.needs_rewrite("/registry/secrets/default/s", 0))
        )
        replaced = await c.update(SECRETS, same)
        assert replaced["metadata"]["resourceVersion"] != same["metadata"]["resourceVersion"]
        assert replaced["data"] == same["data"]
        assert stored(data_dir, "/registry/secrets/default/s").startswith(
            f"k8s:enc:aescbc:v1:{fresh.name}:".encode()
        )
        again = await c.update(SECRETS, replaced)
        assert again["metadata"]["resourceVersion"] == replaced["metadata"]["resourceVersion"]


async def _true_when(value: bool) -> bool:
    return value
