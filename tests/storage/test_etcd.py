"""What the etcd store does beyond the shared contract: prefixes, etcd's own history,
compaction shared through compact_rev_key, and etcd going away and coming back."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pilothouse.storage import interface as storage
from pilothouse.storage.etcd import client as etcd_client
from pilothouse.storage.etcd import proto
from pilothouse.storage.etcd import store as etcd_store
from pilothouse.storage.etcd import testing as etcd_testing


def make(endpoint: str, *, prefix: str = "", **options: Any) -> etcd_store.EtcdStore:
    return etcd_store.EtcdStore(
        etcd_client.parse_endpoints(endpoint),
        prefix=prefix or f"/t-{uuid.uuid4().hex[:10]}",
        compact_interval=0,
        **options,
    )


@pytest.fixture
async def store(etcd_server: etcd_testing.EtcdProcess) -> AsyncIterator[etcd_store.EtcdStore]:
    s = make(etcd_server.endpoint)
    await s.start()
    yield s
    await s.close()


async def collect(stream: Any, count: int) -> list[storage.Event]:
    events: list[storage.Event] = []
    async with asyncio.timeout(10):
        while len(events) < count:
            events.extend(await anext(stream))
    return events


async def test_keys_live_under_the_prefix_and_clusters_keep_apart(
    etcd_server: etcd_testing.EtcdProcess,
) -> None:
    one, two = make(etcd_server.endpoint), make(etcd_server.endpoint)
    await one.start()
    await two.start()
    try:
        watch_two = two.watch("", after_revision=two.current_revision())
        rev = await one.create("/registry/secrets/ns/a", b"one")
        await two.create("/registry/secrets/ns/b", b"two")
        raw = await one.client.range(
            proto.RangeRequest(key=one.key_prefix + b"/registry/secrets/ns/a")
        )
        assert raw.kvs[0].value == b"one" and raw.kvs[0].mod_revision == rev
        assert [kv.key for kv in (await one.list("")).items] == ["/registry/secrets/ns/a"]
        assert [kv.key for kv in (await two.list("/registry/")).items] == ["/registry/secrets/ns/b"]
        assert await two.get("/registry/secrets/ns/a") is None
        events = await collect(watch_two, 1)
        assert [e.kv.key for e in events] == ["/registry/secrets/ns/b"]
        await watch_two.aclose()
    finally:
        await one.close()
        await two.close()


async def test_a_watch_from_before_the_ring_reads_etcds_history_then_goes_live(
    etcd_server: etcd_testing.EtcdProcess,
) -> None:
    s = make(etcd_server.endpoint, ring_size=3)
    await s.start()
    try:
        start = s.current_revision()
        revisions = []
        for i in range(10):
            revisions.append(await s.create(f"/h/{i}", str(i).encode()))
            await s.create(f"/other/{i}", b"x")
        revisions.append(await s.update("/h/0", b"again", if_revision=revisions[0]))
        assert s.ring.floor > start  # the ring no longer reaches back to ``start``
        stream = s.watch("/h/", after_revision=start)
        events = await collect(stream, 11)
        assert [e.revision for e in events] == revisions
        assert events[-1].type is storage.EventType.UPDATE
        assert events[-1].prev is not None and events[-1].prev.value == b"0"
        # Caught up: now it follows the feeder, so a write's event is there when the
        # write returns, without waiting for etcd.
        live = await s.create("/h/live", b"l")
        assert [e.revision for e in await collect(stream, 1)] == [live]
        await stream.aclose()
    finally:
        await s.close()


async def test_compaction_is_shared_through_compact_rev_key(
    etcd_server: etcd_testing.EtcdProcess,
) -> None:
    prefix = f"/t-{uuid.uuid4().hex[:10]}"
    first = make(etcd_server.endpoint, prefix=prefix)
    await first.start()
    try:
        old = await first.create("/c/a", b"1")
        newer = await first.update("/c/a", b"2", if_revision=old)
        assert await first.compact(newer) == newer
        raw = await first.client.range(proto.RangeRequest(key=prefix.encode() + b"compact_rev_key"))
        assert raw.kvs[0].value == str(newer).encode()
        with pytest.raises(storage.CompactedError):
            await first.client.range(proto.RangeRequest(key=b"/", revision=old))
    finally:
        await first.close()
    second = make(etcd_server.endpoint, prefix=prefix)
    await second.start()
    try:
        assert second.compacted_revision() == newer
        with pytest.raises(storage.CompactedError):
            await second.list("/c/", at_revision=old)
        with pytest.raises(storage.CompactedError):
            second.watch("/c/", after_revision=old)
        assert (await second.get("/c/a")).value == b"2"  # type: ignore[union-attr]
    finally:
        await second.close()


async def test_etcd_going_away_fails_writes_as_unavailable_and_watches_resume(
    tmp_path: Any,
) -> None:
    etcd = etcd_testing.EtcdProcess(tmp_path / "etcd").start()
    s = make(etcd.endpoint, timeout=3.0)
    try:
        await s.start()
        stream = s.watch("/k/", after_revision=s.current_revision())
        before = await s.create("/k/before", b"1")
        etcd.stop()
        with pytest.raises((storage.StoreUnavailableError, storage.StoreTimeoutError)):
            async with asyncio.timeout(10):
                await s.create("/k/during", b"2")
        etcd.start()
        async with asyncio.timeout(20):
            while True:
                try:
                    after = await s.create("/k/after", b"3")
                    break
                except (storage.StoreUnavailableError, storage.StoreTimeoutError):
                    await asyncio.sleep(0.2)
        events = await collect(stream, 2)
        assert [e.kv.key for e in events] == ["/k/before", "/k/after"]
        assert [e.revision for e in events] == [before, after]
        assert (await s.get("/k/before")) is not None
        await stream.aclose()
    finally:
        await s.close()
        etcd.close()


async def test_start_waits_for_etcd_and_says_so(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    etcd = etcd_testing.EtcdProcess(tmp_path / "etcd")  # not started yet
    s = make(etcd.endpoint)
    caplog.set_level(logging.WARNING)
    try:
        starting = asyncio.ensure_future(s.start())
        await asyncio.sleep(1.5)
        assert not starting.done()
        assert f"waiting for etcd at {etcd.endpoint}" in caplog.text
        await asyncio.to_thread(etcd.start)
        await asyncio.wait_for(starting, 20)
        assert await s.create("/k/a", b"1") > 0
    finally:
        await s.close()
        etcd.close()


async def test_a_dead_endpoint_in_the_list_is_passed_over(
    etcd_server: etcd_testing.EtcdProcess,
) -> None:
    dead = etcd_testing.EtcdProcess()  # ports reserved, never started
    s = make(f"{dead.endpoint},{etcd_server.endpoint}")
    try:
        await asyncio.wait_for(s.start(), 20)
        rev = await s.create("/k/a", b"1")
        assert (await s.get("/k/a")) == storage.KeyValue("/k/a", b"1", rev, rev)
    finally:
        await s.close()
        dead.close()


async def test_https_with_a_ca_and_a_client_certificate(tmp_path: Any) -> None:
    from pilothouse.apiserver.auth import certs
    from pilothouse.storage import factory

    pki = certs.ensure_pki(tmp_path / "pki-home")
    serving, serving_key = certs.issue_serving_cert(
        pki, common_name="etcd", hostnames=["localhost"], ips=["127.0.0.1"]
    )
    client, client_key = certs.issue_client_cert(pki, common_name="pilothouse", organizations=[])
    files = {}
    for name, data in {
        "server.crt": serving,
        "server.key": serving_key,
        "client.crt": client,
        "client.key": client_key,
    }.items():
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    tls = etcd_testing.TLS(
        ca=pki.ca_cert,
        cert=files["server.crt"],
        key=files["server.key"],
        client_cert=files["client.crt"],
        client_key=files["client.key"],
    )
    etcd = etcd_testing.EtcdProcess(tmp_path / "etcd", tls=tls).start()
    try:
        assert etcd.endpoint.startswith("https://")
        s = factory.open_store(
            etcd.endpoint,
            data_dir=tmp_path,
            tls=factory.TLSFiles(
                cafile=pki.ca_cert, certfile=files["client.crt"], keyfile=files["client.key"]
            ),
            prefix="/tls",
        )
        await asyncio.wait_for(s.start(), 20)
        try:
            rev = await s.create("/k/a", b"over tls")
            assert await s.get("/k/a") == storage.KeyValue("/k/a", b"over tls", rev, rev)
        finally:
            await s.close()
        # Without a client certificate etcd refuses us: unavailable, not a crash.
        bare = factory.open_store(
            etcd.endpoint,
            data_dir=tmp_path,
            tls=factory.TLSFiles(cafile=pki.ca_cert),
            prefix="/tls",
        )
        assert isinstance(bare, etcd_store.EtcdStore)
        with pytest.raises(storage.StoreError):
            await bare.client.status(timeout=3)
        await bare.client.close()
    finally:
        etcd.close()
