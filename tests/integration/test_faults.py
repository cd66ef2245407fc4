"""Fault tests of the API server and its store; each test names the guarantee it checks.

* kill -9 during 1,000 concurrent writes: every acknowledged write is there after the
  restart, with the resourceVersion it was acknowledged with, and none is there twice.
* watchers under load, compared with the store's log: no event skipped, duplicated or
  reordered — for a plain watch, a label-filtered one and one resumed from the past.
* the data directory's disk full (a small loop-mounted filesystem, root): writes fail
  with a clear 5xx Status, reads keep working, nothing is corrupted, and writes succeed
  again once space is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from pilothouse import testing
from pilothouse.api import errors, resources
from pilothouse.apiserver import cacheentry
from pilothouse.client import config, rest
from pilothouse.storage import interface as storage

CONFIGMAPS = resources.DEFAULT.by_path("", "v1", "configmaps")
NAMESPACES = resources.DEFAULT.by_path("", "v1", "namespaces")
assert CONFIGMAPS is not None and NAMESPACES is not None


# --- kill -9 during 1,000 concurrent writes ----------------------------------------------


async def _write_and_kill(
    srv: testing.ServerProcess, tokens: list[str], kill_after: int
) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """Send one create per token, all at once (one connection each), and SIGKILL the
    server once ``kill_after`` of them are acknowledged. Returns the acknowledged ones
    (token → name, resourceVersion) and those without an answer."""
    acked: dict[str, tuple[str, str]] = {}
    unknown: set[str] = set()  # sent, no answer: may or may not have been stored
    client = rest.Client(
        config.load_kubeconfig(srv.kubeconfig), max_connections=len(tokens), retry=rest.NO_RETRIES
    )
    enough = asyncio.Event()

    async def write(token: str) -> None:
        obj = {"metadata": {"generateName": "w-"}, "data": {"token": token}}
        try:
            made = await client.create(CONFIGMAPS, obj, "default")
        except rest.TransportError:
            unknown.add(token)
            return
        md = made["metadata"]
        acked[token] = (md["name"], md["resourceVersion"])
        if len(acked) >= kill_after:
            enough.set()

    writes = [asyncio.ensure_future(write(t)) for t in tokens]
    try:
        await asyncio.wait_for(enough.wait(), 60)
        srv.kill()  # SIGKILL, with writes still in flight
        await asyncio.gather(*writes)
    finally:
        srv.kill()
        await client.close()
    return acked, unknown


@pytest.mark.slow
async def test_sigkill_during_1000_concurrent_writes_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    # A commit can take every remaining write at once; should the kill land just after
    # it, nothing was in flight: go again, killing sooner.
    for round, kill_after in enumerate((150, 50, 1)):
        data = tmp_path / f"data-{round}"
        srv = testing.ServerProcess(data).start()
        tokens = [uuid.uuid4().hex for _ in range(1000)]
        acked, unknown = await _write_and_kill(srv, tokens, kill_after)
        assert len(acked) >= kill_after and len(acked) + len(unknown) == 1000
        if unknown:
            break
    else:
        raise AssertionError("every write was answered before the kill, three times")

    with testing.ServerProcess(data, port=srv.port) as again:
        async with rest.Client(config.load_kubeconfig(again.kubeconfig)) as c:
            items = (await c.list_all(CONFIGMAPS, "default"))["items"]
            stored: dict[str, list[tuple[str, str]]] = {}
            for item in items:
                token = (item.get("data") or {}).get("token")
                if token:
                    md = item["metadata"]
                    stored.setdefault(token, []).append((md["name"], md["resourceVersion"]))
            twice = {t: v for t, v in stored.items() if len(v) > 1}
            assert not twice, f"stored twice: {list(twice.items())[:3]}"
            lost = {t: v for t, v in acked.items() if stored.get(t) != [v]}
            assert not lost, f"{len(lost)} acknowledged writes lost or changed: {list(lost)[:3]}"
            assert set(stored) <= set(tokens)  # nothing else appeared either
            highest = max(int(rv) for _, rv in acked.values())
            after = await c.create(CONFIGMAPS, {"metadata": {"name": "after"}}, "default")
            assert int(after["metadata"]["resourceVersion"]) > highest


# --- watchers under load ------------------------------------------------------------------

Seen = tuple[str, str, str]  # (type, name, resourceVersion)
TYPES = {
    storage.EventType.CREATE: cacheentry.ADDED,
    storage.EventType.UPDATE: cacheentry.MODIFIED,
    storage.EventType.DELETE: cacheentry.DELETED,
}


async def _watch(
    client: rest.Client, ns: str, rv: str, until: int, *, labels: str = ""
) -> list[Seen]:
    """Every event of a watch from ``rv`` until one at or past revision ``until``
    (re-watching from the last version seen if the server ends the watch)."""
    seen: list[Seen] = []
    while True:
        async for event in client.watch(
            CONFIGMAPS, ns, resource_version=rv, label_selector=labels, timeout_seconds=30
        ):
            md = event["object"]["metadata"]
            rv = md["resourceVersion"]
            if event["type"] == "BOOKMARK":
                if int(rv) >= until:
                    return seen
                continue
            assert event["type"] != "ERROR", event
            seen.append((event["type"], md["name"], rv))
            if int(rv) >= until:
                return seen


def _expected(log: list[storage.Event], *, label: str = "") -> list[Seen]:
    """What a watch must show of the store's log (with a label filter: objects entering
    and leaving the selection are ADDED and DELETED, as upstream's filtered watch)."""

    def has(kv: storage.KeyValue | None) -> bool:
        if kv is None:
            return False
        return bool(json.loads(kv.value)["metadata"].get("labels", {}).get(label))

    out: list[Seen] = []
    for event in log:
        name = event.kv.key.rsplit("/", 1)[1]
        rv = str(event.kv.mod_revision)
        kind = TYPES[event.type]
        if label:
            before = event.type is not storage.EventType.CREATE and has(event.prev)
            now = event.type is not storage.EventType.DELETE and has(event.kv)
            if event.type is storage.EventType.DELETE:
                kind = cacheentry.DELETED if before else ""
            elif before and now:
                kind = cacheentry.MODIFIED
            elif now:
                kind = cacheentry.ADDED
            elif before:
                kind = cacheentry.DELETED
            else:
                kind = ""
        if kind:
            out.append((kind, name, rv))
    return out


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing.ServerThread]:
    with testing.ServerThread(tmp_path_factory.mktemp("load") / "data") as srv:
        yield srv


async def test_watchers_under_load_match_the_store_log_exactly(
    busy_server: testing.ServerThread,
) -> None:
    srv = busy_server
    client = rest.Client(config.local_socket(srv.server.socket_path), max_connections=128)
    ns = "load-" + uuid.uuid4().hex[:6]
    try:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        start = (await client.list(CONFIGMAPS, ns))["metadata"]["resourceVersion"]

        async def writer(w: int) -> None:
            for i in range(60):
                name = f"w{w}-{i % 12}"
                labels = {"hot": "yes"} if (w + i) % 3 else {}
                try:
                    if i < 12:
                        await client.create(
                            CONFIGMAPS, {"metadata": {"name": name, "labels": labels}}, ns
                        )
                    elif i % 5 == 4:
                        await client.delete(CONFIGMAPS, name, ns)
                    else:
                        obj = {
                            "metadata": {"labels": labels or {"hot": None}},
                            "data": {"i": str(i)},
                        }
                        await client.patch(CONFIGMAPS, name, obj, ns)
                except errors.StatusError as exc:
                    assert errors.is_not_found(exc) or errors.is_already_exists(exc), exc
                    if errors.is_not_found(exc):
                        await client.create(
                            CONFIGMAPS, {"metadata": {"name": name, "labels": labels}}, ns
                        )

        # Three watchers from the start while 25 writers run; one more joins half-way,
        # resuming from the start revision (served from the cache's window or the log).
        until = asyncio.get_running_loop().create_future()

        async def watch_to_end(**kw: Any) -> list[Seen]:
            end = await until
            return await _watch(client, ns, start, end, **kw)

        plain = asyncio.ensure_future(watch_to_end())
        hot = asyncio.ensure_future(watch_to_end(labels="hot=yes"))
        writers = [asyncio.ensure_future(writer(w)) for w in range(25)]
        await asyncio.sleep(0.3)
        late = asyncio.ensure_future(watch_to_end())
        await asyncio.gather(*writers)
        # The last write, which every watcher sees (the filtered one too), ends them.
        last = await client.create(
            CONFIGMAPS, {"metadata": {"name": "last", "labels": {"hot": "yes"}}}, ns
        )
        until.set_result(int(last["metadata"]["resourceVersion"]))
        got_plain, got_hot, got_late = await asyncio.wait_for(asyncio.gather(plain, hot, late), 60)

        # The store's own log of the namespace's ConfigMaps, read straight from it.
        store = srv.server.store
        assert store is not None
        log: list[storage.Event] = []

        async def read_log() -> None:
            stream = store.watch(f"/registry/configmaps/{ns}/", after_revision=int(start))
            try:
                async for batch in stream:
                    log.extend(batch)
                    if log and log[-1].revision >= until.result():
                        return
            finally:
                await stream.aclose()

        await asyncio.wait_for(
            asyncio.wrap_future(asyncio.run_coroutine_threadsafe(read_log(), srv.loop)), 30
        )
        assert len(log) > 1000
        assert got_plain == _expected(log)
        assert got_late == _expected(log)
        assert got_hot == _expected(log, label="hot")
    finally:
        await client.close()


# --- a full disk -------------------------------------------------------------------------


@contextlib.contextmanager
def small_filesystem(where: Path, megabytes: int) -> Iterator[Path]:
    """An ext4 filesystem of ``megabytes`` in a file, loop-mounted at ``where/mnt``."""
    image, mnt = where / "disk.img", where / "mnt"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(megabytes * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        image.unlink(missing_ok=True)


def _admin(srv: testing.ServerProcess) -> urllib3.PoolManager:
    import ssl

    pki = srv.data_dir / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return urllib3.PoolManager(ssl_context=ctx, retries=False, timeout=30)


@pytest.mark.root
@pytest.mark.slow
def test_a_full_disk_fails_writes_cleanly_keeps_reads_and_recovers(tmp_path: Path) -> None:
    with small_filesystem(tmp_path, 48) as mnt:
        data = mnt / "data"
        srv = testing.ServerProcess(data)
        srv.log_path = tmp_path / "server.log"  # the log must not need the full disk
        srv.start()
        pool = _admin(srv)
        base = f"{srv.url}/api/v1/namespaces/default/configmaps"
        try:

            def create(name: str, size: int = 200_000) -> urllib3.BaseHTTPResponse:
                body = {"metadata": {"name": name}, "data": {"pad": "x" * size}}
                return pool.request(
                    "POST", base, body=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip

            for i in range(5):
                assert create(f"before-{i}").status == 201
            # Fill the disk, leaving a little room: the WAL soon has nowhere to grow.
            filler = mnt / "filler"
            free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
            with filler.open("wb") as f:
                f.truncate(0)
                os.posix_fallocate(f.fileno(), 0, max(0, free - 600_000))
            failed = None
            for i in range(50):
                resp = create(f"full-{i}")
                if resp.status != 201:
                    failed = resp
                    break
            assert failed is not None, "the disk never filled up"
            status = json.loads(failed.data)
            assert failed.status >= 500 and status["kind"] == "Status", failed.data
            assert status["code"] == failed.status and "full" in status["message"], status
            # Reads keep working, from the cache and from the store.
            listed = pool.request("GET", base)
            assert listed.status == 200
            names = {i["metadata"]["name"] for i in json.loads(listed.data)["items"]}
            assert {f"before-{i}" for i in range(5)} <= names
            assert pool.request("GET", f"{base}/before-0").status == 200
            # Space comes back: so do writes.
            filler.unlink()
            resp = create("after-freeing")
            assert resp.status == 201, resp.data
        finally:
            srv.stop()
        # Nothing is corrupted: SQLite's own check, and a restart finds every object.
        db = sqlite3.connect(data / "db" / "state.db")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            db.close()
        with testing.ServerProcess(data, port=srv.port) as again:
            again_pool = _admin(again)
            listed = json.loads(again_pool.request("GET", base.replace(srv.url, again.url)).data)
            names = {i["metadata"]["name"] for i in listed["items"]}
            assert {f"before-{i}" for i in range(5)} | {"after-freeing"} <= names
