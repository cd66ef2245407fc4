"""kill -9 while clients write: every acknowledged write survives, revisions never go back."""

from __future__ import annotations

import json
import ssl
import threading
import time
from pathlib import Path

import pytest
import urllib3

from pilothouse import testing

pytestmark = pytest.mark.slow

WRITERS = 6
MIN_ACKS = 400


def _pool(srv: testing.ServerProcess) -> urllib3.PoolManager:
    pki = srv.data_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return urllib3.PoolManager(ssl_context=ctx, retries=False, timeout=5)


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = testing.ServerProcess(data).start()
    acked: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        pool = _pool(srv)
        i = 0
        while not stop.is_set():
            name = f"w{w}-{i}"
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name},
                "data": {"i": str(i)},
            }
            try:
                resp = pool.request(
                    "POST",
                    f"{srv.url}/api/v1/namespaces/default/configmaps",
                    body=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                )
            except Exception:
                return  # the server died under us
            if resp.status == 201:
                rv = int(json.loads(resp.data)["metadata"]["resourceVersion"])
                with lock:
                    acked[name] = rv
            i += 1

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < MIN_ACKS and time.monotonic() < deadline:
            time.sleep(0.01)
        srv.kill()  # while the writers are still writing
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        srv.kill()
    assert len(acked) >= MIN_ACKS
    highest = max(acked.values())

    with testing.ServerProcess(data, port=srv.port) as again:
        pool = _pool(again)
        resp = pool.request("GET", f"{again.url}/api/v1/namespaces/default/configmaps")
        assert resp.status == 200
        listed = {
            item["metadata"]["name"]: int(item["metadata"]["resourceVersion"])
            for item in json.loads(resp.data)["items"]
        }
        missing = {name: rv for name, rv in acked.items() if listed.get(name) != rv}
        assert not missing, (
            f"{len(missing)} acknowledged writes lost or changed, e.g. {list(missing.items())[:5]}"
        )
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-restart"}}
        resp = pool.request(
            "POST",
            f"{again.url}/api/v1/namespaces/default/configmaps",
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert resp.status == 201
        assert int(json.loads(resp.data)["metadata"]["resourceVersion"]) > highest
