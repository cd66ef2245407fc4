"""Secrets encrypted at rest, seen through the real kubectl (issue 13's checks)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from pilothouse import testing
from pilothouse.api import resources
from pilothouse.client import config, rest

pytestmark = pytest.mark.kubectl

KUBECTL = shutil.which("kubectl") or "kubectl"
SECRETS = resources.DEFAULT.by_path("", "v1", "secrets")


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[testing.ServerThread]:
    with testing.server_thread(tmp_path / "data") as srv:
        yield srv


def kubectl(srv: testing.ServerThread, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [KUBECTL, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(srv.kubeconfig)},
        timeout=60,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc


def secrets_encrypt(data_dir: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pilothouse.cli.main", "secrets-encrypt", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def stored(data_dir: pathlib.Path, key: str) -> bytes:
    conn = sqlite3.connect(data_dir / "db" / "state.db")
    try:
        (value,) = conn.execute(
            "SELECT g.value FROM latest AS l JOIN log AS g ON g.revision = l.revision"
            " WHERE l.key = ?",
            (key,),
        ).fetchone()
    finally:
        conn.close()
    return bytes(value)


def test_kubectl_secret_is_ciphertext_in_the_sqlite_file(
    server: testing.ServerThread, tmp_path: pathlib.Path
) -> None:
    data_dir = tmp_path / "data"
    kubectl(server, "create", "secret", "generic", "s", "--from-literal=k=v")
    raw = stored(data_dir, "/registry/secrets/default/s")
    assert raw.startswith(b"k8s:enc:aescbc:v1:")
    # The value "v" travels as base64 "dg=="; neither the JSON nor the value is there.
    assert b"dg==" not in raw and b'"data"' not in raw and b"Secret" not in raw
    got = kubectl(server, "get", "secret", "s", "-o", "jsonpath={.data.k}").stdout
    assert got == "dg=="
    assert base64.b64decode(got) == b"v"


def test_rotate_keys_and_reencrypt_while_kubectl_get_secret_keeps_working(
    server: testing.ServerThread, tmp_path: pathlib.Path
) -> None:
    data_dir = tmp_path / "data"
    kubectl(server, "create", "secret", "generic", "s", "--from-literal=k=v")

    # Many more Secrets (through the API: quicker than 300 kubectl runs), so the
    # re-encryption takes a while.
    async def bulk() -> None:
        async with rest.Client(config.local_socket(server.server.socket_path)) as c:
            await asyncio.gather(
                *(
                    c.create(
                        SECRETS,
                        {
                            "metadata": {"name": f"bulk-{i}"},
                            "data": {"k": base64.b64encode(f"value-{i}".encode()).decode()},
                        },
                        "default",
                    )
                    for i in range(300)
                )
            )

    asyncio.run(bulk())
    before = stored(data_dir, "/registry/secrets/default/s")
    answers: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def keep_getting() -> None:
        while not stop.is_set():
            proc = subprocess.run(
                [KUBECTL, "get", "secret", "s", "-o", "jsonpath={.data.k}"],
                capture_output=True,
                text=True,
                env={**os.environ, "KUBECONFIG": str(server.kubeconfig)},
                timeout=30,
            )
            if proc.returncode != 0 or proc.stdout != "dg==":
                failures.append(proc.stderr or proc.stdout)
            answers.append(proc.stdout)

    reader = threading.Thread(target=keep_getting)
    reader.start()
    try:
        time.sleep(0.3)  # a get or two before the rotation
        rotated = secrets_encrypt(data_dir, "rotate-keys", "--data-dir", str(data_dir))
        assert rotated.stdout.strip() == "keys rotated, reencryption started"
        deadline = time.monotonic() + 60
        while True:
            status = json.loads(
                secrets_encrypt(
                    data_dir, "status", "-o", "json", "--data-dir", str(data_dir)
                ).stdout
            )
            if status["stage"] == "reencrypt_finished" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status["stage"] == "reencrypt_finished"
        again = secrets_encrypt(data_dir, "reencrypt", "--wait", "--data-dir", str(data_dir))
        assert again.stdout.startswith("reencryption started")
    finally:
        time.sleep(0.3)
        stop.set()
        reader.join(60)
    assert not failures, failures[:3]
    assert len(answers) >= 3
    active = status["activekey"]
    after = stored(data_dir, "/registry/secrets/default/s")
    assert before.startswith(b"k8s:enc:aescbc:v1:") and not before.startswith(
        f"k8s:enc:aescbc:v1:{active}:".encode()
    )
    assert after.startswith(f"k8s:enc:aescbc:v1:{active}:".encode())
    for i in (0, 150, 299):
        assert stored(data_dir, f"/registry/secrets/default/bulk-{i}").startswith(
            f"k8s:enc:aescbc:v1:{active}:".encode()
        )
    out = kubectl(server, "get", "secret", "bulk-7", "-o", "jsonpath={.data.k}").stdout
    assert base64.b64decode(out) == b"value-7"
